//! Redirect URIs: strict validation at registration, exact string matching at use.
//!
//! Registration accepts only `https` URIs and `http` on a loopback host, in canonical form
//! (what a WHATWG parser would serialise, byte for byte), with no fragment, userinfo, wildcard,
//! dot segment, path parameter, encoded separator, backslash or control character. Matching is
//! by exact string; the only freedom is the port of an `http` loopback IP literal (RFC 8252 §7.3).

use url::{Host, Url};

/// Why a redirect URI was refused at registration; safe to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedirectUriError {
    #[error("redirect URI is empty or longer than 2000 bytes")]
    Length,
    #[error("redirect URI contains whitespace, control characters, backslashes or non-ASCII")]
    Characters,
    #[error("redirect URI must not contain a fragment ('#')")]
    Fragment,
    #[error("redirect URI must not contain wildcards ('*')")]
    Wildcard,
    #[error("redirect URI is not an absolute URI")]
    NotAbsolute,
    #[error("redirect URI must use https (http only for loopback hosts)")]
    Scheme,
    #[error("redirect URI must not contain userinfo ('@') or percent-encoding in its authority")]
    Authority,
    #[error(
        "redirect URI path must not contain dot segments, ';' parameters or encoded separators"
    )]
    Path,
    #[error("redirect URI query must not use the response parameters code, state, iss or error")]
    ReservedParameter,
    #[error("redirect URI is not in canonical form; register it exactly as browsers send it: {0}")]
    NotCanonical(String),
}

/// A redirect URI accepted for registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectUri(String);

