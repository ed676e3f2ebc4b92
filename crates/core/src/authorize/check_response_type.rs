//! `response_type=code` only (OAuth 2.1), `response_mode` query only, and the client must be
//! allowed the authorization-code grant.

use crate::error::{ErrorCode, OAuthError};
use crate::model::{Client, GrantType};
use crate::params::Params;

pub(super) fn run(params: &Params, client: &Client) -> Result<(), OAuthError> {
    match params.require("response_type", 64)? {
        "code" => {}
        _ => {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedResponseType,
                "only response_type=code is supported",
            ))
        }
    }
    match params.get("response_mode", 32)? {
        None | Some("query") => {}
        Some(_) => {
            return Err(OAuthError::invalid_request(
                "only response_mode=query is supported",
            ))
        }
    }
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "client may not use the authorization code grant",
        ));
    }
    Ok(())
}
