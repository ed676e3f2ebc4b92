//! `__Host-` cookies: `Secure`, `HttpOnly`, `Path=/`, no `Domain`, an explicit `SameSite`; and
//! `__Secure-` cookies scoped to one path ([`PathCookie`]) with the same flags. Deletion
//! repeats the same attributes, so browsers match and remove the cookie.

use http::header::{HeaderMap, HeaderValue, COOKIE};

/// `SameSite` values we use (never `None`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SameSite {
    /// Sent on top-level cross-site navigations (the pre-authentication cookie).
    Lax,
    /// Never sent cross-site (the session cookie).
    Strict,
}

/// A cookie definition: a `__Host-` name and its `SameSite` rule.
#[derive(Clone, Copy, Debug)]
pub struct HostCookie {
    name: &'static str,
    same_site: SameSite,
}

impl HostCookie {
    /// `name` must start with `__Host-` (RFC 6265bis: host-only, `Secure`, `Path=/`, so a
    /// sibling domain cannot plant or overwrite it). Anything else fails to compile when the
    /// cookie is a `const`, as cookies should be, and panics otherwise.
    pub const fn new(name: &'static str, same_site: SameSite) -> Self {
        assert!(
            prefixed_name(name, b"__Host-"),
            "a HostCookie name is __Host- followed by letters, digits, '-', '_' and '.'"
        );
        Self { name, same_site }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    fn attrs(&self) -> String {
        attributes("/", self.same_site)
    }

    /// `Set-Cookie` value setting `value` for `max_age` seconds. `value` must be cookie-safe
    /// and not empty (our issued secrets are base64url); anything else yields `None`.
    pub fn set(&self, value: &str, max_age: i64) -> Option<HeaderValue> {
        set_cookie(self.name, &self.attrs(), value, max_age)
    }

    /// `Set-Cookie` value deleting the cookie, with identical attributes.
    pub fn delete(&self) -> Option<HeaderValue> {
        delete_cookie(self.name, &self.attrs())
    }

    /// The cookie's value in a request. If the name appears more than once (cookie tossing
    /// from a sibling domain), it counts as absent.
    pub fn get(&self, headers: &HeaderMap) -> Option<String> {
        find_unique(headers, self.name)
    }
}

/// Whether `name` is `prefix` followed by one or more token characters (RFC 6265 §4.1.1 allows
/// more; these are enough and need no quoting anywhere). `const`, so that a bad cookie
/// defined as a `const` fails to compile.
const fn prefixed_name(name: &str, prefix: &[u8]) -> bool {
    let bytes = name.as_bytes();
    if bytes.len() <= prefix.len() {
        return false;
    }
    let mut i = 0;
    while i < prefix.len() {
        if bytes[i] != prefix[i] {
            return false;
        }
        i += 1;
    }
    while i < bytes.len() {
        let b = bytes[i];
        if !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.') {
            return false;
        }
        i += 1;
    }
    true
}

/// The attributes every cookie of ours carries: its path, `Secure`, `HttpOnly`, `SameSite`.
fn attributes(path: &str, same_site: SameSite) -> String {
    let same_site = match same_site {
        SameSite::Lax => "Lax",
        SameSite::Strict => "Strict",
    };
    format!("Path={path}; Secure; HttpOnly; SameSite={same_site}")
}

/// `Set-Cookie` setting `value` (base64url characters, not empty; else `None`).
fn set_cookie(name: &str, attrs: &str, value: &str, max_age: i64) -> Option<HeaderValue> {
    if value.is_empty()
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    HeaderValue::from_str(&format!(
        "{name}={value}; {attrs}; Max-Age={}",
        max_age.max(0)
    ))
    .ok()
}

/// `Set-Cookie` deleting the cookie, with the attributes it was set with.
fn delete_cookie(name: &str, attrs: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("{name}=; {attrs}; Max-Age=0")).ok()
}

/// The value of cookie `name`, or `None` when it is absent, empty or sent more than once.
fn find_unique(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut found: Option<String> = None;
    for header in headers.get_all(COOKIE) {
        let Ok(text) = header.to_str() else { continue };
        for pair in text.split(';') {
            let pair = pair.trim();
            if let Some(v) = pair.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
                if found.is_some() {
                    return None;
                }
                found = Some(v.to_owned());
            }
        }
    }
    found.filter(|v| !v.is_empty())
}

/// A `__Secure-` cookie scoped to one path: `Secure`, `HttpOnly`, host-only (no `Domain`), an
/// explicit `SameSite`. For short-lived cookies only one endpoint needs, such as a sign-in
/// transaction cookie read at an OAuth callback (`Path=/callback`), which a `__Host-` cookie
/// (always `Path=/`) cannot be. Deletion repeats the same attributes.
#[derive(Clone, Copy, Debug)]
pub struct PathCookie {
    name: &'static str,
    path: &'static str,
    same_site: SameSite,
}

