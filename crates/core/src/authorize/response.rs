//! Authorization responses: the code (or error) appended to the registered redirect URI with
//! `state` and `iss` (RFC 9207), each exactly once.

use crate::crypto::random_token;
use crate::crypto::HashKey;
use crate::error::OAuthError;
use crate::ids::{FamilyId, SessionId};
use crate::model::{AuthCode, AuthorizationRequest, User};
use crate::secret::{self, IssuedSecret, SecretKind};

/// `redirect_uri` with `pairs` form-encoded into its query (after any query it has).
pub fn append(redirect_uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    format!("{redirect_uri}{sep}{}", ser.finish())
}

/// `redirect_uri?error=..&error_description=..&state=..&iss=..`
pub fn error_redirect(
    redirect_uri: &str,
    state: Option<&str>,
    error: &OAuthError,
    issuer: &str,
) -> String {
    let mut pairs = vec![
        ("error", error.code.as_str()),
        ("error_description", error.description.as_str()),
    ];
    if let Some(s) = state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", issuer));
    append(redirect_uri, &pairs)
}

/// `redirect_uri?code=..&state=..&iss=..`
pub fn code_redirect(redirect_uri: &str, code: &str, state: Option<&str>, issuer: &str) -> String {
    let mut pairs = vec![("code", code)];
    if let Some(s) = state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", issuer));
    append(redirect_uri, &pairs)
}

/// A new authorization code for `req`, bound to client, redirect URI, PKCE challenge, scope,
/// user and session. Returns the record to store and the secret to send.
pub fn new_code(
    req: &AuthorizationRequest,
    user: &User,
    session_id: &SessionId,
    auth_time: i64,
    key: &HashKey,
    now: i64,
    lifetime: i64,
) -> (AuthCode, IssuedSecret) {
    let issued = secret::issue(SecretKind::AuthorizationCode, key);
    let code = AuthCode {
        code_hash: issued.hash.clone(),
        client_id: req.client_id.clone(),
        redirect_uri: req.redirect_uri.clone(),
        code_challenge: req.code_challenge.clone(),
        scope: req.scope.clone(),
        audience: req.audience.clone(),
        nonce: req.nonce.clone(),
        user_id: user.id.clone(),
        session_id: session_id.clone(),
        auth_time,
        created_at: now,
        expires_at: now + lifetime,
        consumed_at: None,
        family_id: None::<FamilyId>,
    };
    (code, issued)
}

/// A fresh `jti`.
pub fn new_jti() -> String {
    random_token(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_registered_query_and_adds_each_parameter_once() {
        let u = code_redirect(
            "https://app.example.com/cb?tenant=1",
            "pca_x",
            Some("s 1&x"),
            "https://as.example",
        );
        assert_eq!(u, "https://app.example.com/cb?tenant=1&code=pca_x&state=s+1%26x&iss=https%3A%2F%2Fas.example");
        let e = error_redirect(
            "https://app.example.com/cb",
            None,
            &OAuthError::invalid_request("bad"),
            "https://as.example",
        );
        assert!(e.starts_with(
            "https://app.example.com/cb?error=invalid_request&error_description=bad&iss="
        ));
    }
}
