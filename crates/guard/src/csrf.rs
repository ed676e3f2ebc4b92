//! CSRF defenses for state-changing requests: a synchronizer token (always required) and a
//! same-origin check: `Sec-Fetch-Site: same-origin` when the browser sends it, else an `Origin`
//! equal to ours. `Origin: null` never passes; a request with neither header is refused.

use http::HeaderMap;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrfError {
    CrossSite,
    MissingOrigin,
    BadToken,
}

/// Checks that a POST comes from a page of `origin` (e.g. `https://id.example.com`).
pub fn check_same_origin(headers: &HeaderMap, origin: &str) -> Result<(), CsrfError> {
    if let Some(site) = headers.get("sec-fetch-site") {
        return if site.as_bytes() == b"same-origin" {
            Ok(())
        } else {
            Err(CsrfError::CrossSite)
        };
    }
    match headers.get(http::header::ORIGIN) {
        Some(o) if o.as_bytes() == origin.as_bytes() => Ok(()),
        Some(_) => Err(CsrfError::CrossSite),
        None => Err(CsrfError::MissingOrigin),
    }
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
