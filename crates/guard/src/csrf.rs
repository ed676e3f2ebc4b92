//! CSRF defenses for state-changing requests: a synchronizer token (always required) and a
//! same-origin check: `Sec-Fetch-Site: same-origin` when the browser sends it, else an `Origin`
//! equal to ours. `Origin: null` never passes; a request with neither header is refused.
//!
//! Tokens either live server-side with the session ([`new_token`] + [`check_token`], as
//! Portcullis does with its pending sign-ins) or are derived from the session id
//! ([`SessionBoundTokens`]: an HMAC, nothing to store), so a token from one browser session is
//! worthless in another.

use http::HeaderMap;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrfError {
    CrossSite,
    MissingOrigin,
    BadToken,
}

/// Checks that a POST comes from a page of `origin` (e.g. `https://id.example.com`): every
/// one of `Sec-Fetch-Site` and `Origin` that is present must say so (`same-origin`, and our
/// origin exactly), and at least one must be present. Repeated headers are refused.
pub fn check_same_origin(headers: &HeaderMap, origin: &str) -> Result<(), CsrfError> {
    let one = |name| {
        let mut all = headers.get_all(name).iter();
        match (all.next(), all.next()) {
            (Some(v), None) => Ok(Some(v)),
            (None, _) => Ok(None),
            (Some(_), Some(_)) => Err(CsrfError::CrossSite),
        }
    };
    let site = one("sec-fetch-site")?;
    let sent_origin = one(http::header::ORIGIN.as_str())?;
    if site.is_some_and(|s| s.as_bytes() != b"same-origin") {
        return Err(CsrfError::CrossSite);
    }
    if sent_origin.is_some_and(|o| o.as_bytes() != origin.as_bytes()) {
        return Err(CsrfError::CrossSite);
    }
    if site.is_none() && sent_origin.is_none() {
        return Err(CsrfError::MissingOrigin);
    }
    Ok(())
}

/// Constant-time comparison of the submitted token with the one bound to the browser session.
pub fn check_token(submitted: Option<&str>, expected: &str) -> Result<(), CsrfError> {
    use subtle::ConstantTimeEq;
    match submitted {
        Some(s)
            if !expected.is_empty()
                && s.len() == expected.len()
                && bool::from(s.as_bytes().ct_eq(expected.as_bytes())) =>
        {
            Ok(())
        }
        _ => Err(CsrfError::BadToken),
    }
}

/// A new random token (256 bits, base64url).
pub fn new_token() -> String {
    use aws_lc_rs::rand::SecureRandom;
    use base64::Engine;
    let mut b = [0u8; 32];
    if aws_lc_rs::rand::SystemRandom::new().fill(&mut b).is_err() {
        std::process::abort();
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Stateless synchronizer tokens bound to a session: `HMAC-SHA256(key, session id)`.
pub struct SessionBoundTokens {
    key: aws_lc_rs::hmac::Key,
}

impl std::fmt::Debug for SessionBoundTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionBoundTokens(..)")
    }
}

/// A key shorter than 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the CSRF key must be at least 32 bytes")]
pub struct ShortKey;

impl SessionBoundTokens {
    /// With a key from configuration (at least 32 bytes), so tokens survive restarts and are
    /// the same on every instance.
    pub fn new(key: &[u8]) -> Result<Self, ShortKey> {
        if key.len() < 32 {
            return Err(ShortKey);
        }
        Ok(Self {
            key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key),
        })
    }

    /// With a fresh random key (tokens end with the process).
    pub fn random() -> Self {
        use aws_lc_rs::rand::SecureRandom;
        let mut b = [0u8; 32];
        if aws_lc_rs::rand::SystemRandom::new().fill(&mut b).is_err() {
            std::process::abort();
        }
        Self {
            key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &b),
        }
    }

    /// The token for forms of `session_id`.
    pub fn token_for(&self, session_id: &str) -> String {
        use base64::Engine;
        let tag = aws_lc_rs::hmac::sign(&self.key, session_id.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    /// Checks a submitted token against `session_id` in constant time. An empty session id
    /// (no session) never passes.
    pub fn verify(&self, session_id: &str, submitted: Option<&str>) -> Result<(), CsrfError> {
        if session_id.is_empty() {
            return Err(CsrfError::BadToken);
        }
        check_token(submitted, &self.token_for(session_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn origin_rules() {
        let me = "https://id.example";
        let mut h = HeaderMap::new();
        assert_eq!(check_same_origin(&h, me), Err(CsrfError::MissingOrigin));
        h.insert("origin", HeaderValue::from_static("null"));
        assert_eq!(check_same_origin(&h, me), Err(CsrfError::CrossSite));
        h.insert("origin", HeaderValue::from_static("https://id.example"));
        assert_eq!(check_same_origin(&h, me), Ok(()));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-site"));
        assert_eq!(check_same_origin(&h, me), Err(CsrfError::CrossSite));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert_eq!(check_same_origin(&h, me), Ok(()));
        // Both present: both must agree.
        h.insert("origin", HeaderValue::from_static("https://evil.example"));
        assert_eq!(check_same_origin(&h, me), Err(CsrfError::CrossSite));
        h.remove("origin");
        assert_eq!(check_same_origin(&h, me), Ok(()), "Sec-Fetch-Site alone");
        h.append("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert_eq!(
            check_same_origin(&h, me),
            Err(CsrfError::CrossSite),
            "repeated"
        );
    }

    #[test]
    fn session_bound_tokens() {
        let t = SessionBoundTokens::random();
        let a = t.token_for("session-a");
        assert!(t.verify("session-a", Some(&a)).is_ok());
        assert_eq!(t.verify("session-b", Some(&a)), Err(CsrfError::BadToken));
        assert_eq!(
            t.verify("", Some(&t.token_for(""))),
            Err(CsrfError::BadToken)
        );
        assert_eq!(t.verify("session-a", None), Err(CsrfError::BadToken));
        // Another key, another token: a token minted elsewhere is worthless here.
        assert_ne!(SessionBoundTokens::random().token_for("session-a"), a);
        assert!(SessionBoundTokens::new(&[7u8; 31]).is_err());
        let k = SessionBoundTokens::new(&[7u8; 32]).unwrap();
        assert_eq!(
            k.token_for("s"),
            SessionBoundTokens::new(&[7u8; 32]).unwrap().token_for("s")
        );
        assert_eq!(format!("{k:?}"), "SessionBoundTokens(..)");
    }

    #[test]
    fn token_rules() {
        let t = new_token();
        assert!(check_token(Some(&t), &t).is_ok());
        assert!(check_token(None, &t).is_err());
        assert!(check_token(Some("x"), &t).is_err());
        assert!(check_token(Some(""), "").is_err());
    }
}
