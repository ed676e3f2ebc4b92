//! Validating the three kinds of JWT an app meets: access tokens (RFC 9068), ID tokens
//! (OpenID Connect Core §3.1.3.7) and logout tokens (Back-Channel Logout §2.6). The signature
//! algorithm comes from the configured allow-list and must be the key's own, never just what
//! the token's header claims. Every time check takes `now` from the caller.

use std::collections::HashMap;

use jsonwebtoken::{decode, decode_header, errors::ErrorKind, Header, Validation};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::{InvalidToken, Result};
use crate::jwks::Key;

/// One audience or several (`aud` may be either, RFC 7519 §4.1.3).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audience {
    /// Every audience named.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let v: Vec<&str> = match self {
            Audience::One(a) => vec![a.as_str()],
            Audience::Many(list) => list.iter().map(String::as_str).collect(),
        };
        v.into_iter()
    }

    /// True when `aud` is among them.
    pub fn contains(&self, aud: &str) -> bool {
        self.iter().any(|a| a == aud)
    }
}

/// The claims of a validated access token.
#[derive(Clone, Debug, Deserialize)]
pub struct AccessTokenClaims {
    /// The issuer (checked: the configured one).
    pub iss: String,
    /// The user's id, or the client's for a client-credentials token.
    pub sub: String,
    /// The audiences (checked: includes the expected one).
    pub aud: Audience,
    /// Expiry, seconds since the epoch (checked, with leeway).
    pub exp: i64,
    /// Issue time (required by RFC 9068; checked not to be in the future, with leeway).
    pub iat: i64,
    /// Not before (checked when present, with leeway).
    pub nbf: Option<i64>,
    /// The token's id.
    pub jti: Option<String>,
    /// The client the token was issued to.
    pub client_id: String,
    /// Space-separated scopes, as issued.
    #[serde(default)]
    pub scope: String,
    /// When the user signed in (user tokens).
    pub auth_time: Option<i64>,
    /// The Portcullis session the token came from (user tokens).
    pub sid: Option<String>,
}

impl AccessTokenClaims {
    /// The granted scopes.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }
}

/// The claims of a validated ID token.
#[derive(Clone, Debug, Deserialize)]
pub struct IdTokenClaims {
    /// The issuer (checked: the configured one).
    pub iss: String,
    /// The user's stable id at Portcullis.
    pub sub: String,
    /// The audiences (checked: includes this client).
    pub aud: Audience,
    /// The authorized party (checked: this client, when present or needed).
    pub azp: Option<String>,
    /// Expiry, seconds since the epoch (checked, with leeway).
    pub exp: i64,
    /// Issue time (checked not to be in the future, with leeway).
    pub iat: i64,
    /// Not before (checked when present, with leeway).
    pub nbf: Option<i64>,
    /// When the user signed in (checked against `max_age` when one was asked for).
    pub auth_time: Option<i64>,
    /// The nonce (checked: the one sent).
    pub nonce: Option<String>,
    /// The Portcullis session id (for back-channel logout).
    pub sid: Option<String>,
    /// The hash of the access token (checked when present).
    pub at_hash: Option<String>,
    /// The e-mail address (with the `email` scope).
    pub email: Option<String>,
    /// Whether Portcullis has verified the e-mail address.
    pub email_verified: Option<bool>,
    /// Any other claims.
    #[serde(flatten)]
    pub other: HashMap<String, serde_json::Value>,
}

/// What a validated back-channel logout token asks the app to end.
#[derive(Clone, Debug)]
pub struct LogoutRequest {
    /// The user whose sessions end (when given).
    pub sub: Option<String>,
    /// The Portcullis session whose app sessions end (when given).
    pub sid: Option<String>,
    /// The token's id, for replay detection by the app.
    pub jti: String,
    /// When the token expires: how long the app must remember `jti`.
    pub expires_at: i64,
}

