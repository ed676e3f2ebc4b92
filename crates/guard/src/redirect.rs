//! Redirect safety for apps: an exact-match allowlist of absolute redirect targets, and a check
//! for internal "return to" paths.
//!
//! Open redirects come from clever comparisons: prefixes, wildcards, parsers that disagree with
//! browsers. Both helpers here compare or accept raw strings only, and refuse everything a
//! browser could read as another origin.
//!
//! ```
//! use portcullis_guard::redirect::{safe_return_path, Allowlist};
//!
//! let list = Allowlist::new(["https://app.example.com/done"]);
//! assert!(list.allows("https://app.example.com/done"));
//! assert!(!list.allows("https://app.example.com/done/"));
//! assert_eq!(safe_return_path("/account?tab=1"), Some("/account?tab=1"));
//! assert_eq!(safe_return_path("/\\evil.example"), None);
//! ```

use std::collections::HashSet;

/// Absolute URLs a redirect may go to, compared byte for byte.
#[derive(Clone, Debug, Default)]
pub struct Allowlist(HashSet<String>);

impl Allowlist {
    pub fn new<I, S>(uris: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self(uris.into_iter().map(Into::into).collect())
    }

    /// Is `target` exactly one of the listed URLs?
    pub fn allows(&self, target: &str) -> bool {
        self.0.contains(target)
    }
}

/// Longest return path accepted.
const MAX_RETURN_PATH: usize = 2048;

/// `Some(path)` if `candidate` is a same-origin relative path that every browser resolves to
/// this origin: it starts with exactly one `/`, followed by anything but `/` or `\`; its path
/// has no empty, `.` or `..` segment (raw or percent-encoded); it has no
/// control characters, whitespace, backslash or non-ASCII anywhere (browsers strip tabs and
/// newlines, turning `/\t/evil` into `//evil`), and no percent-encoded slash, backslash or
/// control character (a second decoding would restore them). Anything else is `None`: use a
/// fixed default instead.
pub fn safe_return_path(candidate: &str) -> Option<&str> {
    let bytes = candidate.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_RETURN_PATH || bytes[0] != b'/' {
        return None;
    }
    if matches!(bytes.get(1), Some(b'/') | Some(b'\\')) {
        return None;
    }
    if bytes
        .iter()
        .any(|&b| !(0x21..=0x7e).contains(&b) || b == b'\\')
    {
        return None;
    }
    let lower = candidate.to_ascii_lowercase();
    // No empty or dot segment in the path (raw or encoded): `/..//evil` and `/.//evil` collapse
    // to `//evil` wherever a path gets normalised later.
    let path = lower.split(['?', '#']).next().unwrap_or_default();
    let decoded_dots = path.replace("%2e", ".");
    if path.contains("//")
        || decoded_dots
            .split('/')
            .skip(1)
            .any(|seg| seg == "." || seg == "..")
    {
        return None;
    }
    // Encoded '/', '\' and every encoded control character (%00-%1f, %7f).
    let mut rest = lower.as_str();
    while let Some(i) = rest.find('%') {
        let hex = rest.get(i + 1..i + 3)?;
        let value = u8::from_str_radix(hex, 16).ok()?;
        if value == b'/' || value == b'\\' || value < 0x20 || value == 0x7f || value == b'%' {
            return None;
        }
        rest = &rest[i + 3..];
    }
    Some(candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_paths_that_leave_the_origin_are_refused() {
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r/evil.example",
            "/\x0b/evil.example",
            "/%09/evil.example",
            "/%0A/evil.example",
            "/%0d/evil.example",
            "/%0B/evil.example",
            "/%5Cevil.example",
            "/%2F/evil.example",
            "/%252F/evil.example",
            "%2F%2Fevil.example",
            "https:evil.example",
            "https://evil.example",
            "\\\\evil.example",
            "evil.example",
            "",
            "/ok\u{2028}",
            "/caf\u{e9}",
            "/a b",
            "/%",
            "/%zz",
            "/..//evil.example",
            "/.//evil.example",
            "/%2E%2E//evil.example",
            "/a/../..//evil.example",
            "/a//b",
            "/a/./b",
            "/a/%2e%2e/b",
        ] {
            assert_eq!(safe_return_path(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ordinary_paths_pass() {
        for good in [
            "/",
            "/account",
            "/a/b?x=1&y=%20",
            "/search?q=%C3%A9",
            "/x#frag",
        ] {
            assert_eq!(safe_return_path(good), Some(good), "{good:?}");
        }
    }

    #[test]
    fn allowlist_is_exact() {
        let l = Allowlist::new(["https://app.example.com/cb"]);
        assert!(l.allows("https://app.example.com/cb"));
        for bad in [
            "https://app.example.com/cb/",
            "https://APP.example.com/cb",
            "https://app.example.com/cb?x",
            "https://app.example.com:443/cb",
            "https://app.example.com.evil.example/cb",
        ] {
            assert!(!l.allows(bad), "{bad}");
        }
    }
}
