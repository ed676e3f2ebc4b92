//! Authorization server metadata (RFC 8414) and OpenID Provider metadata (Discovery 1.0).
//! Every URL is derived from the configured issuer, never from a request.

use serde_json::{json, Value};

/// Paths of our endpoints, relative to the issuer.
pub mod paths {
    pub const AUTHORIZE: &str = "/authorize";
    pub const TOKEN: &str = "/token";
    pub const USERINFO: &str = "/userinfo";
    pub const REVOKE: &str = "/revoke";
    pub const INTROSPECT: &str = "/introspect";
    pub const JWKS: &str = "/jwks";
    /// RP-initiated logout (`end_session_endpoint`).
    pub const END_SESSION: &str = "/logout";
}

/// The userinfo endpoint's URL: also the audience that access tokens for it carry.
pub fn userinfo_url(issuer: &str) -> String {
    format!("{issuer}{}", paths::USERINFO)
}

/// The metadata document. `issuer` has no trailing slash.
pub fn metadata(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}{}", paths::AUTHORIZE),
        "token_endpoint": format!("{issuer}{}", paths::TOKEN),
        "userinfo_endpoint": userinfo_url(issuer),
        "jwks_uri": format!("{issuer}{}", paths::JWKS),
        "end_session_endpoint": format!("{issuer}{}", paths::END_SESSION),
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "revocation_endpoint": format!("{issuer}{}", paths::REVOKE),
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint": format!("{issuer}{}", paths::INTROSPECT),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": ["openid", "email", "offline_access"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "sid", "at_hash", "azp", "email", "email_verified"],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "authorization_response_iss_parameter_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": false,
    })
}