/// The event a logout token must carry.
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// The header, checked against the allow-list, with its `kid`.
pub(crate) fn header_of(
    token: &str,
    allowed: &[jsonwebtoken::Algorithm],
) -> Result<(Header, String)> {
    // `alg: none` and any other name outside jsonwebtoken's list fail to parse here.
    let header = decode_header(token).map_err(|_| InvalidToken::Malformed)?;
    if !allowed.contains(&header.alg) {
        return Err(InvalidToken::Algorithm.into());
    }
    let kid = header.kid.clone().ok_or(InvalidToken::UnknownKey)?;
    Ok((header, kid))
}

/// [`header_of`] for ID and logout tokens: never EdDSA, whatever the allow-list says.
/// Portcullis signs those with RS256 or ES256 only (it publishes just those two as
/// `id_token_signing_alg_values_supported`); its Ed25519 key signs access tokens.
pub(crate) fn id_token_header_of(
    token: &str,
    allowed: &[jsonwebtoken::Algorithm],
) -> Result<(Header, String)> {
    let (header, kid) = header_of(token, allowed)?;
    if header.alg == jsonwebtoken::Algorithm::EdDSA {
        return Err(InvalidToken::Algorithm.into());
    }
    Ok((header, kid))
}

/// True when `typ` is `expected` (also in its `application/…` form), ignoring case.
pub(crate) fn typ_is(header: &Header, expected: &str) -> bool {
    header.typ.as_deref().is_some_and(|t| {
        let t = t.to_ascii_lowercase();
        t == expected || t.strip_prefix("application/") == Some(expected)
    })
}

/// Verifies the signature with `key` (whose algorithm must be the header's) and the issuer
/// and audience; time is checked by the caller with its own clock.
pub(crate) fn verify<T: DeserializeOwned>(
    token: &str,
    header: &Header,
    key: &Key,
    issuer: &str,
    audience: &str,
    required: &[&str],
) -> Result<T> {
    if key.alg != header.alg {
        return Err(InvalidToken::Algorithm.into());
    }
    let mut v = Validation::new(key.alg);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.leeway = 0;
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    v.set_required_spec_claims(required);
    decode::<T>(token, &key.key, &v)
        .map(|d| d.claims)
        .map_err(|e| {
            match e.kind() {
                ErrorKind::InvalidSignature => InvalidToken::Signature,
                ErrorKind::InvalidIssuer => InvalidToken::Issuer,
                ErrorKind::InvalidAudience => InvalidToken::Audience,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    InvalidToken::Algorithm
                }
                ErrorKind::MissingRequiredClaim(_) | ErrorKind::Json(_) => InvalidToken::Claims,
                _ => InvalidToken::Malformed,
            }
            .into()
        })
}

/// `exp` (and `nbf`, `iat` when present) against `now` with `leeway`.
pub(crate) fn check_times(
    exp: i64,
    nbf: Option<i64>,
    iat: Option<i64>,
    now: i64,
    leeway: i64,
) -> Result<()> {
    if now > exp.saturating_add(leeway) {
        return Err(InvalidToken::Expired.into());
    }
    if nbf.is_some_and(|n| n > now.saturating_add(leeway))
        || iat.is_some_and(|i| i > now.saturating_add(leeway))
    {
        return Err(InvalidToken::NotYetValid.into());
    }
    Ok(())
}

/// The ID-token rules beyond signature, issuer and audience (Core §3.1.3.7).
pub(crate) struct IdTokenRules<'a> {
    pub client_id: &'a str,
    /// The nonce sent in the request; `None` for a refresh, whose ID token carries none.
    pub nonce: Option<&'a str>,
    pub max_age: Option<i64>,
    pub access_token: Option<&'a str>,
    pub now: i64,
    pub leeway: i64,
    /// The ID token's algorithm (its hash makes `at_hash`).
    pub alg: jsonwebtoken::Algorithm,
}

