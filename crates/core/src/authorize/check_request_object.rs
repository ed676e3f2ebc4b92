//! Request objects are not supported: `request` and `request_uri` are refused with their own
//! error codes (OIDC Core §6), never parsed.

use crate::error::{ErrorCode, OAuthError};
use crate::params::Params;

pub(super) fn run(params: &Params) -> Result<(), OAuthError> {
    if params.contains("request") {
        return Err(OAuthError::new(
            ErrorCode::RequestNotSupported,
            "request objects are not supported",
        ));
    }
    if params.contains("request_uri") {
        return Err(OAuthError::new(
            ErrorCode::RequestUriNotSupported,
            "request_uri is not supported",
        ));
    }
    Ok(())
}
