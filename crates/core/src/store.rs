//! Storage traits: one small trait per aggregate, so each piece of core logic names only the
//! stores it uses. Backends live in `portcullis-store`; all take `now` from the caller.

use async_trait::async_trait;

use crate::ids::{ClientId, FamilyId, KeyId, SessionId, UserId};
use crate::model::{
    Api, AuthCode, Client, Flow, RefreshToken, Session, SigningAlg, StoredSigningKey, User,
};

/// Storage failures. The detail is for logs; callers map them to `server_error`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A uniqueness rule was violated (e.g. the e-mail key of a user, an API audience).
    #[error("already exists: {0}")]
    Conflict(String),
    /// The database is locked or overloaded; the request may be retried.
    #[error("storage is busy")]
    Busy,
    /// Stored data could not be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    #[error("storage failure: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What [`UserStore::change_own_password`] stores.
pub struct OwnPasswordChange<'a> {
    pub user_id: &'a UserId,
    pub current: &'a SessionId,
    pub old_hash: &'a str,
    pub new_hash: &'a str,
    pub new_cookie_hash: &'a str,
    pub end_others: bool,
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Fails with `Conflict` when the e-mail key is taken.
    async fn create_user(&self, user: &User) -> StoreResult<()>;
    async fn user_by_id(&self, id: &UserId) -> StoreResult<Option<User>>;
    async fn user_by_email_key(&self, email_key: &str) -> StoreResult<Option<User>>;
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    /// Disabling also revokes every session and refresh token of the user, in one transaction.
    /// Returns false when no such user exists.
    async fn set_user_disabled(&self, id: &UserId, disabled: bool, now: i64) -> StoreResult<bool>;
    /// Raises the user's device epoch, which revokes every device cookie issued to the user.
    /// False when absent.
    async fn revoke_devices(&self, id: &UserId) -> StoreResult<bool>;
    /// Deletes the user with its sessions, codes and tokens, queuing the back-channel logout
    /// notices of its sessions first. False when absent.
    async fn delete_user(&self, id: &UserId, now: i64) -> StoreResult<bool>;
    /// Replaces the password hash and ends the user's sessions, refresh tokens and unredeemed
    /// codes, in one transaction. False when absent.
    async fn set_password_hash(&self, id: &UserId, hash: &str, now: i64) -> StoreResult<bool>;
    /// A signed-in user changes their own password from session `current`, in one
    /// transaction, provided the stored hash is still `old_hash` (the one the current password
    /// was checked against: of two concurrent changes, the second finds it gone): the new hash
    /// is stored and the password version raised; `current` takes the new version, `auth_time`
    /// `now` (the user has just proved the password) and the cookie hash `new_cookie_hash` (a
    /// copied cookie of this browser does not survive); every offline refresh token of the
    /// user, every refresh token issued in `current` and every unredeemed code of the user
    /// ends; and with `end_others` every other session ends as
    /// [`SessionStore::revoke_session`] ends one. Kept sessions keep their session-bound tokens
    /// but cannot grant offline access again without a new sign-in. `None`, with nothing
    /// changed, when `current` is not an active session of this enabled user at `now` or the
    /// hash has changed meanwhile; otherwise the ids of the sessions ended.
    async fn change_own_password(
        &self,
        change: &OwnPasswordChange<'_>,
        now: i64,
    ) -> StoreResult<Option<Vec<SessionId>>>;
}

#[async_trait]
pub trait ClientStore: Send + Sync {
    /// Stores the client and its initial secret hashes.
    async fn create_client(&self, client: &Client) -> StoreResult<()>;
    /// The client with its active secret hashes (newest first).
    async fn client_by_id(&self, id: &ClientId) -> StoreResult<Option<Client>>;
    async fn list_clients(&self) -> StoreResult<Vec<Client>>;
    /// Disabling also revokes the client's refresh tokens. False when absent.
    async fn set_client_disabled(
        &self,
        id: &ClientId,
        disabled: bool,
        now: i64,
    ) -> StoreResult<bool>;
    /// Adds a secret hash; only the two newest stay active. False when absent.
    async fn add_client_secret(
        &self,
        id: &ClientId,
        secret_hash: &str,
        now: i64,
    ) -> StoreResult<bool>;
}

