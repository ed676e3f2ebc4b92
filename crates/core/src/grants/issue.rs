//! Minting tokens: RFC 9068 access tokens, ID tokens and refresh tokens.

use crate::authorize::response::new_jti;
use crate::error::OAuthError;
use crate::ids::{FamilyId, SessionId};
use crate::jwt::{self, AccessClaims, IdClaims};
use crate::model::{Client, RefreshToken, User};
use crate::scope;
use crate::secret::{self, IssuedSecret, SecretKind};

use super::TokenContext;

/// An access token for `sub` (a user id, or the client id for client credentials).
#[allow(clippy::too_many_arguments)]
pub fn access_token(
    ctx: &TokenContext<'_>,
    client: &Client,
    sub: &str,
    audience: Option<&str>,
    scopes: &[String],
    auth_time: Option<i64>,
    sid: Option<&SessionId>,
    fid: Option<&FamilyId>,
) -> Result<String, OAuthError> {
    let key = ctx
        .keys
        .access_token_key(ctx.access_token_alg, ctx.access_token_stand_in, ctx.now)
        .map_err(|e| OAuthError::server_error(e.to_string()))?;
    // The API it was asked for (RFC 8707), and the userinfo endpoint when the token carries a
    // user's `openid` grant: userinfo accepts only tokens naming it (RFC 9068 §4).
    let mut aud: Vec<String> = audience.map(str::to_owned).into_iter().collect();
    if sid.is_some() && scopes.iter().any(|s| s == scope::OPENID) {
        aud.push(crate::discovery::userinfo_url(ctx.issuer));
    }
    if aud.is_empty() {
        aud.push(ctx.issuer.to_owned());
    }
    let claims = AccessClaims {
        iss: ctx.issuer.to_owned(),
        sub: sub.to_owned(),
        aud: jwt::Audience::new(aud),
        exp: ctx.now + client.policy.access_token_ttl(ctx.lifetimes.access_token),
        iat: ctx.now,
        jti: new_jti(),
        client_id: client.id.to_string(),
        scope: scope::join(scopes),
        auth_time,
        sid: sid.map(|s| s.to_string()),
        fid: fid.map(|f| f.to_string()),
    };
    jwt::sign(key, jwt::TYP_ACCESS_TOKEN, &claims)
        .map_err(|e| OAuthError::server_error(e.to_string()))
}

/// An ID token for `user`, signed with the client's registered algorithm.
#[allow(clippy::too_many_arguments)]
pub fn id_token(
    ctx: &TokenContext<'_>,
    client: &Client,
    user: &User,
    scopes: &[String],
    nonce: Option<String>,
    sid: &SessionId,
    auth_time: i64,
    access_token: &str,
) -> Result<String, OAuthError> {
    let key = ctx
        .keys
        .active(client.id_token_alg, ctx.now)
        .map_err(|e| OAuthError::server_error(e.to_string()))?;
    let with_email = scopes.iter().any(|s| s == scope::EMAIL);
    let claims = IdClaims {
        iss: ctx.issuer.to_owned(),
        sub: user.id.to_string(),
        aud: client.id.to_string(),
        azp: client.id.to_string(),
        exp: ctx.now + ctx.lifetimes.id_token,
        iat: ctx.now,
        auth_time,
        nonce,
        sid: sid.to_string(),
        at_hash: Some(jwt::at_hash(access_token)),
        email: with_email.then(|| user.email.clone()),
        email_verified: with_email.then_some(user.email_verified),
    };
    jwt::sign(key, jwt::TYP_ID_TOKEN, &claims).map_err(|e| OAuthError::server_error(e.to_string()))
}

/// A new refresh token, the first of its family. Session-bound ones end with the session
/// (`expires_at` is then the session's absolute end); offline ones outlive it.
#[allow(clippy::too_many_arguments)]
pub fn refresh_token(
    ctx: &TokenContext<'_>,
    family_id: FamilyId,
    client: &Client,
    user: &User,
    session_id: &SessionId,
    scopes: &[String],
    audience: Option<String>,
    auth_time: i64,
    expires_at: i64,
    offline: bool,
) -> (RefreshToken, IssuedSecret) {
    let issued = secret::issue(SecretKind::RefreshToken, ctx.hash_key);
    let record = RefreshToken {
        token_hash: issued.hash.clone(),
        family_id,
        client_id: client.id.clone(),
        user_id: user.id.clone(),
        session_id: session_id.clone(),
        scope: scopes.to_vec(),
        audience,
        auth_time,
        created_at: ctx.now,
        expires_at,
        rotated_at: None,
        revoked_at: None,
        offline,
    };
    (record, issued)
}
