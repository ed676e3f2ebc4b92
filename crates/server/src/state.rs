//! Shared state of the axum layer.

use std::sync::Arc;

use portcullis_core::crypto::HashKey;
use portcullis_core::keys::KeySet;
use portcullis_core::password::PasswordHasher;
use portcullis_core::policy::Lifetimes;
use portcullis_core::store::Storage;

use crate::cors::CorsOrigins;
use crate::templates::Templates;

/// Everything handlers need, behind one `Arc`: axum clones the state for every extractor
/// and layer of every request, and one reference count is far cheaper than one per field
/// (the profile of the token endpoint showed cloning and dropping the fields at 7 %).
#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

impl AppState {
    pub fn new(inner: AppStateInner) -> Self {
        AppState(Arc::new(inner))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppStateInner;

    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

/// The fields of [`AppState`].
pub struct AppStateInner {
    pub store: Arc<dyn Storage>,
    /// The audit trail: every event is logged and queued for storage.
    pub audit: crate::audit::Audit,
    /// The Prometheus metrics of the admin listener.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Addresses blocked or slowed down by a detection's response.
    pub responses: Arc<crate::detect::Responses>,
    /// The signing keys and JWKS, reloaded while running.
    pub keys: Arc<crate::keyring::Keyring>,
    pub hash_key: Arc<HashKey>,
    /// Synchronizer tokens for forms of a signed-in session (logout), bound to its id.
    pub session_csrf: Arc<portcullis_guard::csrf::SessionBoundTokens>,
    pub hasher: PasswordHasher,
    /// The rules a new password must meet.
    pub password_policy: portcullis_core::password::PasswordPolicy,
    pub lifetimes: Lifetimes,
    pub access_token_alg: portcullis_core::model::SigningAlg,
    /// Signs access tokens while `access_token_alg`'s key waits to sign: the last RS256 or
    /// ES256 the deployment used for them (recorded in the store), else ES256.
    pub access_token_stand_in: portcullis_core::model::SigningAlg,
    pub issuer: Arc<str>,
    pub issuer_origin: Arc<str>,
    pub issuer_hosts: Arc<[String]>,
    pub templates: Arc<Templates>,
    pub metadata: Arc<[u8]>,
    /// Browser origins allowed to call the token endpoints (CORS).
    pub cors_origins: Arc<CorsOrigins>,
    /// Sign-in attempt limits: one per normalised account, one per client address bucket.
    pub login_limits: Arc<crate::throttle::LoginLimits>,
    /// Failed client authentications at the token endpoint, per client address bucket.
    pub client_auth_limits: Arc<dyn portcullis_guard::limiter::AttemptLimiter>,
    /// Token requests per second per authenticated client.
    pub client_quota: Arc<crate::quota::GovernorQuota>,
    /// IPv6 clients are limited per network of this prefix length.
    pub ipv6_prefix: u8,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Arc<portcullis_guard::client_addr::TrustedProxies>,
}

impl AppStateInner {
    /// What core needs to issue, check or revoke tokens at `now`, with `keys` (a snapshot of
    /// [`AppState::keys`]).
    pub fn token_context<'a>(
        &'a self,
        keys: &'a KeySet,
        now: i64,
    ) -> portcullis_core::grants::TokenContext<'a> {
        portcullis_core::grants::TokenContext {
            quota: &*self.client_quota,
            issuer: &self.issuer,
            keys,
            hash_key: &self.hash_key,
            lifetimes: &self.lifetimes,
            access_token_alg: self.access_token_alg,
            access_token_stand_in: self.access_token_stand_in,
            now,
        }
    }
}

/// The key of [`AppState::session_csrf`], derived from the token hash key: the same on every
/// instance and across restarts, and never stored.
pub fn session_csrf_tokens(hash_key: &HashKey) -> portcullis_guard::csrf::SessionBoundTokens {
    let derived = hash_key.hash("portcullis:csrf-key:session-forms:v1");
    match portcullis_guard::csrf::SessionBoundTokens::new(derived.as_bytes()) {
        Ok(t) => t,
        // 43 bytes of base64url always pass; a random key is the safe fallback regardless.
        Err(_) => portcullis_guard::csrf::SessionBoundTokens::random(),
    }
}

/// Current Unix time in seconds: read here, at the edge, and passed into core.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
