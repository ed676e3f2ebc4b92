//! Token revocation (RFC 7009). The caller is an authenticated client (a public client by its
//! `client_id` alone); it may revoke only tokens issued to it.
//!
//! Every answer to an authenticated caller is the same success, whether the token was revoked,
//! unknown, expired, already revoked, or issued to another client (which is left untouched):
//! the endpoint never tells a client which tokens exist (RFC 7009 §2.2).

use crate::error::OAuthError;
use crate::grants::TokenContext;
use crate::jwt::{self, AccessClaims, TYP_ACCESS_TOKEN};
use crate::model::Client;
use crate::params::Params;
use crate::secret::{self, SecretKind};
use crate::store::Storage;

/// Longest `token` accepted (access tokens are well under 2 KiB).
pub const MAX_TOKEN: usize = 8 * 1024;

/// What a revocation did, for the audit log (never shown to the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// A refresh token: its whole family (and the access tokens it produced) ended.
    RefreshFamily { family_id: String },
    /// One access token, by `jti`.
    AccessToken { jti: String },
    /// Nothing of this client's matched.
    Nothing,
}

/// `token_type_hint` only orders a search (RFC 7009 §2.1) and the shape of the token already
/// tells its kind, so the value is ignored: `unsupported_token_type` (§2.2.1) is for kinds a
/// server cannot revoke, and this one revokes both kinds it issues. It is still size-checked
/// and may not be repeated.
pub(crate) fn hint(params: &Params) -> Result<(), OAuthError> {
    params.get("token_type_hint", 64)?;
    Ok(())
}

/// Revokes `token` if it belongs to `client`.
pub async fn revoke<S: Storage + ?Sized>(
    params: &Params,
    client: &Client,
    store: &S,
    ctx: &TokenContext<'_>,
) -> Result<Revoked, OAuthError> {
    let token = params.require("token", MAX_TOKEN)?;
    hint(params)?;
    if let Some(hash) = secret::hash_presented(SecretKind::RefreshToken, token, ctx.hash_key) {
        // Any state counts, rotated included: revoking an old link ends the family.
        return Ok(match store.refresh_token_by_hash(&hash).await? {
            Some(t) if t.client_id == client.id => {
                if t.revoked_at.is_none() {
                    store.revoke_family(&t.family_id, ctx.now).await?;
                }
                Revoked::RefreshFamily {
                    family_id: t.family_id.to_string(),
                }
            }
            _ => Revoked::Nothing,
        });
    }
    let Ok(value) = jwt::verify(token, ctx.keys, TYP_ACCESS_TOKEN) else {
        return Ok(Revoked::Nothing);
    };
    let Ok(claims) = serde_json::from_value::<AccessClaims>(value) else {
        return Ok(Revoked::Nothing);
    };
    if claims.iss != ctx.issuer || claims.client_id != client.id.as_str() || claims.exp <= ctx.now {
        return Ok(Revoked::Nothing);
    }
    store
        .revoke_access_token(&claims.jti, &client.id, claims.exp, ctx.now)
        .await?;
    Ok(Revoked::AccessToken { jti: claims.jti })
}
