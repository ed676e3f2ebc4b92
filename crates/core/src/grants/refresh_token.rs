//! `grant_type=refresh_token`: every use rotates. A rotated token presented again within the
//! grace window is refused; later it is treated as theft and the family and session are revoked
//! by the store in the same transaction.

use crate::error::OAuthError;
use crate::model::Client;
use crate::params::Params;
use crate::scope;
use crate::secret::{self, reveal, SecretKind};
use crate::store::{RefreshRotation, Storage};

use super::{issue, GrantEvent, TokenContext, TokenResponse};

pub(super) async fn handle<S: Storage + ?Sized>(
    params: &Params,
    client: &Client,
    store: &S,
    ctx: &TokenContext<'_>,
    events: &mut Vec<GrantEvent>,
) -> Result<TokenResponse, OAuthError> {
    let presented = params.require("refresh_token", 256)?;
    let requested = match params.get("scope", 2048)? {
        Some(s) => Some(scope::parse(s)?),
        None => None,
    };
    let Some(hash) = secret::hash_presented(SecretKind::RefreshToken, presented, ctx.hash_key)
    else {
        return Err(OAuthError::invalid_grant("the refresh token is invalid"));
    };
    let issued = std::sync::Mutex::new(None);
    let scope_refused = std::sync::atomic::AtomicBool::new(false);
    // Everything that can refuse the request is decided inside the rotation, before anything
    // changes: a refused request must leave the presented token live.
    let make_next = |old: &crate::model::RefreshToken| {
        // A narrower scope may be asked for; never a wider one (RFC 6749 §6).
        if let Some(r) = &requested {
            if !r.iter().all(|s| old.scope.contains(s)) {
                scope_refused.store(true, std::sync::atomic::Ordering::Relaxed);
                return None;
            }
        }
        let next = secret::issue(SecretKind::RefreshToken, ctx.hash_key);
        let record = crate::model::RefreshToken {
            token_hash: next.hash.clone(),
            created_at: ctx.now,
            rotated_at: None,
            revoked_at: None,
            ..old.clone()
        };
        if let Ok(mut slot) = issued.lock() {
            *slot = Some(next);
        }
        Some(record)
    };
    let rotation = store
        .rotate_refresh_token(
            &hash,
            &client.id,
            ctx.now,
            &crate::store::RefreshRules {
                client_session_idle: client.policy.session_idle,
                ..ctx.lifetimes.refresh_rules()
            },
            &make_next,
        )
        .await?;
    if !matches!(
        rotation,
        RefreshRotation::Rotated(_) | RefreshRotation::ReuseDetected { .. }
    ) {
        // A refused token that exists still names its user: the per-user refresh-failure
        // detection needs it (a read, outside the write lane; made-up tokens find nothing).
        // Only for the record: a failing read leaves the refusal as it is.
        if let Ok(Some(found)) = store.refresh_token_by_hash(&hash).await {
            events.push(GrantEvent::Subject {
                user_id: found.user_id.to_string(),
                session_id: found.session_id.to_string(),
            });
        }
    }
    let old = match rotation {
        RefreshRotation::Rotated(old) => old,
        RefreshRotation::Refused if scope_refused.load(std::sync::atomic::Ordering::Relaxed) => {
            return Err(OAuthError::invalid_scope(
                "scope exceeds the original grant",
            ));
        }
        RefreshRotation::RecentlyRotated => {
            return Err(OAuthError::invalid_grant(
                "the refresh token was already used",
            ))
        }
        RefreshRotation::ReuseDetected {
            family_id,
            session_id,
            user_id,
        } => {
            events.push(GrantEvent::RefreshReuseDetected {
                family_id: family_id.to_string(),
                session_id: session_id.to_string(),
                user_id: user_id.to_string(),
            });
            return Err(OAuthError::invalid_grant(
                "the refresh token was already used",
            ));
        }
        RefreshRotation::Invalid | RefreshRotation::Refused => {
            return Err(OAuthError::invalid_grant(
                "the refresh token is invalid or expired",
            ))
        }
    };
    let new_secret = issued
        .into_inner()
        .ok()
        .flatten()
        .ok_or_else(|| OAuthError::server_error("rotation stored no new token"))?;
    let scopes = requested.unwrap_or_else(|| old.scope.clone());
    events.push(GrantEvent::Subject {
        user_id: old.user_id.to_string(),
        session_id: old.session_id.to_string(),
    });
    let user = match store.user_by_id(&old.user_id).await? {
        Some(u) if !u.disabled => u,
        _ => return Err(OAuthError::invalid_grant("the user is no longer active")),
    };
    let access = issue::access_token(
        ctx,
        client,
        user.id.as_str(),
        old.audience.as_deref(),
        &scopes,
        Some(old.auth_time),
        Some(&old.session_id),
        Some(&old.family_id),
    )?;
    let id_token = if scopes.iter().any(|s| s == scope::OPENID) {
        Some(issue::id_token(
            ctx,
            client,
            &user,
            &scopes,
            None,
            &old.session_id,
            old.auth_time,
            &access,
        )?)
    } else {
        None
    };
    Ok(TokenResponse {
        access_token: access,
        token_type: "Bearer",
        expires_in: client.policy.access_token_ttl(ctx.lifetimes.access_token),
        scope: scope::join(&scopes),
        id_token,
        refresh_token: Some(reveal(&new_secret.value).to_owned()),
    })
}
