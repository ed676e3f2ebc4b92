//! `state` and `nonce`: printable ASCII (RFC 6749 VSCHAR, 0x20-0x7E), at most 4 KiB, echoed
//! exactly.

use crate::error::OAuthError;
use crate::params::Params;

const MAX: usize = 4096;

fn visible(name: &str, params: &Params) -> Result<Option<String>, OAuthError> {
    match params.get(name, MAX)? {
        None => Ok(None),
        Some(v) if v.bytes().all(|b| (0x20..=0x7e).contains(&b)) => Ok(Some(v.to_owned())),
        Some(_) => Err(OAuthError::invalid_request(format!(
            "parameter '{name}' must be printable ASCII"
        ))),
    }
}

pub(super) fn state(params: &Params) -> Result<Option<String>, OAuthError> {
    visible("state", params)
}

pub(super) fn nonce(params: &Params) -> Result<Option<String>, OAuthError> {
    visible("nonce", params)
}