#[async_trait]
pub trait ApiStore: Send + Sync {
    /// Fails with `Conflict` when the audience is taken.
    async fn create_api(&self, api: &Api) -> StoreResult<()>;
    async fn api_by_audience(&self, audience: &str) -> StoreResult<Option<Api>>;
    async fn list_apis(&self) -> StoreResult<Vec<Api>>;
    /// Adds an introspection secret hash for the API; only the two newest stay active.
    /// False when no such API exists.
    async fn add_api_secret(
        &self,
        audience: &str,
        secret_hash: &str,
        now: i64,
    ) -> StoreResult<bool>;
    /// The API's active introspection secret hashes, newest first (empty when none or absent).
    async fn api_secret_hashes(&self, audience: &str) -> StoreResult<Vec<String>>;
}

#[async_trait]
pub trait SigningKeyStore: Send + Sync {
    async fn insert_signing_key(&self, key: &StoredSigningKey) -> StoreResult<()>;
    /// Every key not revoked, oldest first.
    async fn list_signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>>;
    /// In one transaction: unless a key of `next.alg` is already waiting to activate, stores
    /// `next` and retires every current key of that algorithm at `next.activates_at` (they sign
    /// until then). False when a rotation was already pending (nothing changed).
    async fn rotate_signing_key(&self, next: &StoredSigningKey, now: i64) -> StoreResult<bool>;
    /// Revokes a key at once: it leaves the key set (its private part is erased). False when
    /// no such key, or it was already revoked.
    async fn revoke_signing_key(&self, kid: &KeyId, now: i64) -> StoreResult<bool>;
    /// Replaces a key's sealed private part (re-encryption under a new encryption key).
    async fn rewrap_signing_key(&self, kid: &KeyId, blob: &str) -> StoreResult<()>;
    /// Gives `key.alg` a signer, in one transaction so that processes racing here agree (each
    /// saw none signing): nothing when a key of it signs at `now`, or when `key` would wait
    /// for its activation and one already waits; else, when `key` must sign now and a key
    /// waits, the earliest waiting key signs from `now` (published since its rotation; what
    /// it was to replace retires now); else `key` is stored.
    async fn ensure_signing_key(
        &self,
        key: &StoredSigningKey,
        now: i64,
    ) -> StoreResult<SignerChange>;
    /// What the deployment recorded of `which` (`None` when nothing is).
    async fn recorded_alg(&self, which: RecordedAlg) -> StoreResult<Option<SigningAlg>>;
    /// Records `which`, replacing what was recorded.
    async fn record_alg(&self, which: RecordedAlg, alg: SigningAlg) -> StoreResult<()>;
    /// Whether any signing key was ever stored, revoked ones included (a store without is
    /// new: its first keys sign at once).
    async fn any_signing_key_stored(&self) -> StoreResult<bool>;
    /// The key settings the server last started listening with (`None` before it has).
    async fn serving_keys(&self) -> StoreResult<Option<ServingKeys>>;
    /// Records them, replacing what was recorded.
    async fn record_serving_keys(&self, serving: &ServingKeys) -> StoreResult<()>;
}

/// What [`SigningKeyStore::ensure_signing_key`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignerChange {
    /// A key signs already (or one waits, for a key that would wait): `key` was not stored.
    Unchanged,
    /// This waiting key signs from now on.
    Activated(KeyId),
    /// `key` was stored.
    Inserted,
}

/// The key settings a running server keeps its keys by, recorded when it starts listening,
/// so that `portcullis keys` (another process, with an environment of its own) acts as the
/// server would, and makes keys only under the encryption key the server has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServingKeys {
    pub access_token_alg: SigningAlg,
    pub rotation: crate::keys::RotationPolicy,
    /// The fingerprint of the server's current encryption key (`Encrypter::current_key_id`:
    /// it names the key and reveals nothing useful about it).
    pub encryption_key_id: String,
}

