//! Token introspection (RFC 7662). Answered for the token's own client, or for an API named in
//! an access token's `aud`; everyone else, and every dead token, gets `{"active": false}` and
//! nothing more. Liveness is checked against storage, so a revocation is seen at once.

use serde::Serialize;

use crate::client_auth::Caller;
use crate::error::OAuthError;
use crate::grants::TokenContext;
use crate::jwt::{self, AccessClaims, Audience, TYP_ACCESS_TOKEN};
use crate::params::Params;
use crate::revocation::{self, MAX_TOKEN};
use crate::secret::{self, SecretKind};
use crate::store::{AccessTokenCheck, Storage};

/// An introspection answer (RFC 7662 §2.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Introspection {
    pub active: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub details: Option<Details>,
}

/// What an active token's holder may learn about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Details {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scope: String,
    pub client_id: String,
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    pub iss: String,
    pub exp: i64,
    pub iat: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// `Bearer` for access tokens; absent for refresh tokens (RFC 7662 §2.2 names access
    /// token types from RFC 6749 §7.1, and a refresh token has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
}

impl Introspection {
    pub fn inactive() -> Self {
        Self {
            active: false,
            details: None,
        }
    }

    fn active(details: Details) -> Self {
        Self {
            active: true,
            details: Some(details),
        }
    }
}

/// Introspects `token` for `caller`.
pub async fn introspect<S: Storage + ?Sized>(
    params: &Params,
    caller: &Caller,
    store: &S,
    ctx: &TokenContext<'_>,
) -> Result<Introspection, OAuthError> {
    let token = params.require("token", MAX_TOKEN)?;
    revocation::hint(params)?;
    if let Some(hash) = secret::hash_presented(SecretKind::RefreshToken, token, ctx.hash_key) {
        // Refresh tokens are opaque to APIs: only their own client learns about them.
        let Caller::Client(client) = caller else {
            return Ok(Introspection::inactive());
        };
        let rules = crate::store::RefreshRules {
            client_session_idle: client.policy.session_idle,
            ..ctx.lifetimes.refresh_rules()
        };
        return Ok(
            match store
                .live_refresh_token(&hash, &client.id, ctx.now, &rules)
                .await?
            {
                Some(t) => {
                    // An offline token also dies when idle: report the sooner of the two ends.
                    let exp = if t.offline {
                        t.expires_at
                            .min(t.created_at.saturating_add(ctx.lifetimes.offline_idle))
                    } else {
                        t.expires_at
                    };
                    Introspection::active(Details {
                        scope: crate::scope::join(&t.scope),
                        client_id: t.client_id.to_string(),
                        sub: t.user_id.to_string(),
                        aud: None,
                        iss: ctx.issuer.to_owned(),
                        exp,
                        iat: t.created_at,
                        jti: None,
                        token_type: None,
                    })
                }
                _ => Introspection::inactive(),
            },
        );
    }
    let Ok(value) = jwt::verify(token, ctx.keys, TYP_ACCESS_TOKEN) else {
        return Ok(Introspection::inactive());
    };
    let Ok(claims) = serde_json::from_value::<AccessClaims>(value) else {
        return Ok(Introspection::inactive());
    };
    if claims.iss != ctx.issuer || ctx.now >= claims.exp {
        return Ok(Introspection::inactive());
    }
    let entitled = match caller {
        Caller::Client(c) => claims.client_id == c.id.as_str(),
        Caller::Api(a) => claims.aud.contains(&a.audience),
    };
    if !entitled || !access_token_live(&claims, store, ctx.now).await? {
        return Ok(Introspection::inactive());
    }
    Ok(Introspection::active(Details {
        scope: claims.scope,
        client_id: claims.client_id,
        sub: claims.sub,
        aud: Some(claims.aud),
        iss: claims.iss,
        exp: claims.exp,
        iat: claims.iat,
        jti: Some(claims.jti),
        token_type: Some("Bearer"),
    }))
}

/// Whether a verified, unexpired access token is still live in storage: not revoked, its
/// client and user enabled, its grant not revoked, its session (unless offline) not ended.
pub async fn access_token_live<S: Storage + ?Sized>(
    claims: &AccessClaims,
    store: &S,
    now: i64,
) -> Result<bool, OAuthError> {
    // User tokens have a session; client-credentials tokens have the client as subject.
    let user = claims.sid.is_some().then_some(claims.sub.as_str());
    Ok(store
        .access_token_active(&AccessTokenCheck {
            jti: &claims.jti,
            client_id: &claims.client_id,
            user_id: user,
            family_id: claims.fid.as_deref(),
            session_id: claims.sid.as_deref(),
            now,
        })
        .await?)
}
