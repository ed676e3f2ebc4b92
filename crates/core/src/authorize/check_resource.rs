//! RFC 8707 `resource`: the API the access token is for. It must be one of the client's
//! allowed APIs; without it, the client's default API (its first) is used.

use crate::error::{ErrorCode, OAuthError};
use crate::model::Client;
use crate::params::Params;

/// Shared with the token endpoint.
pub fn resolve(resource: Option<&str>, client: &Client) -> Result<Option<String>, OAuthError> {
    match resource {
        None => Ok(client.apis.first().cloned()),
        Some(r) if client.apis.iter().any(|a| a == r) => Ok(Some(r.to_owned())),
        Some(_) => Err(OAuthError::new(
            ErrorCode::InvalidTarget,
            "resource is not an API this client may use",
        )),
    }
}

pub(super) fn run(params: &Params, client: &Client) -> Result<Option<String>, OAuthError> {
    resolve(params.get("resource", 2000)?, client)
}
