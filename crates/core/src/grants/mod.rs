//! The token endpoint: client authentication, then one handler per grant type (one module
//! each). Adding a grant means one module and one arm in [`dispatch`].

pub mod authorization_code;
pub mod client_credentials;
pub mod issue;
pub mod refresh_token;

use serde::Serialize;

use crate::client_auth::{self, BasicCredentials};
use crate::crypto::HashKey;
use crate::error::{ErrorCode, OAuthError};
use crate::keys::KeySet;
use crate::model::GrantType;
use crate::params::Params;
use crate::policy::Lifetimes;
use crate::store::Storage;

/// A per-client request quota, asked once the client is authenticated and before any token is
/// made. `Err(seconds)`: over quota, retry after that long.
pub trait ClientQuota: Send + Sync {
    fn admit(&self, client: &crate::ids::ClientId) -> Result<(), i64>;
}

/// No quota.
pub struct Unlimited;

impl ClientQuota for Unlimited {
    fn admit(&self, _client: &crate::ids::ClientId) -> Result<(), i64> {
        Ok(())
    }
}

/// Everything a grant needs besides storage. `now` is passed in, never read.
pub struct TokenContext<'a> {
    /// The per-client request quota.
    pub quota: &'a dyn ClientQuota,
    pub issuer: &'a str,
    pub keys: &'a KeySet,
    pub hash_key: &'a HashKey,
    pub lifetimes: &'a Lifetimes,
    /// Algorithm of access tokens.
    pub access_token_alg: crate::model::SigningAlg,
    /// What signs them while that algorithm's key waits to sign (`KeySet::access_token_key`):
    /// the RS256 or ES256 they had before.
    pub access_token_stand_in: crate::model::SigningAlg,
    pub now: i64,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// Something a grant learned that the caller should record (audit vocabulary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantEvent {
    /// The user and session the request acted for (as soon as the grant knows them).
    Subject {
        user_id: String,
        session_id: String,
    },
    CodeReplayed,
    RefreshReuseDetected {
        family_id: String,
        session_id: String,
        user_id: String,
    },
}

/// A token request's outcome, with the events it produced.
pub struct GrantOutcome {
    pub result: Result<TokenResponse, OAuthError>,
    pub client_id: Option<String>,
    /// The grant type, once the client is known to be allowed it.
    pub grant: Option<GrantType>,
    pub events: Vec<GrantEvent>,
    /// Set when the client is over its quota: retry after this many seconds (HTTP 429).
    pub over_quota: Option<i64>,
}

/// Authenticates the client and runs the requested grant.
pub async fn dispatch<S: Storage + ?Sized>(
    params: &Params,
    basic: Option<&BasicCredentials>,
    store: &S,
    ctx: &TokenContext<'_>,
) -> GrantOutcome {
    let mut events = Vec::new();
    let grant = match params.require("grant_type", 64) {
        Ok(g) => g.to_owned(),
        Err(e) => {
            return GrantOutcome {
                result: Err(e),
                client_id: None,
                grant: None,
                events,
                over_quota: None,
            }
        }
    };
    let client = match client_auth::authenticate(params, basic, store, ctx.hash_key).await {
        Ok(c) => c,
        Err(e) => {
            return GrantOutcome {
                result: Err(e),
                client_id: None,
                grant: None,
                events,
                over_quota: None,
            }
        }
    };
    let client_id = Some(client.id.to_string());
    if let Err(retry_after) = ctx.quota.admit(&client.id) {
        return GrantOutcome {
            result: Err(OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "this client is over its request quota; retry later",
            )),
            client_id,
            grant: None,
            events,
            over_quota: Some(retry_after),
        };
    }
    let Some(grant_type) = GrantType::parse(&grant) else {
        let e = OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            "grant_type is not supported",
        );
        return GrantOutcome {
            result: Err(e),
            client_id,
            grant: None,
            events,
            over_quota: None,
        };
    };
    if !client.allows_grant(grant_type) {
        let e = OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "client may not use this grant_type",
        );
        return GrantOutcome {
            result: Err(e),
            client_id,
            grant: None,
            events,
            over_quota: None,
        };
    }
    let result = match grant_type {
        GrantType::AuthorizationCode => {
            authorization_code::handle(params, &client, store, ctx, &mut events).await
        }
        GrantType::RefreshToken => {
            refresh_token::handle(params, &client, store, ctx, &mut events).await
        }
        GrantType::ClientCredentials => {
            client_credentials::handle(params, &client, store, ctx).await
        }
    };
    GrantOutcome {
        result,
        client_id,
        grant: Some(grant_type),
        events,
        over_quota: None,
    }
}