impl PathCookie {
    /// `name` must start with `__Secure-` and `path` with `/` (visible ASCII, no `;`, `,` or
    /// space). Anything else fails to compile when the cookie is a `const`, and panics
    /// otherwise.
    pub const fn new(name: &'static str, path: &'static str, same_site: SameSite) -> Self {
        assert!(
            prefixed_name(name, b"__Secure-"),
            "a PathCookie name is __Secure- followed by letters, digits, '-', '_' and '.'"
        );
        let p = path.as_bytes();
        assert!(!p.is_empty() && p[0] == b'/', "a cookie path starts with /");
        let mut j = 0;
        while j < p.len() {
            let b = p[j];
            assert!(
                b > 0x20 && b < 0x7f && b != b';' && b != b',',
                "a cookie path is visible ASCII without ';' or ','"
            );
            j += 1;
        }
        Self {
            name,
            path,
            same_site,
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn path(&self) -> &'static str {
        self.path
    }

    fn attrs(&self) -> String {
        attributes(self.path, self.same_site)
    }

    /// `Set-Cookie` value setting `value` for `max_age` seconds; `None` unless `value` is
    /// made of base64url characters.
    pub fn set(&self, value: &str, max_age: i64) -> Option<HeaderValue> {
        set_cookie(self.name, &self.attrs(), value, max_age)
    }

    /// `Set-Cookie` value deleting the cookie, with identical attributes.
    pub fn delete(&self) -> Option<HeaderValue> {
        delete_cookie(self.name, &self.attrs())
    }

    /// The cookie's value in a request; a name sent more than once counts as absent.
    pub fn get(&self, headers: &HeaderMap) -> Option<String> {
        find_unique(headers, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_and_deletion_match() {
        let c = HostCookie::new("__Host-s", SameSite::Strict);
        assert_eq!(
            c.set("abc", 60).unwrap(),
            "__Host-s=abc; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=60"
        );
        assert_eq!(
            c.delete().unwrap(),
            "__Host-s=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0"
        );
        assert!(c.set("a;b", 60).is_none());
        assert!(c.set("", 60).is_none());
    }

    #[test]
    #[should_panic(expected = "__Host-")]
    fn names_without_the_prefix_are_refused() {
        let _ = HostCookie::new("session", SameSite::Strict);
    }

    #[test]
    #[should_panic(expected = "letters")]
    fn names_with_separators_are_refused() {
        let _ = HostCookie::new("__Host-a;b", SameSite::Strict);
    }

    #[test]
    fn duplicate_names_count_as_absent() {
        let c = HostCookie::new("__Host-s", SameSite::Lax);
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_static("x=1; __Host-s=abc"));
        assert_eq!(c.get(&h).as_deref(), Some("abc"));
        h.insert(
            COOKIE,
            HeaderValue::from_static("__Host-s=abc; __Host-s=evil"),
        );
        assert_eq!(c.get(&h), None);
        h.insert(COOKIE, HeaderValue::from_static("__Host-sx=abc"));
        assert_eq!(c.get(&h), None);
    }

    #[test]
    fn path_cookies() {
        const TX: PathCookie = PathCookie::new("__Secure-tx", "/callback", SameSite::Lax);
        assert_eq!(
            TX.set("abc", 600).unwrap(),
            "__Secure-tx=abc; Path=/callback; Secure; HttpOnly; SameSite=Lax; Max-Age=600"
        );
        assert_eq!(
            TX.delete().unwrap(),
            "__Secure-tx=; Path=/callback; Secure; HttpOnly; SameSite=Lax; Max-Age=0"
        );
        assert!(TX.set("a b", 60).is_none());
        assert!(TX.set("", 60).is_none());
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_static("__Secure-tx=abc"));
        assert_eq!(TX.get(&h).as_deref(), Some("abc"));
        h.insert(
            COOKIE,
            HeaderValue::from_static("__Secure-tx=abc; __Secure-tx=x"),
        );
        assert_eq!(TX.get(&h), None);
    }

    #[test]
    #[should_panic(expected = "__Secure-")]
    fn path_cookie_names_need_the_prefix() {
        let _ = PathCookie::new("__Host-tx", "/cb", SameSite::Lax);
    }

    #[test]
    #[should_panic(expected = "path")]
    fn path_cookie_paths_are_checked() {
        let _ = PathCookie::new("__Secure-tx", "/cb; Domain=evil", SameSite::Lax);
    }
}
