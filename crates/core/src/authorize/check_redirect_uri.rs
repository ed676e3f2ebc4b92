//! `redirect_uri`: required, and byte-identical to a registered one (loopback: any port).

use crate::error::OAuthError;
use crate::model::Client;
use crate::params::Params;
use crate::redirect_uri;

pub(super) fn run(params: &Params, client: &Client) -> Result<String, OAuthError> {
    let presented = params.require("redirect_uri", 2000)?;
    if redirect_uri::matches(&client.redirect_uris, presented) {
        Ok(presented.to_owned())
    } else {
        Err(OAuthError::invalid_request(
            "redirect_uri is not registered for this client",
        ))
    }
}