/// What a deployment records about its signature algorithms, one value each, so that a
/// restart and the CLI (another process, with an environment of its own) know them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordedAlg {
    /// The access-token algorithm kept when none is configured: ES256 for a deployment that
    /// had keys before EdDSA keys existed (recorded by that upgrade), nothing otherwise.
    AccessTokenDefault,
    /// The last RS256 or ES256 the server started signing access tokens with: what stands in
    /// while a new access-token algorithm's key waits to sign.
    StandIn,
}

#[async_trait]
pub trait FlowStore: Send + Sync {
    async fn insert_flow(&self, flow: &Flow) -> StoreResult<()>;
    /// The flow if it exists and has not expired.
    async fn flow_by_hash(&self, cookie_hash: &str, now: i64) -> StoreResult<Option<Flow>>;
    /// Removes the flow atomically; returns it if it was there and live (single use).
    async fn take_flow(&self, cookie_hash: &str, now: i64) -> StoreResult<Option<Flow>>;
    /// Deletes expired flows; returns how many.
    async fn purge_expired_flows(&self, now: i64) -> StoreResult<u64>;
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session, but only while its user is enabled and still has the password
    /// version the session was signed in with (a sign-in checked against a password changed
    /// meanwhile is refused). False when refused.
    async fn insert_session(&self, session: &Session) -> StoreResult<bool>;
    /// The session by cookie hash, active or not.
    async fn session_by_cookie_hash(&self, cookie_hash: &str) -> StoreResult<Option<Session>>;
    async fn session_by_id(&self, id: &SessionId) -> StoreResult<Option<Session>>;
    async fn touch_session(&self, id: &SessionId, now: i64) -> StoreResult<()>;
    /// Revokes the session and its session-bound refresh tokens in one transaction (offline
    /// tokens outlive it).
    async fn revoke_session(&self, id: &SessionId, now: i64) -> StoreResult<bool>;
    /// The user's active sessions at `now`, newest first.
    async fn list_sessions(&self, user_id: &UserId, now: i64) -> StoreResult<Vec<Session>>;
    /// Revokes every active session of the user except `keep` (with their session-bound
    /// refresh tokens), in one transaction; returns the ids revoked.
    async fn revoke_user_sessions(
        &self,
        user_id: &UserId,
        keep: Option<&SessionId>,
        now: i64,
    ) -> StoreResult<Vec<SessionId>>;
    /// Revokes every offline refresh token of the user (they outlive sessions, so ending the
    /// sessions alone leaves them); returns how many.
    async fn revoke_user_offline_tokens(&self, user_id: &UserId, now: i64) -> StoreResult<u64>;
    /// Keeps the user's `max` newest active sessions and revokes the older ones (oldest ends
    /// first), in one transaction; returns the ids revoked.
    async fn cap_sessions(
        &self,
        user_id: &UserId,
        max: u32,
        now: i64,
    ) -> StoreResult<Vec<SessionId>>;
}

