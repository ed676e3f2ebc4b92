//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): the request, the
//! `id_token_hint` check, the client and post-logout redirect (resolved before anything ends),
//! and the rule that decides whether a browser session may end without asking.
//!
//! The rule: a request that proves nothing (no valid hint) never ends a session by itself; the
//! user confirms on a page of ours, with a synchronizer token bound to the session. A valid hint
//! ends the session it names, or the browser's session when that belongs to the hint's user; a
//! hint for another user than the one signed in asks first.

use crate::error::OAuthError;
use crate::ids::{ClientId, SessionId, UserId};
use crate::jwt::{self, Expiry, VerifyError};
use crate::keys::KeySet;
use crate::model::Client;
use crate::params::{Params, DEFAULT_MAX_LEN};
use crate::redirect_uri;
use crate::store::{ClientStore, SessionStore, StoreResult};

/// Longest `id_token_hint` read (our ID tokens are about 1 KiB).
pub const MAX_HINT_LEN: usize = 8 * 1024;

/// The parameters of a logout request. `ui_locales` is accepted and ignored; `logout_hint` is
/// advisory and changes nothing.
#[derive(Clone, Default)]
pub struct LogoutRequest {
    pub id_token_hint: Option<String>,
    pub client_id: Option<ClientId>,
    pub logout_hint: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
}

/// The hint is a token: only the other fields print.
impl std::fmt::Debug for LogoutRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogoutRequest")
            .field("has_id_token_hint", &self.id_token_hint.is_some())
            .field("client_id", &self.client_id)
            .field("post_logout_redirect_uri", &self.post_logout_redirect_uri)
            .finish_non_exhaustive()
    }
}

impl LogoutRequest {
    /// Reads the request from `params` (duplicates were refused when they were parsed).
    pub fn parse(params: &Params) -> Result<Self, OAuthError> {
        let client_id =
            match params.get("client_id", 128)? {
                None => None,
                Some(raw) => Some(ClientId::parse(raw).ok_or_else(|| {
                    OAuthError::invalid_request("parameter 'client_id' is invalid")
                })?),
            };
        Ok(Self {
            id_token_hint: params
                .get("id_token_hint", MAX_HINT_LEN)?
                .map(str::to_owned),
            client_id,
            logout_hint: params.get_text("logout_hint", 320)?.map(str::to_owned),
            post_logout_redirect_uri: params
                .get("post_logout_redirect_uri", 2000)?
                .map(str::to_owned),
            state: params.get("state", DEFAULT_MAX_LEN)?.map(str::to_owned),
        })
    }
}

/// What a verified `id_token_hint` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdTokenHint {
    /// Its audience: the client it was issued to.
    pub client_id: ClientId,
    pub user_id: UserId,
    pub session_id: SessionId,
}

/// Verifies an `id_token_hint`: one of our ID tokens (signature by a current or retired key,
/// algorithm from the key, `typ` of an ID token, our issuer), expired or not. Anything else,
/// `alg: none`, an access token, a forged or unknown key, is an error: the caller treats it as
/// no hint.
pub fn verify_hint(token: &str, keys: &KeySet, issuer: &str) -> Result<IdTokenHint, VerifyError> {
    let claims = jwt::verify_id_token(token, keys, issuer, Expiry::AcceptExpired)?;
    if claims.azp != claims.aud {
        return Err(VerifyError::Audience);
    }
    Ok(IdTokenHint {
        client_id: ClientId::parse(&claims.aud).ok_or(VerifyError::Audience)?,
        user_id: UserId::parse(&claims.sub).ok_or(VerifyError::Malformed)?,
        session_id: SessionId::parse(&claims.sid).ok_or(VerifyError::Malformed)?,
    })
}

/// Where the browser goes once signed out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Target {
    /// The client named by the hint or `client_id`, if it exists and is enabled.
    pub client: Option<Client>,
    /// The registered post-logout redirect URI with `state` appended, if one was asked for.
    pub redirect: Option<String>,
}

/// Resolves the client and the post-logout redirect. Runs before anything is ended, so a
/// refused request ends nothing: `client_id` that differs from the hint's audience, an unknown
/// `client_id`, or a `post_logout_redirect_uri` without an identified client or not registered
/// for it.
pub async fn resolve<S: ClientStore + ?Sized>(
    req: &LogoutRequest,
    hint: Option<&IdTokenHint>,
    store: &S,
) -> Result<Target, OAuthError> {
    let client_id = match (hint, &req.client_id) {
        (Some(h), Some(c)) if &h.client_id != c => {
            return Err(OAuthError::invalid_request(
                "client_id does not match the audience of id_token_hint",
            ))
        }
        (Some(h), _) => Some(&h.client_id),
        (None, c) => c.as_ref(),
    };
    let client = match client_id {
        None => None,
        Some(id) => match store.client_by_id(id).await? {
            Some(c) if !c.disabled => Some(c),
            // A hint outliving its client still signs the user out; a named unknown client
            // is an error.
            _ if req.client_id.is_some() => {
                return Err(OAuthError::invalid_request("unknown client_id"))
            }
            _ => None,
        },
    };
    let redirect = match &req.post_logout_redirect_uri {
        None => None,
        Some(uri) => {
            let Some(c) = &client else {
                return Err(OAuthError::invalid_request(
                    "post_logout_redirect_uri needs id_token_hint or client_id",
                ));
            };
            if !redirect_uri::matches(&c.post_logout_redirect_uris, uri) {
                return Err(OAuthError::invalid_request(
                    "post_logout_redirect_uri is not registered for this client",
                ));
            }
            Some(redirect_with_state(uri, req.state.as_deref()))
        }
    };
    Ok(Target { client, redirect })
}