pub(crate) fn check_id_token(c: &IdTokenClaims, rules: &IdTokenRules<'_>) -> Result<()> {
    check_times(c.exp, c.nbf, Some(c.iat), rules.now, rules.leeway)?;
    if c.auth_time
        .is_some_and(|t| t > rules.now.saturating_add(rules.leeway))
    {
        return Err(InvalidToken::AuthTime.into());
    }
    // Audiences besides this client are not trusted (Core §3.1.3.7 step 3: Portcullis names
    // only the client); several need an `azp`, and an `azp` must be us.
    if c.aud.iter().any(|a| a != rules.client_id) {
        return Err(InvalidToken::Audience.into());
    }
    let many = matches!(&c.aud, Audience::Many(list) if list.len() > 1);
    match &c.azp {
        Some(azp) if azp != rules.client_id => return Err(InvalidToken::AuthorizedParty.into()),
        None if many => return Err(InvalidToken::AuthorizedParty.into()),
        _ => {}
    }
    match (rules.nonce, c.nonce.as_deref()) {
        (Some(sent), Some(got)) if constant_eq(sent, got) => {}
        (None, None) => {}
        _ => return Err(InvalidToken::Nonce.into()),
    }
    if let Some(max_age) = rules.max_age {
        let at = c.auth_time.ok_or(InvalidToken::AuthTime)?;
        if rules.now.saturating_sub(at) > max_age.saturating_add(rules.leeway) {
            return Err(InvalidToken::AuthTime.into());
        }
    }
    if let (Some(expected), Some(access)) = (c.at_hash.as_deref(), rules.access_token) {
        if !constant_eq(expected, &crate::pkce::at_hash(access, rules.alg)) {
            return Err(InvalidToken::AtHash.into());
        }
    }
    Ok(())
}

/// The claims of a logout token, as sent.
#[derive(Deserialize)]
pub(crate) struct LogoutClaims {
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub sub: Option<String>,
    pub sid: Option<String>,
    pub events: HashMap<String, serde_json::Value>,
    pub nonce: Option<serde_json::Value>,
}

pub(crate) fn check_logout(c: LogoutClaims, now: i64, leeway: i64) -> Result<LogoutRequest> {
    check_times(c.exp, None, Some(c.iat), now, leeway)?;
    let event = c
        .events
        .get(BACKCHANNEL_LOGOUT_EVENT)
        .ok_or(InvalidToken::Claims)?;
    if !event.is_object() || c.nonce.is_some() || (c.sub.is_none() && c.sid.is_none()) {
        return Err(InvalidToken::Claims.into());
    }
    Ok(LogoutRequest {
        sub: c.sub,
        sid: c.sid,
        jti: c.jti,
        expires_at: c.exp,
    })
}

