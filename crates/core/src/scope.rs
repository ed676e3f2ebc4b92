//! Scopes (RFC 6749 §3.3): space-delimited tokens of `%x21 / %x23-5B / %x5D-7E`.

use crate::error::OAuthError;

/// Scopes Portcullis itself understands (OpenID Connect).
pub const OPENID: &str = "openid";
pub const EMAIL: &str = "email";
/// A refresh token that outlives the browser session (OIDC Core §11), with the user's consent.
pub const OFFLINE_ACCESS: &str = "offline_access";
pub const IDENTITY_SCOPES: &[&str] = &[OPENID, EMAIL];

/// Does the grant ask for offline access?
pub fn is_offline(scopes: &[String]) -> bool {
    scopes.iter().any(|s| s == OFFLINE_ACCESS)
}

/// Most scopes one request may carry.
pub const MAX_SCOPES: usize = 64;

/// Parses a `scope` parameter into unique tokens, in order.
pub fn parse(value: &str) -> Result<Vec<String>, OAuthError> {
    let mut out: Vec<String> = Vec::new();
    for token in value.split(' ') {
        if token.is_empty() {
            continue;
        }
        if token.len() > 128 || !token.bytes().all(valid_scope_byte) {
            return Err(OAuthError::invalid_scope(
                "scope contains an invalid scope token",
            ));
        }
        if !out.iter().any(|t| t == token) {
            out.push(token.to_owned());
        }
        if out.len() > MAX_SCOPES {
            return Err(OAuthError::invalid_scope("too many scopes"));
        }
    }
    Ok(out)
}

/// Is this a syntactically valid single scope token (for registration)?
pub fn is_valid_token(token: &str) -> bool {
    !token.is_empty() && token.len() <= 128 && token.bytes().all(valid_scope_byte)
}

fn valid_scope_byte(b: u8) -> bool {
    b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b)
}

pub fn join(scopes: &[String]) -> String {
    scopes.join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_and_dedupes() {
        assert_eq!(
            super::parse("openid  email openid").unwrap(),
            vec!["openid", "email"]
        );
        assert!(super::parse("a\"b").is_err());
        assert!(super::parse("a\\b").is_err());
    }
}