/// `uri` with `state` appended once, form-encoded (RP-Initiated Logout 1.0 §3).
pub fn redirect_with_state(uri: &str, state: Option<&str>) -> String {
    match state {
        None => uri.to_owned(),
        Some(s) => crate::authorize::response::append(uri, &[("state", s)]),
    }
}

/// The session a logout ends: always the browser's own. A hint never ends a session the
/// browser does not hold (a leaked old ID token must not sign its user out from anywhere).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ending {
    pub browser: Option<SessionId>,
}

/// What to do with a logout request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Ask the user first (nothing proves the request is theirs, or the hint is another
    /// user's).
    Confirm,
    /// End these sessions, then go to the target.
    End(Ending),
    /// The browser has no session and nothing else may be ended.
    NothingToEnd,
}

/// Decides. `browser` is the browser's active session and its user; `confirmed` means the
/// user submitted our confirmation form (synchronizer token checked by the caller).
pub fn decide(
    hint: Option<&IdTokenHint>,
    browser: Option<(&SessionId, &UserId)>,
    confirmed: bool,
) -> Decision {
    match (hint, browser, confirmed) {
        (_, Some((sid, _)), true) => Decision::End(Ending {
            browser: Some(sid.clone()),
        }),
        (_, None, _) => Decision::NothingToEnd,
        (None, Some(_), false) => Decision::Confirm,
        // Without asking only when the hint names this very session (RP-Initiated Logout §2:
        // a hint for another session, or another user, is confirmed by the user first).
        (Some(h), Some((sid, uid)), false) if uid == &h.user_id && sid == &h.session_id => {
            Decision::End(Ending {
                browser: Some(sid.clone()),
            })
        }
        (Some(_), Some(_), false) => Decision::Confirm,
    }
}