/// The outcome of consuming an authorization code.
#[derive(Debug)]
pub enum CodeRedemption {
    /// First use: the code is now marked consumed.
    Redeemed(Box<AuthCode>),
    /// Already used: whatever the first use issued (its family) has been revoked.
    Replayed,
    /// No such code, or a code issued to another client (nothing changed: a stranger holding
    /// a leaked code cannot burn it or revoke what it issued).
    Unknown,
    /// `check` refused the presentation (wrong redirect URI or PKCE verifier): nothing
    /// changed, the reason is for the error description.
    Refused(&'static str),
}

/// A check run on a live code inside the redemption transaction, before it is consumed.
pub type CodeCheck<'a> = dyn Fn(&AuthCode) -> Result<(), &'static str> + Send + Sync + 'a;

/// The outcome of presenting a refresh token for rotation.
#[derive(Debug)]
pub enum RefreshRotation {
    /// The token was live and is now rotated; the new token has been stored.
    Rotated(RefreshToken),
    /// The token was already rotated within the grace window: refused, nothing revoked.
    RecentlyRotated,
    /// The token was already rotated before the grace window: the family and its session
    /// have been revoked in the same transaction.
    ReuseDetected {
        family_id: FamilyId,
        session_id: SessionId,
        user_id: UserId,
    },
    /// Unknown, revoked, expired, or belonging to another client.
    Invalid,
    /// `make_next` declined: nothing was changed.
    Refused,
}

#[async_trait]
pub trait CodeStore: Send + Sync {
    async fn insert_code(&self, code: &AuthCode) -> StoreResult<()>;
    /// In one transaction: finds the code issued to `client_id`, runs `check` on it, marks it
    /// consumed, and records that the client received tokens in the code's session (for
    /// back-channel logout). A second redemption by the same client that passes `check` revokes the
    /// family recorded by the first one. A code of another client, or a presentation `check`
    /// refuses (live or spent), leaves everything exactly as it was.
    async fn redeem_code(
        &self,
        code_hash: &str,
        client_id: &ClientId,
        now: i64,
        check: &CodeCheck<'_>,
    ) -> StoreResult<CodeRedemption>;
    /// Records which refresh-token family the redemption created.
    async fn set_code_family(&self, code_hash: &str, family_id: &FamilyId) -> StoreResult<()>;
}

#[async_trait]
pub trait RefreshTokenStore: Send + Sync {
    /// Stores the first token of a family, only while its user (enabled, no password change
    /// since its `auth_time`), client and session are live at `now` (an offline token then
    /// outlives the session). False when refused.
    async fn insert_refresh_token(&self, token: &RefreshToken, now: i64) -> StoreResult<bool>;
    /// In one transaction: mark `old_hash` rotated if it is live, belongs to `client_id` and
    /// its session is active, and store `next` (whose family and binding the caller copies
    /// from the returned record, so `next` is built by `make_next`; `None` from it rolls the
    /// transaction back and yields `Refused`). Reuse after
    /// `grace_seconds` revokes the family and its session.
    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        client_id: &ClientId,
        now: i64,
        rules: &RefreshRules,
        make_next: &(dyn for<'a> Fn(&'a RefreshToken) -> Option<RefreshToken> + Send + Sync),
    ) -> StoreResult<RefreshRotation>;
    async fn revoke_family(&self, family_id: &FamilyId, now: i64) -> StoreResult<()>;
    /// The token if it is usable right now: not rotated, revoked or expired, within the offline
    /// idle limit, its client and user enabled, and (unless offline) its session active.
    async fn live_refresh_token(
        &self,
        token_hash: &str,
        client_id: &ClientId,
        now: i64,
        rules: &RefreshRules,
    ) -> StoreResult<Option<RefreshToken>>;
    /// The token by hash in any state (for revocation, which must find rotated tokens too).
    async fn refresh_token_by_hash(&self, token_hash: &str) -> StoreResult<Option<RefreshToken>>;
}

/// The timing rules of refresh tokens that storage applies inside its transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefreshRules {
    /// A rotated token presented up to this many (whole) seconds after its rotation is refused
    /// without alarm; more than that is theft. With 0, reuse from the next second on is theft.
    pub reuse_grace: i64,
    /// An offline token unused for this many seconds is dead.
    pub offline_idle: i64,
    /// The presenting client's own session idle timeout (`ClientPolicy::session_idle`): a
    /// session-bound token of a session idle longer than that does not rotate for it.
    pub client_session_idle: Option<i64>,
}

/// What decides whether an access token that verified is still live (revocation is immediate
/// for introspection and userinfo).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessTokenCheck<'a> {
    pub jti: &'a str,
    pub client_id: &'a str,
    /// The user, for user tokens (`None` for client credentials).
    pub user_id: Option<&'a str>,
    /// The refresh-token family (or code redemption) the token came from.
    pub family_id: Option<&'a str>,
    /// The browser session the token came from.
    pub session_id: Option<&'a str>,
    pub now: i64,
}

