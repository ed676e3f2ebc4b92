//! Content-Security-Policy with a fresh nonce per response.
//!
//! The [`crate::headers::security_headers`] middleware puts a [`CspNonce`] into every request's
//! extensions (handlers read it with `Extension<CspNonce>` if a template needs a `<script
//! nonce>`), and writes the policy on the way out: the one a handler attached to its response as
//! a [`PagePolicy`] extension, else the default page policy for HTML, else a policy that lets
//! nothing load for every other response.
//!
//! Pages get `default-src 'self'`, scripts and styles only from our origin or with the nonce,
//! `object-src 'none'`, `base-uri 'none'`, `frame-ancestors 'none'` and `form-action 'self'`
//! plus the origins a page names (browsers apply `form-action` to the redirect that follows a
//! form post, so a login form must name the app it returns to). No `'unsafe-inline'`,
//! `'unsafe-eval'`, wildcard or `data:` source can be expressed through this API.

use std::fmt;

use http::HeaderValue;

/// The nonce of one response: 128 random bits, base64url.
#[derive(Clone, PartialEq, Eq)]
pub struct CspNonce(String);

impl CspNonce {
    /// A fresh nonce.
    pub fn generate() -> Self {
        use aws_lc_rs::rand::SecureRandom;
        use base64::Engine;
        let mut b = [0u8; 16];
        if aws_lc_rs::rand::SystemRandom::new().fill(&mut b).is_err() {
            // No randomness means no safe nonce; the process cannot serve safely.
            std::process::abort();
        }
        Self(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
    }

    /// The value for a `nonce="…"` attribute.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CspNonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CspNonce(..)")
    }
}

/// An origin that cannot be written as a CSP source expression.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("origin cannot be named in a Content-Security-Policy: {0:?}")]
pub struct UnexpressibleOrigin(pub String);

/// The policy of one HTML page. Attach it to a response with
/// `response.extensions_mut().insert(policy)`; the headers middleware renders it with the
/// response's nonce.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PagePolicy {
    form_action: Vec<String>,
}

impl PagePolicy {
    /// `form-action 'self'` only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also allows forms (and the redirects that follow them) to reach `origin`
    /// (`https://app.example.com`, `http://127.0.0.1:9000`). CSP host sources cannot name an
    /// IPv6 literal, and anything other than a plain `http(s)` tuple origin is refused too:
    /// callers must then avoid the form-post redirect (for example with an interstitial page).
    pub fn allow_form_action(mut self, origin: &str) -> Result<Self, UnexpressibleOrigin> {
        if !expressible(origin) {
            return Err(UnexpressibleOrigin(origin.chars().take(200).collect()));
        }
        if !self.form_action.iter().any(|o| o == origin) {
            self.form_action.push(origin.to_owned());
        }
        Ok(self)
    }

    /// The header value with `nonce`.
    pub fn header_value(&self, nonce: &CspNonce) -> HeaderValue {
        let mut s = format!(
            "default-src 'self'; script-src 'nonce-{n}'; style-src 'self' 'nonce-{n}'; \
             object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
            n = nonce.as_str()
        );
        for o in &self.form_action {
            s.push(' ');
            s.push_str(o);
        }
        // Every part was checked to be visible ASCII; the fallback is the strictest policy.
        HeaderValue::from_str(&s).unwrap_or(HeaderValue::from_static(API_POLICY))
    }
}

/// The policy of every non-HTML response: nothing may load, nothing may frame it.
pub const API_POLICY: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

/// `scheme://host[:port]` with a DNS name or an IPv4 literal, lower case, nothing else.
fn expressible(origin: &str) -> bool {
    let rest = match origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
    {
        Some(r) => r,
        None => return false,
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (rest, None),
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !host.starts_with('.')
        && !host.ends_with('.');
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_fresh() {
        let a = CspNonce::generate();
        let b = CspNonce::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 22);
        assert_eq!(format!("{a:?}"), "CspNonce(..)");
    }

    #[test]
    fn policy_text() {
        let n = CspNonce::generate();
        let p = PagePolicy::new()
            .allow_form_action("https://app.example.com")
            .unwrap()
            .allow_form_action("http://127.0.0.1:9000")
            .unwrap();
        let v = p.header_value(&n);
        let v = v.to_str().unwrap();
        assert!(v.starts_with("default-src 'self'; "));
        assert!(v.contains(&format!("script-src 'nonce-{}';", n.as_str())));
        assert!(v.ends_with("form-action 'self' https://app.example.com http://127.0.0.1:9000"));
        assert!(!v.contains("unsafe"));
    }

    #[test]
    fn only_plain_origins_can_be_named() {
        for bad in [
            "http://[::1]:9000",
            "https://app.example.com/path",
            "https://app.example.com; script-src *",
            "https://*.example.com",
            "javascript:alert(1)",
            "data:",
            "'unsafe-inline'",
            "https://APP.example.com",
            "https://",
            "https://app.example.com:",
            "https://app.example.com:8443x",
            "com.example.app://cb",
        ] {
            assert!(PagePolicy::new().allow_form_action(bad).is_err(), "{bad}");
        }
    }
}
