//! `client_id`: present, well-formed, registered, enabled.

use crate::error::{ErrorCode, OAuthError};
use crate::ids::ClientId;
use crate::model::Client;
use crate::params::Params;
use crate::store::ClientStore;

pub(super) async fn run<S: ClientStore + ?Sized>(
    params: &Params,
    store: &S,
) -> Result<Client, OAuthError> {
    let raw = params.require("client_id", 128)?;
    let id = ClientId::parse(raw).ok_or_else(unknown)?;
    match store.client_by_id(&id).await? {
        Some(c) if !c.disabled => Ok(c),
        _ => Err(unknown()),
    }
}

fn unknown() -> OAuthError {
    OAuthError::new(ErrorCode::InvalidRequest, "unknown or disabled client_id")
}
