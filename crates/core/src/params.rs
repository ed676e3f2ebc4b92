//! Parameter maps for OAuth endpoints: a repeated known parameter is refused (RFC 6749 §3.1),
//! every known parameter has a length bound, unknown parameters are ignored (repeated or not)
//! and never echoed.

use std::collections::HashMap;

use crate::error::OAuthError;

/// Longest value any parameter may have, unless a tighter bound applies.
pub const DEFAULT_MAX_LEN: usize = 4096;

/// Parameters of one request, at most one value each.
#[derive(Default, Clone)]
pub struct Params {
    map: HashMap<String, String>,
}

/// Values may be passwords, secrets, codes or tokens: only the names print.
impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.map.keys().collect();
        names.sort();
        f.debug_struct("Params")
            .field("names", &names)
            .finish_non_exhaustive()
    }
}

impl Params {
    /// Parses an `application/x-www-form-urlencoded` string (query or body).
    /// Empty values count as absent (RFC 6749 §3.1). A repeated known name is an error naming
    /// it; unknown names are dropped, so they can neither fail a request nor be read.
    pub fn parse(input: &[u8]) -> Result<Self, OAuthError> {
        let mut map: HashMap<String, String> = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        for (k, v) in form_urlencoded_parse(input) {
            if !is_known(&k) {
                continue;
            }
            if !seen.insert(k.clone()) {
                return Err(duplicate(&k));
            }
            if !v.is_empty() {
                map.insert(k, v);
            }
        }
        Ok(Self { map })
    }

    pub fn from_pairs<I: IntoIterator<Item = (String, String)>>(
        pairs: I,
    ) -> Result<Self, OAuthError> {
        let mut map = HashMap::new();
        for (k, v) in pairs {
            if map.insert(k.clone(), v).is_some() {
                return Err(duplicate(&k));
            }
        }
        Ok(Self { map })
    }

    /// A value, bounded to `max` bytes and to visible ASCII plus space.
    pub fn get(&self, name: &str, max: usize) -> Result<Option<&str>, OAuthError> {
        match self.map.get(name) {
            None => Ok(None),
            Some(v) => {
                if v.len() > max {
                    return Err(OAuthError::invalid_request(format!(
                        "parameter '{name}' is longer than {max} bytes"
                    )));
                }
                if !v.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
                    return Err(OAuthError::invalid_request(format!(
                        "parameter '{name}' contains characters outside visible ASCII"
                    )));
                }
                Ok(Some(v.as_str()))
            }
        }
    }

    /// A required value.
    pub fn require(&self, name: &str, max: usize) -> Result<&str, OAuthError> {
        self.get(name, max)?
            .ok_or_else(|| OAuthError::invalid_request(format!("parameter '{name}' is missing")))
    }

    /// A value that may hold any Unicode (e.g. a password), bounded in bytes, no control chars.
    pub fn get_text(&self, name: &str, max: usize) -> Result<Option<&str>, OAuthError> {
        match self.map.get(name) {
            None => Ok(None),
            Some(v) if v.len() > max => Err(OAuthError::invalid_request(format!(
                "parameter '{name}' is longer than {max} bytes"
            ))),
            Some(v) if v.chars().any(|c| c.is_control()) => Err(OAuthError::invalid_request(
                format!("parameter '{name}' contains control characters"),
            )),
            Some(v) => Ok(Some(v.as_str())),
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }
}

fn duplicate(name: &str) -> OAuthError {
    // Only known names are echoed; unknown ones are summarised.
    if is_known(name) {
        OAuthError::invalid_request(format!("parameter '{name}' is repeated"))
    } else {
        OAuthError::invalid_request("a parameter is repeated")
    }
}

fn is_known(name: &str) -> bool {
    const KNOWN: &[&str] = &[
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "nonce",
        "prompt",
        "max_age",
        "login_hint",
        "resource",
        "code_challenge",
        "code_challenge_method",
        "grant_type",
        "code",
        "code_verifier",
        "refresh_token",
        "client_secret",
        "request",
        "request_uri",
        "response_mode",
        "email",
        "password",
        "current_password",
        "new_password",
        "confirm_password",
        "end_others",
        "csrf_token",
        "token",
        "token_type_hint",
        "id_token_hint",
        "post_logout_redirect_uri",
        "ui_locales",
        "display",
        "claims",
        "registration",
        "acr_values",
        "action",
        "end",
        "logout_hint",
        "audience",
        "client_assertion",
        "client_assertion_type",
    ];
    KNOWN.contains(&name)
}

/// Hand-written over `form_urlencoded` to keep the raw pairs in order; that crate is the
/// well-kept parser and we only collect its output.
fn form_urlencoded_parse(input: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(input)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_refused_and_named_only_if_known() {
        let e = Params::parse(b"state=a&state=b").unwrap_err();
        assert!(e.description.contains("'state'"));
        // Unknown parameters are ignored, even repeated (RFC 6749 §3.1), and cannot be read.
        let p = Params::parse(b"utm_x=a&utm_x=b&zz%3Cscript%3E=a&zz%3Cscript%3E=b").unwrap();
        assert!(!p.contains("utm_x"));
        assert!(format!("{p:?}").find("script").is_none());
    }

    #[test]
    fn bounds_and_charset() {
        let p = Params::parse(b"state=%0A&nonce=abc").unwrap();
        assert!(p.get("state", 10).is_err());
        assert_eq!(p.get("nonce", 10).unwrap(), Some("abc"));
        assert!(p.get("nonce", 2).is_err());
        let p = Params::parse(b"scope=&scope=x").unwrap_err();
        assert!(p.description.contains("scope"));
    }
}