impl RedirectUri {
    /// Validates a URI for registration.
    pub fn parse(raw: &str) -> Result<Self, RedirectUriError> {
        if raw.is_empty() || raw.len() > 2000 {
            return Err(RedirectUriError::Length);
        }
        if raw
            .bytes()
            .any(|b| !(0x21..=0x7e).contains(&b) || b == b'\\')
        {
            return Err(RedirectUriError::Characters);
        }
        if raw.contains('#') {
            return Err(RedirectUriError::Fragment);
        }
        if raw.contains('*') {
            return Err(RedirectUriError::Wildcard);
        }
        // Scheme check on the raw text, case-insensitively, before any parser is involved:
        // this refuses `JaVaScRiPt:`, `DATA:`, `vbscript:` and every other scheme.
        let lower = raw.to_ascii_lowercase();
        let (is_https, rest) = if let Some(r) = lower.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = lower.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(RedirectUriError::Scheme);
        };
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        if authority.is_empty() || authority.contains('@') || authority.contains('%') {
            return Err(RedirectUriError::Authority);
        }
        let path_and_query = &rest[authority_end..];
        if let Some((_, query)) = raw.split_once('?') {
            let reserved = [
                "code",
                "state",
                "iss",
                "error",
                "error_description",
                "error_uri",
                "session_state",
            ];
            // Names compared case-insensitively, split on `&` and `;`, with `name[]` forms:
            // client-side parsers differ on all three, and none may see a second `code`.
            let names = query
                .split(['&', ';'])
                .map(|pair| pair.split('=').next().unwrap_or_default())
                .map(|name| {
                    percent_encoding::percent_decode_str(name)
                        .decode_utf8_lossy()
                        .to_ascii_lowercase()
                });
            for name in names {
                let base = name.split('[').next().unwrap_or_default().trim();
                if reserved.contains(&base) {
                    return Err(RedirectUriError::ReservedParameter);
                }
            }
        }
        if !percent_encoding_is_valid(raw) {
            return Err(RedirectUriError::Characters);
        }
        let path = path_and_query.split('?').next().unwrap_or_default();
        if !path_is_safe(path) {
            return Err(RedirectUriError::Path);
        }
        let url = Url::parse(raw).map_err(|_| RedirectUriError::NotAbsolute)?;
        if url.username() != "" || url.password().is_some() {
            return Err(RedirectUriError::Authority);
        }
        if !is_https && !is_loopback_host(url.host()) {
            return Err(RedirectUriError::Scheme);
        }
        if url.port() == Some(0) {
            return Err(RedirectUriError::Authority);
        }
        if url.as_str() != raw {
            return Err(RedirectUriError::NotCanonical(url.as_str().to_owned()));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Is this an `http` URI on a loopback IP literal, whose port the client may choose?
    fn loopback_ip_prefix(registered: &str) -> Option<(&'static str, &str)> {
        for host in ["http://127.0.0.1", "http://[::1]"] {
            if let Some(rest) = registered.strip_prefix(host) {
                // The host must end here: `http://127.0.0.10/` is another host.
                if rest.is_empty() || rest.starts_with([':', '/', '?']) {
                    return Some((host, rest));
                }
            }
        }
        None
    }
}

/// Every `%` starts a two-hex-digit escape.
fn percent_encoding_is_valid(raw: &str) -> bool {
    let b = raw.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let ok = b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

fn is_loopback_host(host: Option<Host<&str>>) -> bool {
    match host {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

fn path_is_safe(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    if lower.contains(';')
        || lower.contains("%2f")
        || lower.contains("%5c")
        || lower.contains("%00")
    {
        return false;
    }
    lower.split('/').all(|seg| {
        let decoded = seg.replace("%2e", ".");
        decoded != "." && !decoded.starts_with("..")
    })
}

/// Does the `presented` redirect URI match one of the `registered` ones? Exact string match;
/// for an `http` loopback IP literal any port is allowed (RFC 8252 §7.3), nothing else varies.
pub fn matches(registered: &[String], presented: &str) -> bool {
    registered
        .iter()
        .any(|r| r == presented || loopback_port_match(r, presented))
}

fn loopback_port_match(registered: &str, presented: &str) -> bool {
    let Some((host, reg_rest)) = RedirectUri::loopback_ip_prefix(registered) else {
        return false;
    };
    // Registered without a port: the rest starts with '/' or '?' (or is empty).
    let reg_rest = match reg_rest.strip_prefix(':') {
        Some(after_port) => match after_port.find(|c: char| !c.is_ascii_digit()) {
            Some(i) => &after_port[i..],
            None => "",
        },
        None => reg_rest,
    };
    let Some(after_host) = presented.strip_prefix(host) else {
        return false;
    };
    let Some(after_colon) = after_host.strip_prefix(':') else {
        return after_host == reg_rest;
    };
    let digits_end = after_colon
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(after_colon.len());
    let (port, rest) = after_colon.split_at(digits_end);
    let port_ok = !port.is_empty()
        && port.len() <= 5
        && !port.starts_with('0')
        && port.parse::<u32>().is_ok_and(|p| (1..=65535).contains(&p));
    port_ok && rest == reg_rest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_refuses_the_whole_kind() {
        for bad in [
            "https://app.example.com*",
            "https://*.example.com/cb",
            "https://app.example.com/cb#x",
            "JaVaScRiPt:alert(1)",
            "DATA:text/html,x",
            "vbscript:x",
            " javascript:x",
            "java%0Ascript:x",
            "javascript%3Ax",
            "http://app.example.com/cb",
            "https://user@app.example.com/cb",
            "https://app.example.com@evil.example/cb",
            "https://app.example.com%2F@evil.example/cb",
            "https://app.example.com/cb/..;/x",
            "https://app.example.com/cb/%2e%2e/x",
            "https://app.example.com/cb/..%2fx",
            "https://app.example.com/cb/./../x",
            "https://app.example.com/cb;x",
            "https://APP.example.com/cb",
            "https://app.example.com",
            "https://аpp.example.com/cb",
            "https://app.example.com/c\\b",
            "https://app.example.com:443/cb",
            "ftp://x.example/",
            "https://app.example.com/%2e/cb",
            "https:app.example.com/cb",
            "https:///cb",
            "https://app.example.com/cb?code=x",
            "https://app.example.com/cb?a=1&state=2",
            "https://app.example.com/cb?iss=x",
            "https://app.example.com/cb?x=1;code=2",
            "https://app.example.com/cb?Code=1",
            "https://app.example.com/cb?STATE=2",
            "https://app.example.com/cb?ISS=1",
            "https://app.example.com/cb?code[]=1",
            "https://app.example.com/cb?%63ode=1",
            "https://app.example.com/cb?a=%ZZ",
            "https://app.example.com/cb%",
            "http://127.0.0.1:0/cb",
        ] {
            assert!(RedirectUri::parse(bad).is_err(), "accepted {bad:?}");
        }
        for good in [
            "https://app.example.com/cb",
            "https://app.example.com/cb?tenant=1",
            "http://127.0.0.1/cb",
            "http://[::1]:8080/cb",
            "http://localhost:3000/callback",
            "https://app.example.com/",
            "https://app.example.com/cb?codec=1&states=2&a=%20",
        ] {
            assert!(RedirectUri::parse(good).is_ok(), "refused {good:?}");
        }
    }

    #[test]
    fn matching_is_exact_except_loopback_port() {
        let reg = vec![
            "http://127.0.0.1/cb".to_owned(),
            "https://app.example.com/cb".to_owned(),
        ];
        assert!(matches(&reg, "http://127.0.0.1/cb"));
        assert!(matches(&reg, "http://127.0.0.1:51004/cb"));
        for bad in [
            "http://127.0.0.1.evil.example/cb",
            "http://127.0.0.1:51004@evil.example/cb",
            "http://127.0.0.1:51004/other",
            "http://127.0.0.1:51004/cb/../x",
            "http://localhost.evil.example/cb",
            "https://evil.example/cb",
            "http://127.0.0.1:51004/cb?extra=1",
            "https://app.example.com:51004/cb",
            "http://127.0.0.1:0/cb",
            "http://127.0.0.1:065535/cb",
            "http://127.0.0.1:99999/cb",
            "https://app.example.com/cb/",
            "https://APP.example.com/cb",
            "https://app.example.com/CB",
            "http://127.0.0.10/cb",
            "http://127.0.0.10:8080/cb",
        ] {
            assert!(!matches(&reg, bad), "matched {bad:?}");
        }
    }
}
