//! The authorization request (code flow with PKCE S256, `state` and `nonce`) and its callback.

use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::{Error, OAuthError, Result};
use crate::secret::Secret;
use crate::tokens::SignedIn;
use crate::Portcullis;

/// The `prompt` values Portcullis understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prompt {
    /// Never show a page: `login_required` if there is no session.
    None,
    /// Ask for the password again even with a session.
    Login,
}

/// What to ask for; `AuthorizationOptions::default()` asks for `openid` only.
///
/// ```
/// use portcullis_client::{AuthorizationOptions, Prompt};
/// let options = AuthorizationOptions {
///     scopes: vec!["openid".into(), "email".into(), "offline_access".into()],
///     prompt: Some(Prompt::Login),
///     max_age: Some(300),
///     ..Default::default()
/// };
/// # let _ = options;
/// ```
#[derive(Clone, Debug, Default)]
pub struct AuthorizationOptions {
    /// Scopes; `openid` is added if missing.
    pub scopes: Vec<String>,
    /// Ask for a sign-in page, or forbid one.
    pub prompt: Option<Prompt>,
    /// The e-mail address to prefill.
    pub login_hint: Option<String>,
    /// The oldest sign-in acceptable, seconds; the ID token's `auth_time` is checked against it.
    pub max_age: Option<i64>,
    /// The API the access token is for (RFC 8707).
    pub resource: Option<String>,
}

/// How long a [`PendingAuthorization`] can be finished, seconds.
pub const PENDING_LIFETIME: i64 = 600;

/// What the app keeps (server-side, or sealed) between sending the browser off and the
/// callback, and uses once (older than [`PENDING_LIFETIME`] it is refused): `state`, `nonce`, the PKCE verifier, the redirect URI and `max_age`. `Debug`
/// hides the verifier. It serialises to JSON for storage.
#[derive(Clone, Serialize, Deserialize)]
pub struct PendingAuthorization {
    /// The `state` sent; the callback must carry it back (CSRF).
    pub state: String,
    /// The `nonce` sent; the ID token must carry it (replay).
    pub nonce: String,
    #[serde(with = "exposed")]
    /// The PKCE verifier whose S256 challenge was sent.
    pub code_verifier: Secret,
    /// The redirect URI sent; the callback must be it, and the exchange repeats it.
    pub redirect_uri: String,
    /// The `max_age` asked for, checked against the ID token's `auth_time`.
    pub max_age: Option<i64>,
    /// When the request was made (seconds since the epoch).
    pub created_at: i64,
}

impl std::fmt::Debug for PendingAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingAuthorization")
            .field("redirect_uri", &self.redirect_uri)
            .field("max_age", &self.max_age)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// The verifier is written out only as part of a `PendingAuthorization` the app stores.
mod exposed {
    use crate::Secret;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(s: &Secret, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s.expose())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Secret, D::Error> {
        String::deserialize(de).map(Secret::new)
    }
}

impl Portcullis {
    /// The URL to send the browser to, and the [`PendingAuthorization`] to keep until the
    /// callback. `redirect_uri` must be registered for the client exactly.
    ///
    /// ```no_run
    /// # async fn demo(portcullis: portcullis_client::Portcullis) -> portcullis_client::Result<()> {
    /// let (url, pending) = portcullis
    ///     .authorization_url("https://app.example.com/callback", &Default::default())
    ///     .await?;
    /// # let _ = (url, pending); Ok(()) }
    /// ```
    pub async fn authorization_url(
        &self,
        redirect_uri: &str,
        options: &AuthorizationOptions,
    ) -> Result<(Url, PendingAuthorization)> {
        let redirect = Url::parse(redirect_uri)
            .map_err(|_| Error::Config("the redirect URI is not a URL".into()))?;
        if redirect.fragment().is_some() {
            return Err(Error::Config(
                "the redirect URI must not have a fragment".into(),
            ));
        }
        let meta = self.metadata().await?;
        let mut url = Url::parse(&meta.authorization_endpoint)
            .map_err(|_| Error::Protocol("the authorization endpoint is not a URL".into()))?;
        let pending = PendingAuthorization {
            state: crate::pkce::random(32)?,
            nonce: crate::pkce::random(32)?,
            code_verifier: Secret::new(crate::pkce::random(32)?),
            redirect_uri: redirect_uri.to_owned(),
            max_age: options.max_age,
            created_at: self.now(),
        };
        let mut scopes: Vec<&str> = vec!["openid"];
        for s in &options.scopes {
            if !scopes.contains(&s.as_str()) {
                scopes.push(s);
            }
        }
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.inner.config.client_id)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("scope", &scopes.join(" "))
                .append_pair("state", &pending.state)
                .append_pair("nonce", &pending.nonce)
                .append_pair(
                    "code_challenge",
                    &crate::pkce::challenge(pending.code_verifier.expose()),
                )
                .append_pair("code_challenge_method", "S256");
            match options.prompt {
                Some(Prompt::None) => {
                    q.append_pair("prompt", "none");
                }
                Some(Prompt::Login) => {
                    q.append_pair("prompt", "login");
                }
                None => {}
            }
            if let Some(hint) = &options.login_hint {
                q.append_pair("login_hint", hint);
            }
            if let Some(max_age) = options.max_age {
                q.append_pair("max_age", &max_age.max(0).to_string());
            }
            if let Some(resource) = &options.resource {
                q.append_pair("resource", resource);
            }
        }
        Ok((url, pending))
    }

    /// Finishes the sign-in at the callback: `callback_url` is the whole URL the browser
    /// came back to. Checks, in this order, that it is the pending redirect URI, that `iss`
    /// is the configured issuer (RFC 9207) and that `state` matches; then turns an `error`
    /// into [`Error::Authorization`], exchanges the code with the PKCE verifier and validates
    /// the ID token (signature via the JWKS, `iss`, `aud`, `azp`, `exp`, `nonce`, `auth_time`
    /// against `max_age`, `at_hash`).
    ///
    /// ```no_run
    /// # async fn demo(portcullis: portcullis_client::Portcullis, pending: portcullis_client::PendingAuthorization) -> portcullis_client::Result<()> {
    /// let signed_in = portcullis
    ///     .authenticate_with_code("https://app.example.com/callback?code=…&state=…&iss=…", &pending)
    ///     .await?;
    /// println!("{} {:?}", signed_in.claims.sub, signed_in.claims.email);
    /// # Ok(()) }
    /// ```
    pub async fn authenticate_with_code(
        &self,
        callback_url: &str,
        pending: &PendingAuthorization,
    ) -> Result<SignedIn> {
        // A pending authorization lives as long as a sign-in may take, and no longer.
        if self.now().saturating_sub(pending.created_at) > PENDING_LIFETIME {
            return Err(Error::Callback("the pending authorization has expired"));
        }
        let callback = Callback::parse(callback_url, &pending.redirect_uri)?;
        match callback.iss.as_deref() {
            Some(iss) if iss == self.issuer() => {}
            _ => return Err(Error::IssuerMismatch),
        }
        match callback.state.as_deref() {
            Some(s) if crate::validate::constant_eq(s, &pending.state) => {}
            _ => return Err(Error::StateMismatch),
        }
        if let Some(code) = callback.error {
            return Err(Error::Authorization(OAuthError::from_parts(
                code,
                callback.error_description,
                None,
            )));
        }
        let code = callback.code.ok_or(Error::Callback("no code"))?;
        self.exchange_code(&code, pending).await
    }
}

