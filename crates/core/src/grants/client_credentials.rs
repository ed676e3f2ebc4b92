//! `grant_type=client_credentials` (RFC 6749 §4.4): confidential clients only; the token's
//! subject is the client id (which can never equal a user id), its audience an allowed API.

use crate::authorize::{check_resource, check_scope};
use crate::error::{ErrorCode, OAuthError};
use crate::model::{Client, ClientKind};
use crate::params::Params;
use crate::scope;
use crate::store::Storage;

use super::{issue, TokenContext, TokenResponse};

pub(super) async fn handle<S: Storage + ?Sized>(
    params: &Params,
    client: &Client,
    store: &S,
    ctx: &TokenContext<'_>,
) -> Result<TokenResponse, OAuthError> {
    if client.kind != ClientKind::Confidential {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "public clients cannot use client_credentials",
        ));
    }
    let audience =
        check_resource::resolve(params.get("resource", 2000)?, client)?.ok_or_else(|| {
            OAuthError::new(
                ErrorCode::InvalidTarget,
                "the client has no API to get a token for",
            )
        })?;
    let requested = scope::parse(params.get("scope", 2048)?.unwrap_or(""))?;
    let scopes = check_scope::allowed(requested, client, Some(&audience), false, store).await?;
    let access = issue::access_token(
        ctx,
        client,
        client.id.as_str(),
        Some(&audience),
        &scopes,
        None,
        None,
        None,
    )?;
    Ok(TokenResponse {
        access_token: access,
        token_type: "Bearer",
        expires_in: client.policy.access_token_ttl(ctx.lifetimes.access_token),
        scope: scope::join(&scopes),
        id_token: None,
        refresh_token: None,
    })
}
