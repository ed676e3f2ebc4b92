//! The userinfo endpoint (OIDC Core §5.3): only for access tokens with a user subject and the
//! `openid` scope, whose user is enabled and which is still live in storage (not revoked, its
//! grant not revoked, its session active unless the grant is offline).

use serde_json::{json, Value};

use crate::error::{ErrorCode, OAuthError};
use crate::ids::UserId;
use crate::jwt::{self, AccessClaims};
use crate::keys::KeySet;
use crate::scope;
use crate::store::Storage;

fn invalid(detail: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidToken, "the access token is invalid").with_detail(detail)
}

/// Verifies the bearer token and returns the claims document.
pub async fn claims<S: Storage + ?Sized>(
    token: &str,
    keys: &KeySet,
    issuer: &str,
    store: &S,
    now: i64,
) -> Result<Value, OAuthError> {
    let at: AccessClaims = jwt::verify_access_token(
        token,
        keys,
        issuer,
        &crate::discovery::userinfo_url(issuer),
        now,
    )
    .map_err(|e| invalid(e.to_string()))?;
    if !at.has_scope(scope::OPENID) {
        return Err(OAuthError::new(
            ErrorCode::InsufficientScope,
            "the access token lacks the openid scope",
        ));
    }
    let user_id = UserId::parse(&at.sub).ok_or_else(|| invalid("subject is not a user"))?;
    let user = match store.user_by_id(&user_id).await? {
        Some(u) if !u.disabled => u,
        _ => return Err(invalid("user disabled or deleted")),
    };
    if !crate::introspection::access_token_live(&at, store, now).await? {
        return Err(invalid("token revoked, or its grant or session ended"));
    }
    let mut doc = json!({"sub": user.id.as_str()});
    if at.has_scope(scope::EMAIL) {
        doc["email"] = json!(user.email);
        doc["email_verified"] = json!(user.email_verified);
    }
    Ok(doc)
}