/// Compares two strings in time that depends only on their lengths.
pub(crate) fn constant_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, Algorithm, EncodingKey};

    const NOW: i64 = 1_800_000_000;

    fn claims() -> IdTokenClaims {
        IdTokenClaims {
            iss: "https://auth.example.com".into(),
            sub: "usr_1".into(),
            aud: Audience::One("pcc_app".into()),
            azp: Some("pcc_app".into()),
            exp: NOW + 300,
            iat: NOW,
            nbf: None,
            auth_time: Some(NOW - 100),
            nonce: Some("n-1".into()),
            sid: Some("ses_1".into()),
            at_hash: Some(crate::pkce::at_hash("the-access-token", Algorithm::ES256)),
            email: None,
            email_verified: None,
            other: HashMap::new(),
        }
    }

    fn rules<'a>() -> IdTokenRules<'a> {
        IdTokenRules {
            client_id: "pcc_app",
            nonce: Some("n-1"),
            max_age: Some(600),
            access_token: Some("the-access-token"),
            now: NOW,
            leeway: 30,
            alg: Algorithm::ES256,
        }
    }

    fn refused(c: &IdTokenClaims, r: &IdTokenRules<'_>) -> InvalidToken {
        match check_id_token(c, r) {
            Err(crate::Error::InvalidToken(why)) => why,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn id_token_rules() {
        check_id_token(&claims(), &rules()).unwrap();
        // azp: another client's, or missing with several audiences.
        let mut c = claims();
        c.azp = Some("pcc_other".into());
        assert_eq!(refused(&c, &rules()), InvalidToken::AuthorizedParty);
        let mut c = claims();
        c.aud = Audience::Many(vec!["pcc_app".into(), "pcc_app".into()]);
        c.azp = None;
        assert_eq!(refused(&c, &rules()), InvalidToken::AuthorizedParty);
        // An audience besides this client: not trusted.
        let mut c = claims();
        c.aud = Audience::Many(vec!["pcc_app".into(), "pcc_other".into()]);
        assert_eq!(refused(&c, &rules()), InvalidToken::Audience);
        // nonce: another, missing, or present when none was sent.
        let mut c = claims();
        c.nonce = Some("n-2".into());
        assert_eq!(refused(&c, &rules()), InvalidToken::Nonce);
        c.nonce = None;
        assert_eq!(refused(&c, &rules()), InvalidToken::Nonce);
        let r = IdTokenRules {
            nonce: None,
            ..rules()
        };
        assert_eq!(refused(&claims(), &r), InvalidToken::Nonce);
        // auth_time: missing or too old for max_age, or in the future.
        let mut c = claims();
        c.auth_time = None;
        assert_eq!(refused(&c, &rules()), InvalidToken::AuthTime);
        c.auth_time = Some(NOW - 700);
        assert_eq!(refused(&c, &rules()), InvalidToken::AuthTime);
        c.auth_time = Some(NOW + 120);
        assert_eq!(refused(&c, &rules()), InvalidToken::AuthTime);
        // at_hash of another access token.
        let r = IdTokenRules {
            access_token: Some("another-access-token"),
            ..rules()
        };
        assert_eq!(refused(&claims(), &r), InvalidToken::AtHash);
        // Times: expired, issued or valid only in the future (beyond the leeway).
        let mut c = claims();
        c.exp = NOW - 31;
        assert_eq!(refused(&c, &rules()), InvalidToken::Expired);
        let mut c = claims();
        c.iat = NOW + 31;
        assert_eq!(refused(&c, &rules()), InvalidToken::NotYetValid);
        let mut c = claims();
        c.nbf = Some(NOW + 31);
        assert_eq!(refused(&c, &rules()), InvalidToken::NotYetValid);
        // Within the leeway: fine.
        let mut c = claims();
        c.exp = NOW - 29;
        check_id_token(&c, &rules()).unwrap();
    }

    fn logout(v: serde_json::Value) -> crate::Result<LogoutRequest> {
        check_logout(serde_json::from_value(v).unwrap(), NOW, 30)
    }

    #[test]
    fn logout_token_rules() {
        let good = serde_json::json!({
            "iat": NOW, "exp": NOW + 120, "jti": "j1", "sid": "ses_1", "sub": "usr_1",
            "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
        });
        let ok = logout(good.clone()).unwrap();
        assert_eq!(
            (ok.sid.as_deref(), ok.expires_at),
            (Some("ses_1"), NOW + 120)
        );
        let with = |k: &str, v: serde_json::Value| {
            let mut t = good.clone();
            t[k] = v;
            t
        };
        let without = |k: &str| {
            let mut t = good.clone();
            t.as_object_mut().unwrap().remove(k);
            t
        };
        for (bad, why) in [
            (with("nonce", "n".into()), "a nonce"),
            (with("events", serde_json::json!({})), "no event"),
            (
                with("events", serde_json::json!({BACKCHANNEL_LOGOUT_EVENT: "x"})),
                "an event that is not an object",
            ),
            (without("sid"), "sid missing but sub there: fine"),
            (with("exp", (NOW - 31).into()), "expired"),
            (with("iat", (NOW + 31).into()), "from the future"),
        ] {
            let r = logout(bad);
            if why.ends_with("fine") {
                assert!(r.is_ok(), "{why}");
            } else {
                assert!(r.is_err(), "{why}");
            }
        }
        let mut neither = without("sid");
        neither.as_object_mut().unwrap().remove("sub");
        assert!(logout(neither).is_err(), "neither sid nor sub");
    }

    #[test]
    fn id_and_logout_tokens_are_never_eddsa_whatever_the_allow_list() {
        use base64::Engine;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let token = |alg: &str| {
            format!(
                "{}.{}.{}",
                b64(format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"k1"}}"#).as_bytes()),
                b64(b"{}"),
                b64(&[0u8; 64])
            )
        };
        let allowed = [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256];
        // Allowed for access tokens...
        assert!(header_of(&token("EdDSA"), &allowed).is_ok());
        // ...not for ID and logout tokens.
        assert!(matches!(
            id_token_header_of(&token("EdDSA"), &allowed),
            Err(crate::Error::InvalidToken(InvalidToken::Algorithm))
        ));
        for alg in ["ES256", "RS256"] {
            assert!(id_token_header_of(&token(alg), &allowed).is_ok(), "{alg}");
        }
    }

    #[test]
    fn signature_issuer_and_audience_are_checked_with_the_keys_own_algorithm() {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .unwrap();
        let pair = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
        )
        .unwrap();
        use aws_lc_rs::signature::KeyPair;
        let public = pair.public_key().as_ref();
        use base64::Engine;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(serde_json::json!({
            "kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256",
            "x": b64(&public[1..33]), "y": b64(&public[33..65]),
        }))
        .unwrap();
        let key = Key {
            alg: Algorithm::ES256,
            key: jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(),
        };
        let sign = |iss: &str, aud: &str| {
            let mut h = jsonwebtoken::Header::new(Algorithm::ES256);
            h.kid = Some("k1".into());
            h.typ = Some("at+jwt".into());
            encode(
                &h,
                &serde_json::json!({"iss": iss, "aud": aud, "sub": "s", "exp": NOW + 60,
                    "iat": NOW, "client_id": "pcc_app"}),
                &EncodingKey::from_ec_der(pkcs8.as_ref()),
            )
            .unwrap()
        };
        let allowed = [Algorithm::ES256, Algorithm::RS256];
        let check = |t: &str| -> crate::Result<AccessTokenClaims> {
            let (h, _) = header_of(t, &allowed)?;
            verify(
                t,
                &h,
                &key,
                "https://auth.example.com",
                "https://api",
                &["exp", "iss", "aud"],
            )
        };
        check(&sign("https://auth.example.com", "https://api")).unwrap();
        let why = |r: crate::Result<AccessTokenClaims>| match r {
            Err(crate::Error::InvalidToken(w)) => w,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            why(check(&sign("https://evil.example.com", "https://api"))),
            InvalidToken::Issuer
        );
        assert_eq!(
            why(check(&sign("https://auth.example.com", "https://other"))),
            InvalidToken::Audience
        );
        // A header naming RS256 for this EC key: refused before any signature check.
        let t = sign("https://auth.example.com", "https://api");
        let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
        parts[0] = b64(br#"{"alg":"RS256","typ":"at+jwt","kid":"k1"}"#);
        assert_eq!(why(check(&parts.join("."))), InvalidToken::Algorithm);
        // Not in the allow-list at all.
        parts[0] = b64(br#"{"alg":"HS256","typ":"at+jwt","kid":"k1"}"#);
        assert_eq!(why(check(&parts.join("."))), InvalidToken::Algorithm);
        parts[0] = b64(br#"{"alg":"none","typ":"at+jwt","kid":"k1"}"#);
        assert_eq!(why(check(&parts.join("."))), InvalidToken::Malformed);
    }
}
