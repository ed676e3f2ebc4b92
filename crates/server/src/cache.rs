//! A read-through cache in front of the store for the two lookups on the token endpoint's hot
//! path: clients and APIs. Entries live at most [`TTL`], so a change made by the CLI (another
//! process) is seen within that time; changes made through this process drop the entry at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use portcullis_core::ids::{ClientId, FamilyId, KeyId, SessionId, UserId};
use portcullis_core::model::{
    Api, AuthCode, Client, Flow, RefreshToken, Session, SigningAlg, StoredSigningKey, User,
};
use portcullis_core::store::*;

/// How long a cached client or API may be served without asking the database again.
pub const TTL: Duration = Duration::from_millis(500);
/// Most entries per map; beyond that the map is cleared (it refills from the database).
const MAX_ENTRIES: usize = 10_000;

struct Map<V> {
    inner: Mutex<HashMap<String, (Instant, Option<V>)>>,
}

impl<V: Clone> Map<V> {
    fn new() -> Self {
        Self {
            inner: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &str) -> Option<Option<V>> {
        let guard = self.inner.lock().ok()?;
        match guard.get(key) {
            Some((at, v)) if at.elapsed() < TTL => Some(v.clone()),
            _ => None,
        }
    }

    fn put(&self, key: &str, value: Option<V>) {
        if let Ok(mut guard) = self.inner.lock() {
            if guard.len() >= MAX_ENTRIES {
                guard.clear();
            }
            guard.insert(key.to_owned(), (Instant::now(), value));
        }
    }

    fn forget(&self, key: &str) {
        if let Ok(mut guard) = self.inner.lock() {
            guard.remove(key);
        }
    }
}

/// The caching decorator.
pub struct CachedStore {
    inner: Arc<dyn Storage>,
    clients: Map<Client>,
    apis: Map<Api>,
}

impl CachedStore {
    pub fn new(inner: Arc<dyn Storage>) -> Self {
        Self {
            inner,
            clients: Map::new(),
            apis: Map::new(),
        }
    }
}

#[async_trait]
impl ClientStore for CachedStore {
    async fn create_client(&self, client: &Client) -> StoreResult<()> {
        self.clients.forget(client.id.as_str());
        self.inner.create_client(client).await
    }
    async fn client_by_id(&self, id: &ClientId) -> StoreResult<Option<Client>> {
        if let Some(hit) = self.clients.get(id.as_str()) {
            return Ok(hit);
        }
        let v = self.inner.client_by_id(id).await?;
        // Only found clients are cached: random ids cannot fill the map.
        if v.is_some() {
            self.clients.put(id.as_str(), v.clone());
        }
        Ok(v)
    }
    async fn list_clients(&self) -> StoreResult<Vec<Client>> {
        self.inner.list_clients().await
    }
    async fn set_client_disabled(
        &self,
        id: &ClientId,
        disabled: bool,
        now: i64,
    ) -> StoreResult<bool> {
        self.clients.forget(id.as_str());
        self.inner.set_client_disabled(id, disabled, now).await
    }
    async fn add_client_secret(
        &self,
        id: &ClientId,
        secret_hash: &str,
        now: i64,
    ) -> StoreResult<bool> {
        self.clients.forget(id.as_str());
        self.inner.add_client_secret(id, secret_hash, now).await
    }
}

#[async_trait]
impl ApiStore for CachedStore {
    async fn create_api(&self, api: &Api) -> StoreResult<()> {
        self.apis.forget(&api.audience);
        self.inner.create_api(api).await
    }
    async fn api_by_audience(&self, audience: &str) -> StoreResult<Option<Api>> {
        if let Some(hit) = self.apis.get(audience) {
            return Ok(hit);
        }
        let v = self.inner.api_by_audience(audience).await?;
        if v.is_some() {
            self.apis.put(audience, v.clone());
        }
        Ok(v)
    }
    async fn list_apis(&self) -> StoreResult<Vec<Api>> {
        self.inner.list_apis().await
    }
    async fn add_api_secret(
        &self,
        audience: &str,
        secret_hash: &str,
        now: i64,
    ) -> StoreResult<bool> {
        self.inner.add_api_secret(audience, secret_hash, now).await
    }
    async fn api_secret_hashes(&self, audience: &str) -> StoreResult<Vec<String>> {
        self.inner.api_secret_hashes(audience).await
    }
}

#[async_trait]
impl UserStore for CachedStore {
    async fn create_user(&self, user: &User) -> StoreResult<()> {
        self.inner.create_user(user).await
    }
    async fn user_by_id(&self, id: &UserId) -> StoreResult<Option<User>> {
        self.inner.user_by_id(id).await
    }
    async fn user_by_email_key(&self, email_key: &str) -> StoreResult<Option<User>> {
        self.inner.user_by_email_key(email_key).await
    }
    async fn list_users(&self) -> StoreResult<Vec<User>> {
        self.inner.list_users().await
    }
    async fn set_user_disabled(&self, id: &UserId, disabled: bool, now: i64) -> StoreResult<bool> {
        self.inner.set_user_disabled(id, disabled, now).await
    }
    async fn revoke_devices(&self, id: &UserId) -> StoreResult<bool> {
        self.inner.revoke_devices(id).await
    }
    async fn delete_user(&self, id: &UserId, now: i64) -> StoreResult<bool> {
        self.inner.delete_user(id, now).await
    }
    async fn set_password_hash(&self, id: &UserId, hash: &str, now: i64) -> StoreResult<bool> {
        self.inner.set_password_hash(id, hash, now).await
    }
    async fn change_own_password(
        &self,
        change: &OwnPasswordChange<'_>,
        now: i64,
    ) -> StoreResult<Option<Vec<SessionId>>> {
        self.inner.change_own_password(change, now).await
    }
}

#[async_trait]
impl SigningKeyStore for CachedStore {
    async fn insert_signing_key(&self, key: &StoredSigningKey) -> StoreResult<()> {
        self.inner.insert_signing_key(key).await
    }
    async fn rotate_signing_key(&self, next: &StoredSigningKey, now: i64) -> StoreResult<bool> {
        self.inner.rotate_signing_key(next, now).await
    }
    async fn revoke_signing_key(&self, kid: &KeyId, now: i64) -> StoreResult<bool> {
        self.inner.revoke_signing_key(kid, now).await
    }
    async fn rewrap_signing_key(&self, kid: &KeyId, blob: &str) -> StoreResult<()> {
        self.inner.rewrap_signing_key(kid, blob).await
    }
    async fn list_signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>> {
        self.inner.list_signing_keys().await
    }
    async fn ensure_signing_key(
        &self,
        key: &StoredSigningKey,
        now: i64,
    ) -> StoreResult<SignerChange> {
        self.inner.ensure_signing_key(key, now).await
    }
    async fn any_signing_key_stored(&self) -> StoreResult<bool> {
        self.inner.any_signing_key_stored().await
    }
    async fn serving_keys(&self) -> StoreResult<Option<ServingKeys>> {
        self.inner.serving_keys().await
    }
    async fn record_serving_keys(&self, serving: &ServingKeys) -> StoreResult<()> {
        self.inner.record_serving_keys(serving).await
    }
    async fn recorded_alg(&self, which: RecordedAlg) -> StoreResult<Option<SigningAlg>> {
        self.inner.recorded_alg(which).await
    }
    async fn record_alg(&self, which: RecordedAlg, alg: SigningAlg) -> StoreResult<()> {
        self.inner.record_alg(which, alg).await
    }
}

#[async_trait]
impl FlowStore for CachedStore {
    async fn insert_flow(&self, flow: &Flow) -> StoreResult<()> {
        self.inner.insert_flow(flow).await
    }
    async fn flow_by_hash(&self, cookie_hash: &str, now: i64) -> StoreResult<Option<Flow>> {
        self.inner.flow_by_hash(cookie_hash, now).await
    }
    async fn take_flow(&self, cookie_hash: &str, now: i64) -> StoreResult<Option<Flow>> {
        self.inner.take_flow(cookie_hash, now).await
    }
    async fn purge_expired_flows(&self, now: i64) -> StoreResult<u64> {
        self.inner.purge_expired_flows(now).await
    }
}

#[async_trait]
impl SessionStore for CachedStore {
    async fn insert_session(&self, session: &Session) -> StoreResult<bool> {
        self.inner.insert_session(session).await
    }
    async fn session_by_cookie_hash(&self, cookie_hash: &str) -> StoreResult<Option<Session>> {
        self.inner.session_by_cookie_hash(cookie_hash).await
    }
    async fn session_by_id(&self, id: &SessionId) -> StoreResult<Option<Session>> {
        self.inner.session_by_id(id).await
    }
    async fn touch_session(&self, id: &SessionId, now: i64) -> StoreResult<()> {
        self.inner.touch_session(id, now).await
    }
    async fn list_sessions(&self, user_id: &UserId, now: i64) -> StoreResult<Vec<Session>> {
        self.inner.list_sessions(user_id, now).await
    }
    async fn revoke_user_sessions(
        &self,
        user_id: &UserId,
        keep: Option<&SessionId>,
        now: i64,
    ) -> StoreResult<Vec<SessionId>> {
        self.inner.revoke_user_sessions(user_id, keep, now).await
    }
    async fn revoke_user_offline_tokens(&self, user_id: &UserId, now: i64) -> StoreResult<u64> {
        self.inner.revoke_user_offline_tokens(user_id, now).await
    }
    async fn cap_sessions(
        &self,
        user_id: &UserId,
        max: u32,
        now: i64,
    ) -> StoreResult<Vec<SessionId>> {
        self.inner.cap_sessions(user_id, max, now).await
    }
    async fn revoke_session(&self, id: &SessionId, now: i64) -> StoreResult<bool> {
        self.inner.revoke_session(id, now).await
    }
}

#[async_trait]
impl CodeStore for CachedStore {
    async fn insert_code(&self, code: &AuthCode) -> StoreResult<()> {
        self.inner.insert_code(code).await
    }
    async fn redeem_code(
        &self,
        code_hash: &str,
        client_id: &ClientId,
        now: i64,
        check: &CodeCheck<'_>,
    ) -> StoreResult<CodeRedemption> {
        self.inner
            .redeem_code(code_hash, client_id, now, check)
            .await
    }
    async fn set_code_family(&self, code_hash: &str, family_id: &FamilyId) -> StoreResult<()> {
        self.inner.set_code_family(code_hash, family_id).await
    }
}

#[async_trait]
impl RefreshTokenStore for CachedStore {
    async fn insert_refresh_token(&self, token: &RefreshToken, now: i64) -> StoreResult<bool> {
        self.inner.insert_refresh_token(token, now).await
    }
    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        client_id: &ClientId,
        now: i64,
        rules: &RefreshRules,
        make_next: &(dyn for<'a> Fn(&'a RefreshToken) -> Option<RefreshToken> + Send + Sync),
    ) -> StoreResult<RefreshRotation> {
        self.inner
            .rotate_refresh_token(old_hash, client_id, now, rules, make_next)
            .await
    }
    async fn revoke_family(&self, family_id: &FamilyId, now: i64) -> StoreResult<()> {
        self.inner.revoke_family(family_id, now).await
    }
    async fn live_refresh_token(
        &self,
        token_hash: &str,
        client_id: &ClientId,
        now: i64,
        rules: &RefreshRules,
    ) -> StoreResult<Option<RefreshToken>> {
        self.inner
            .live_refresh_token(token_hash, client_id, now, rules)
            .await
    }
    async fn refresh_token_by_hash(&self, token_hash: &str) -> StoreResult<Option<RefreshToken>> {
        self.inner.refresh_token_by_hash(token_hash).await
    }
}

