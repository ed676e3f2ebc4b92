//! Typed errors. Nothing here carries a secret or a token.

/// Everything the SDK can refuse or fail with.
///
/// ```no_run
/// # async fn demo(portcullis: portcullis_client::Portcullis, callback: &str, pending: portcullis_client::PendingAuthorization) {
/// use portcullis_client::Error;
/// match portcullis.authenticate_with_code(callback, &pending).await {
///     Ok(signed_in) => println!("signed in: {}", signed_in.claims.sub),
///     Err(Error::Authorization(e)) if e.is("access_denied") => println!("the user said no"),
///     Err(Error::StateMismatch | Error::IssuerMismatch) => println!("a forged callback"),
///     Err(e) => println!("sign-in failed: {e}"),
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is unusable (a missing variable, a non-`https` URL, a bad CA file).
    #[error("configuration: {0}")]
    Config(String),
    /// Portcullis could not be reached (connection, TLS, timeout).
    #[error("could not reach Portcullis: {0}")]
    Transport(String),
    /// Portcullis answered something the SDK cannot use (bad discovery document or JWKS, an
    /// unexpected status).
    #[error("unexpected answer from Portcullis: {0}")]
    Protocol(String),
    /// The callback is malformed: not the pending redirect URI, a repeated parameter.
    #[error("the callback is malformed: {0}")]
    Callback(&'static str),
    /// The callback's `state` is not the pending authorization's: a forged or crossed
    /// response (CSRF). Nothing was exchanged.
    #[error("the callback's state does not match the pending authorization")]
    StateMismatch,
    /// The callback's `iss` is missing or not the configured issuer (RFC 9207 mix-up
    /// defence). Nothing was exchanged.
    #[error("the callback's issuer is missing or not the configured one")]
    IssuerMismatch,
    /// The authorization server answered the callback with an error.
    #[error("authorization refused: {0}")]
    Authorization(OAuthError),
    /// The token, revocation or other endpoint refused the request.
    #[error("request refused: {0}")]
    Endpoint(OAuthError),
    /// A token failed validation.
    #[error("invalid token: {0}")]
    InvalidToken(InvalidToken),
    /// Portcullis answered a refresh, so the refresh token sent is spent and `tokens` holds
    /// its successor, but the new ID token failed validation (or does not continue the
    /// sign-in it refreshes). Keep `tokens.refresh_token` if you go on: the old one presented
    /// again would look like theft and end the session.
    #[error("the refreshed ID token is not valid: {error}")]
    RefreshedIdToken {
        /// The new tokens, refresh token included.
        tokens: Box<crate::tokens::Tokens>,
        /// Why the ID token was refused.
        error: Box<Error>,
    },
}

/// An RFC 6749 error response: its `error` code and optional description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// The `error` code, such as `access_denied`, `login_required` or `invalid_grant`.
    pub code: String,
    /// The `error_description`, if any (text from the server, meant for developers).
    pub description: Option<String>,
    /// The HTTP status, for endpoint errors (`None` for callback errors).
    pub status: Option<u16>,
}

impl OAuthError {
    /// Builds one from what a server or callback said, keeping only what RFC 6749 allows
    /// (§4.1.2.1, §5.2: printable ASCII without the double quote and the backslash): a code outside that set, or
    /// longer than 128 characters, becomes `unexpected_response`; a description outside it
    /// (or over 1,024 characters) is dropped. So neither can carry line breaks or terminal
    /// escapes into an app's log or page.
    pub(crate) fn from_parts(
        code: String,
        description: Option<String>,
        status: Option<u16>,
    ) -> Self {
        fn allowed(v: &str, max: usize) -> bool {
            !v.is_empty()
                && v.len() <= max
                && v.bytes()
                    .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5b | 0x5d..=0x7e))
        }
        let code_ok = allowed(&code, 128) && !code.contains(' ');
        OAuthError {
            code: if code_ok {
                code
            } else {
                "unexpected_response".into()
            },
            description: description.filter(|d| allowed(d, 1024)),
            status,
        }
    }

    /// True for `code == expected`.
    pub fn is(&self, expected: &str) -> bool {
        self.code == expected
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.code)?;
        if let Some(d) = &self.description {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidToken {
    #[error("not a well-formed JWT")]
    /// Not three base64url parts, or a header or claims that are not JSON.
    Malformed,
    /// `alg` not in the configured allow-list, or not the key's algorithm (`none` included).
    #[error("algorithm not allowed")]
    Algorithm,
    /// The `typ` header is not the one this kind of token must carry.
    #[error("wrong token type")]
    Type,
    /// No key with this `kid` in the JWKS, even after a refresh.
    #[error("unknown signing key")]
    UnknownKey,
    #[error("bad signature")]
    /// The signature does not verify with the key its `kid` names.
    Signature,
    #[error("wrong issuer")]
    /// `iss` is not the configured issuer.
    Issuer,
    #[error("wrong audience")]
    /// `aud` does not name the expected audience.
    Audience,
    #[error("wrong authorized party (azp)")]
    /// Several audiences without `azp`, or an `azp` that is not this client.
    AuthorizedParty,
    #[error("expired")]
    /// `exp` has passed, beyond the leeway.
    Expired,
    #[error("not valid yet")]
    /// `nbf` or `iat` is in the future, beyond the leeway.
    NotYetValid,
    #[error("nonce does not match")]
    /// The ID token's `nonce` is not the one sent (or is there when none was).
    Nonce,
    /// `auth_time` missing, or older than the `max_age` that was asked for.
    #[error("authentication too old for max_age")]
    AuthTime,
    #[error("at_hash does not match the access token")]
    /// The ID token's `at_hash` is not that of the access token it came with.
    AtHash,
    #[error("a required scope is missing")]
    /// A scope the caller requires is not granted.
    Scope,
    /// A required claim is missing or has the wrong shape.
    #[error("a required claim is missing or malformed")]
    Claims,
}

impl From<InvalidToken> for Error {
    fn from(e: InvalidToken) -> Self {
        Error::InvalidToken(e)
    }
}

/// The SDK's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