#[async_trait]
pub trait AccessTokenStore: Send + Sync {
    /// Records the revocation of an access token until `expires_at` (idempotent).
    async fn revoke_access_token(
        &self,
        jti: &str,
        client_id: &ClientId,
        expires_at: i64,
        now: i64,
    ) -> StoreResult<()>;
    /// False when the token was revoked, its client or user is disabled, its family was
    /// revoked (or its code replayed), or its session ended (unless its family is offline).
    async fn access_token_active(&self, check: &AccessTokenCheck<'_>) -> StoreResult<bool>;
    /// Deletes what can no longer matter: expired flows are separate; this removes revocation
    /// records past their token's `exp`, codes a day past expiry, sessions and refresh tokens
    /// a day past their end. Returns how many rows went.
    async fn purge_expired(&self, now: i64) -> StoreResult<u64>;
}

/// A queued back-channel logout notice: tell `client_id` that session `session_id` of
/// `user_id` ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogoutNotice {
    pub id: i64,
    pub client_id: ClientId,
    pub session_id: SessionId,
    pub user_id: UserId,
    pub created_at: i64,
    /// Delivery attempts started so far (a claimed notice counts its current attempt).
    pub attempts: u32,
    pub next_attempt_at: i64,
}

/// Back-channel logout bookkeeping. The notices themselves are queued by the stores that end
/// sessions, in the transaction that ends them (revocation, logout, reuse detection, user
/// disable, deletion and password change, the session cap): only sessions that merely expire
/// need [`BackchannelStore::enqueue_ended_sessions`].
#[async_trait]
pub trait BackchannelStore: Send + Sync {
    /// Queues a notice for every client that received tokens in a session that has ended
    /// (expired, idle, or revoked) and was not announced yet, and marks it announced, in one
    /// transaction. Returns how many notices were queued.
    async fn enqueue_ended_sessions(&self, now: i64) -> StoreResult<u64>;
    /// Claims up to `limit` notices due at `now`: each one's attempt count rises and its next
    /// attempt moves to `lease_until`, so that it is not claimed twice while in flight and is
    /// retried after the lease if the process dies. Oldest due first.
    async fn claim_logout_notices(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> StoreResult<Vec<LogoutNotice>>;
    /// Removes a notice (delivered, or given up on).
    async fn remove_logout_notice(&self, id: i64) -> StoreResult<()>;
    /// Schedules the next attempt of a claimed notice.
    async fn retry_logout_notice(&self, id: i64, next_attempt_at: i64) -> StoreResult<()>;
    /// Every queued notice, oldest first (for operators and tests).
    async fn list_logout_notices(&self) -> StoreResult<Vec<LogoutNotice>>;
    /// The clients that received tokens in the session (recorded at code redemption).
    async fn session_clients(&self, session_id: &SessionId) -> StoreResult<Vec<ClientId>>;
}

/// The audit trail: events appended in batches, read back by filter, and purged by age.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends the events, all or none, in order.
    async fn append_events(&self, events: &[crate::audit::Event]) -> StoreResult<()>;
    /// Events matching `filter`: the newest `limit`, oldest first; or with `after_id`, the
    /// first `limit` stored after it.
    async fn query_events(
        &self,
        filter: &crate::audit::EventFilter,
    ) -> StoreResult<Vec<crate::audit::StoredEvent>>;
    /// Deletes events older than `before` (unix seconds); returns how many.
    async fn purge_events(&self, before: i64) -> StoreResult<u64>;
}

/// Tokens of the admin HTTP API, as keyed hashes; the two newest are valid.
#[async_trait]
pub trait AdminTokenStore: Send + Sync {
    /// Adds a token hash and keeps only the two newest (the previous one stays valid until the
    /// next rotation).
    async fn add_admin_token(&self, hash: &str, now: i64) -> StoreResult<()>;
    async fn admin_token_hashes(&self) -> StoreResult<Vec<String>>;
    /// Deletes every admin token (a leak: rotate afterwards); returns how many.
    async fn revoke_admin_tokens(&self) -> StoreResult<u64>;
}

/// Everything the server needs, as one object.
pub trait Storage:
    UserStore
    + ClientStore
    + ApiStore
    + SigningKeyStore
    + FlowStore
    + SessionStore
    + CodeStore
    + RefreshTokenStore
    + AccessTokenStore
    + BackchannelStore
    + AuditStore
    + AdminTokenStore
{
}

impl<T> Storage for T where
    T: UserStore
        + ClientStore
        + ApiStore
        + SigningKeyStore
        + FlowStore
        + SessionStore
        + CodeStore
        + RefreshTokenStore
        + AccessTokenStore
        + BackchannelStore
        + AuditStore
        + AdminTokenStore
{
}