/// The longest authorization code passed on to the token endpoint.
const MAX_CODE_LEN: usize = 1024;

/// The parameters of a callback, each at most once.
#[derive(Default)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

impl Callback {
    fn parse(callback_url: &str, redirect_uri: &str) -> Result<Self> {
        if callback_url.len() > 8192 {
            return Err(Error::Callback("too long"));
        }
        let url = Url::parse(callback_url).map_err(|_| Error::Callback("not a URL"))?;
        let expected = Url::parse(redirect_uri).map_err(|_| Error::Callback("bad redirect URI"))?;
        if url.scheme() != expected.scheme()
            || url.host() != expected.host()
            || url.port_or_known_default() != expected.port_or_known_default()
            || url.path() != expected.path()
        {
            return Err(Error::Callback("not the pending redirect URI"));
        }
        let mut c = Callback::default();
        for (k, v) in url.query_pairs() {
            let slot = match k.as_ref() {
                "code" => &mut c.code,
                "state" => &mut c.state,
                "iss" => &mut c.iss,
                "error" => &mut c.error,
                "error_description" => &mut c.error_description,
                _ => continue,
            };
            if slot.replace(v.into_owned()).is_some() {
                return Err(Error::Callback("a parameter is repeated"));
            }
        }
        // Codes are short (Portcullis's are under 100 characters): a huge one is not sent on.
        if c.code
            .as_ref()
            .is_some_and(|code| code.len() > MAX_CODE_LEN)
        {
            return Err(Error::Callback("the code is too long"));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_values_outside_the_rfc_6749_charset_are_not_passed_on() {
        let e = OAuthError::from_parts("access_denied".into(), Some("User said no".into()), None);
        assert_eq!(
            (e.code.as_str(), e.description.as_deref()),
            ("access_denied", Some("User said no"))
        );
        for hostile in ["a\nb", "a\u{1b}[31mb", "a\"b", "a\\b", "a\u{2028}b", ""] {
            let e = OAuthError::from_parts(hostile.into(), Some(hostile.into()), None);
            assert_eq!(e.code, "unexpected_response", "{hostile:?}");
            assert_eq!(e.description, None, "{hostile:?}");
        }
        let e = OAuthError::from_parts("x".repeat(129), Some("y".repeat(1025)), None);
        assert_eq!(
            (e.code.as_str(), e.description),
            ("unexpected_response", None)
        );
        assert_eq!(
            OAuthError::from_parts("two words".into(), None, None).code,
            "unexpected_response"
        );
    }

    #[test]
    fn callbacks_are_parsed_strictly() {
        let cb = "https://app.example.com/cb";
        let c = Callback::parse("https://app.example.com/cb?code=a&state=b&iss=c", cb).unwrap();
        assert_eq!(c.code.as_deref(), Some("a"));
        for bad in [
            "https://app.example.com/cb?code=a&code=b",
            "https://evil.example.com/cb?code=a",
            "https://app.example.com/other?code=a",
            "http://app.example.com/cb?code=a",
            "not a url",
            &format!(
                "https://app.example.com/cb?code={}",
                "c".repeat(MAX_CODE_LEN + 1)
            ),
        ] {
            assert!(Callback::parse(bad, cb).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_verifier_never_prints() {
        let p = PendingAuthorization {
            state: "s".into(),
            nonce: "n".into(),
            code_verifier: Secret::new("very-secret-verifier"),
            redirect_uri: "https://app.example.com/cb".into(),
            max_age: None,
            created_at: 0,
        };
        assert!(!format!("{p:?}").contains("very-secret"));
        let json = serde_json::to_string(&p).unwrap();
        let back: PendingAuthorization = serde_json::from_str(&json).unwrap();
        assert_eq!(back.code_verifier.expose(), "very-secret-verifier");
    }
}