#[async_trait]
impl AccessTokenStore for CachedStore {
    async fn revoke_access_token(
        &self,
        jti: &str,
        client_id: &ClientId,
        expires_at: i64,
        now: i64,
    ) -> StoreResult<()> {
        self.inner
            .revoke_access_token(jti, client_id, expires_at, now)
            .await
    }
    async fn access_token_active(&self, check: &AccessTokenCheck<'_>) -> StoreResult<bool> {
        self.inner.access_token_active(check).await
    }
    async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
        self.inner.purge_expired(now).await
    }
}

#[async_trait]
impl BackchannelStore for CachedStore {
    async fn enqueue_ended_sessions(&self, now: i64) -> StoreResult<u64> {
        self.inner.enqueue_ended_sessions(now).await
    }
    async fn claim_logout_notices(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> StoreResult<Vec<LogoutNotice>> {
        self.inner
            .claim_logout_notices(now, lease_until, limit)
            .await
    }
    async fn remove_logout_notice(&self, id: i64) -> StoreResult<()> {
        self.inner.remove_logout_notice(id).await
    }
    async fn retry_logout_notice(&self, id: i64, next_attempt_at: i64) -> StoreResult<()> {
        self.inner.retry_logout_notice(id, next_attempt_at).await
    }
    async fn list_logout_notices(&self) -> StoreResult<Vec<LogoutNotice>> {
        self.inner.list_logout_notices().await
    }
    async fn session_clients(&self, session_id: &SessionId) -> StoreResult<Vec<ClientId>> {
        self.inner.session_clients(session_id).await
    }
}

#[async_trait]
impl AuditStore for CachedStore {
    async fn append_events(&self, events: &[portcullis_core::audit::Event]) -> StoreResult<()> {
        self.inner.append_events(events).await
    }
    async fn query_events(
        &self,
        filter: &portcullis_core::audit::EventFilter,
    ) -> StoreResult<Vec<portcullis_core::audit::StoredEvent>> {
        self.inner.query_events(filter).await
    }
    async fn purge_events(&self, before: i64) -> StoreResult<u64> {
        self.inner.purge_events(before).await
    }
}

#[async_trait]
impl AdminTokenStore for CachedStore {
    async fn add_admin_token(&self, hash: &str, now: i64) -> StoreResult<()> {
        self.inner.add_admin_token(hash, now).await
    }
    async fn admin_token_hashes(&self) -> StoreResult<Vec<String>> {
        self.inner.admin_token_hashes().await
    }
    async fn revoke_admin_tokens(&self) -> StoreResult<u64> {
        self.inner.revoke_admin_tokens().await
    }
}