/// Ends the sessions of `ending` (each with its session-bound refresh tokens). The hinted
/// session is ended only if it belongs to the hint's user. Returns how many were active.
pub async fn end<S: SessionStore + ?Sized>(
    store: &S,
    ending: &Ending,
    now: i64,
) -> StoreResult<usize> {
    let mut ended = 0;
    if let Some(sid) = &ending.browser {
        if store.revoke_session(sid, now).await? {
            ended += 1;
        }
    }
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Encrypter, KeyBytes};
    use crate::jwt::{sign, IdClaims, TYP_ACCESS_TOKEN, TYP_ID_TOKEN};
    use crate::keys::{generate, load};
    use crate::model::SigningAlg;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    const ISS: &str = "https://as.example";

    fn keyset() -> KeySet {
        let enc = Encrypter::new(
            &KeyBytes::from_hex(&KeyBytes::generate_hex()).unwrap(),
            None,
        )
        .unwrap();
        let es = load(&generate(SigningAlg::ES256, &enc, 0, 0).unwrap(), &enc).unwrap();
        let rs = load(&generate(SigningAlg::RS256, &enc, 0, 0).unwrap(), &enc).unwrap();
        KeySet::new(vec![es, rs])
    }

    fn claims() -> IdClaims {
        IdClaims {
            iss: ISS.into(),
            sub: "usr_alice".into(),
            aud: "cl_app".into(),
            azp: "cl_app".into(),
            exp: 100,
            iat: 0,
            auth_time: 0,
            nonce: None,
            sid: "ses_one".into(),
            at_hash: None,
            email: None,
            email_verified: None,
        }
    }

    fn hint() -> IdTokenHint {
        IdTokenHint {
            client_id: ClientId::parse("cl_app").unwrap(),
            user_id: UserId::parse("usr_alice").unwrap(),
            session_id: SessionId::parse("ses_one").unwrap(),
        }
    }

    #[test]
    fn a_valid_hint_is_accepted_expired() {
        let ks = keyset();
        let t = sign(
            ks.active(SigningAlg::RS256, 0).unwrap(),
            TYP_ID_TOKEN,
            &claims(),
        )
        .unwrap();
        assert_eq!(verify_hint(&t, &ks, ISS), Ok(hint()));
        assert_eq!(
            verify_hint(&t, &ks, "https://other.example"),
            Err(VerifyError::Issuer)
        );
        let at = sign(
            ks.active(SigningAlg::ES256, 0).unwrap(),
            TYP_ACCESS_TOKEN,
            &claims(),
        )
        .unwrap();
        assert_eq!(verify_hint(&at, &ks, ISS), Err(VerifyError::Type));
    }

    #[test]
    fn hostile_hints_are_refused() {
        let ks = keyset();
        let rs = ks.active(SigningAlg::RS256, 0).unwrap();
        let enc = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(&v).unwrap());
        let body = enc(serde_json::to_value(claims()).unwrap());
        let kid = rs.kid.as_str();
        let mut forged = Vec::new();
        for alg in ["none", "None", "NONE", "nOnE"] {
            forged.push(format!(
                "{}.{body}.",
                enc(serde_json::json!({"alg": alg, "typ": "JWT"}))
            ));
            forged.push(format!(
                "{}.{body}.",
                enc(serde_json::json!({"alg": alg, "typ": "JWT", "kid": kid}))
            ));
        }
        forged.push(format!(
            "{}.{body}.",
            enc(serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": kid}))
        ));
        // HS256 with the public key (its JWK JSON, and its n) as the HMAC secret.
        let jwk = serde_json::to_vec(rs.jwk()).unwrap();
        let n = rs.jwk()["n"].as_str().unwrap().as_bytes().to_vec();
        for secret in [jwk, n] {
            let h = enc(serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": kid}));
            let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret);
            let tag = aws_lc_rs::hmac::sign(&key, format!("{h}.{body}").as_bytes());
            forged.push(format!(
                "{h}.{body}.{}",
                URL_SAFE_NO_PAD.encode(tag.as_ref())
            ));
        }
        for header in [
            serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "../../dev/null"}),
            serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "x' OR '1'='1"}),
            serde_json::json!({"alg": "RS256", "typ": "JWT", "jku": "https://evil.example/jwks"}),
            serde_json::json!({"alg": "RS256", "typ": "JWT", "x5u": "https://evil.example/c.pem"}),
        ] {
            forged.push(format!("{}.{body}.AAAA", enc(header)));
        }
        forged.push("not a jwt".into());
        forged.push(String::new());
        for f in forged {
            assert!(verify_hint(&f, &ks, ISS).is_err(), "accepted: {f}");
        }
    }

    #[test]
    fn nothing_ends_without_proof() {
        let h = hint();
        let mine = SessionId::parse("ses_one").unwrap();
        let other_sid = SessionId::parse("ses_two").unwrap();
        let alice = UserId::parse("usr_alice").unwrap();
        let bob = UserId::parse("usr_bob").unwrap();
        // No hint: ask, or nothing to end.
        assert_eq!(
            decide(None, Some((&mine, &alice)), false),
            Decision::Confirm
        );
        assert_eq!(decide(None, None, false), Decision::NothingToEnd);
        // Confirmed: the browser's own session only.
        assert_eq!(
            decide(Some(&h), Some((&other_sid, &bob)), true),
            Decision::End(Ending {
                browser: Some(other_sid.clone()),
            })
        );
        assert_eq!(decide(None, None, true), Decision::NothingToEnd);
        // A hint naming the browser's own session ends it without asking.
        assert_eq!(
            decide(Some(&h), Some((&mine, &alice)), false),
            Decision::End(Ending {
                browser: Some(mine.clone()),
            })
        );
        // The same user's hint for another (older, or ended) session: ask.
        assert_eq!(
            decide(Some(&h), Some((&other_sid, &alice)), false),
            Decision::Confirm
        );
        // Another user's hint: ask.
        assert_eq!(
            decide(Some(&h), Some((&other_sid, &bob)), false),
            Decision::Confirm
        );
        // No session in the browser: nothing ends, even the session the hint names.
        assert_eq!(decide(Some(&h), None, false), Decision::NothingToEnd);
    }

    #[test]
    fn state_is_appended_encoded() {
        assert_eq!(
            redirect_with_state("https://app.example.com/bye", Some("a b&c=d")),
            "https://app.example.com/bye?state=a+b%26c%3Dd"
        );
        assert_eq!(
            redirect_with_state("https://app.example.com/bye?x=1", Some("s")),
            "https://app.example.com/bye?x=1&state=s"
        );
        assert_eq!(
            redirect_with_state("https://app.example.com/bye", None),
            "https://app.example.com/bye"
        );
    }

    #[test]
    fn requests_parse_strictly() {
        let p = Params::parse(b"client_id=cl_x&state=s&ui_locales=fr&logout_hint=a%40b").unwrap();
        let r = LogoutRequest::parse(&p).unwrap();
        assert_eq!(r.client_id, ClientId::parse("cl_x"));
        assert_eq!(r.state.as_deref(), Some("s"));
        assert!(Params::parse(b"id_token_hint=a&id_token_hint=b").is_err());
        let p = Params::parse(b"client_id=../x").unwrap();
        assert!(LogoutRequest::parse(&p).is_err());
        let long = format!("id_token_hint={}", "a".repeat(MAX_HINT_LEN + 1));
        let p = Params::parse(long.as_bytes()).unwrap();
        assert!(LogoutRequest::parse(&p).is_err());
        assert!(!format!(
            "{:?}",
            LogoutRequest::parse(&Params::parse(b"id_token_hint=secret").unwrap()).unwrap()
        )
        .contains("secret"));
    }
}
