//! The domain records that storage keeps. Secrets appear here only as keyed hashes.

use serde::{Deserialize, Serialize};

use crate::ids::{ClientId, FamilyId, KeyId, SessionId, UserId};

/// A person who signs in.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    /// Normalised address as shown (domain lower-cased and punycoded).
    pub email: String,
    /// Comparison key: one mailbox, one account.
    pub email_key: String,
    pub email_verified: bool,
    /// PHC string (Argon2id).
    pub password_hash: String,
    pub disabled: bool,
    pub created_at: i64,
    /// Part of every device cookie's signature: raising it revokes them all.
    pub device_epoch: i64,
    /// When the password last changed (`None`: never since the account was made); shown to
    /// operators, never compared (see `password_version`).
    pub password_changed_at: Option<i64>,
    /// Raised by every password change.
    pub password_version: i64,
}

impl User {
    /// Whether `session` was signed in with a password the user has since changed: such a
    /// session may go on (when the user kept it), but it cannot grant offline access (which
    /// outlives it).
    pub fn password_changed_since(&self, session: &Session) -> bool {
        session.password_version != self.password_version
    }
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// How a client authenticates at the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    /// Holds a secret (`client_secret_basic` or `client_secret_post`).
    Confidential,
    /// Cannot keep a secret (browser or native app): `none`, PKCE only.
    Public,
}

/// Grants a client may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

impl GrantType {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "authorization_code" => Some(GrantType::AuthorizationCode),
            "refresh_token" => Some(GrantType::RefreshToken),
            "client_credentials" => Some(GrantType::ClientCredentials),
            _ => None,
        }
    }
}

/// Signature algorithms Portcullis signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlg {
    RS256,
    ES256,
    /// Ed25519 (RFC 8037), written `EdDSA` in the JOSE header with `crv: Ed25519` in the
    /// key. RFC 9864 adds the fully specified name `Ed25519`, but the JWT libraries
    /// resource servers use (jsonwebtoken among them) know only `EdDSA` so far.
    EdDSA,
}

impl SigningAlg {
    /// Every algorithm: each has a signing key, kept and rotated on the same schedule.
    pub const ALL: [SigningAlg; 3] = [SigningAlg::ES256, SigningAlg::RS256, SigningAlg::EdDSA];

    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::RS256 => "RS256",
            SigningAlg::ES256 => "ES256",
            SigningAlg::EdDSA => "EdDSA",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RS256" => Some(SigningAlg::RS256),
            "ES256" => Some(SigningAlg::ES256),
            "EdDSA" => Some(SigningAlg::EdDSA),
            _ => None,
        }
    }

    /// May ID tokens (and logout tokens, signed like them) use it? Not EdDSA: OpenID
    /// Connect defines `at_hash` by the hash of the header's `alg`, which EdDSA does not
    /// name, and relying parties' libraries do not agree on one; access tokens carry no
    /// such hash.
    pub fn signs_id_tokens(self) -> bool {
        matches!(self, SigningAlg::RS256 | SigningAlg::ES256)
    }
}

/// A registered application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    pub id: ClientId,
    pub name: String,
    pub kind: ClientKind,
    /// Validated at registration; matched as exact strings.
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grants: Vec<GrantType>,
    /// Audiences of the APIs this client may get tokens for; the first is the default.
    pub apis: Vec<String>,
    /// API scopes this client may request.
    pub scopes: Vec<String>,
    /// First-party confidential clients get silent single sign-on.
    pub first_party: bool,
    pub id_token_alg: SigningAlg,
    /// Where logout tokens are POSTed when a session this client received tokens in ends
    /// (OpenID Connect Back-Channel Logout; validated by `backchannel::BackchannelUri::parse`).
    pub backchannel_logout_uri: Option<String>,
    pub disabled: bool,
    /// Keyed hashes of the active secrets (at most two: rotation overlap).
    pub secret_hashes: Vec<String>,
    pub created_at: i64,
    /// This client's session policy; it can only tighten the server's.
    pub policy: ClientPolicy,
}

/// Per-client figures, each `None` for the server's own. Applied as the minimum of the two, so
/// a client can only tighten the server's policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientPolicy {
    /// Access-token lifetime for this client, seconds.
    pub access_token_ttl: Option<i64>,
    /// A session older than this (since sign-in) must sign in again for this client, and this
    /// client's session-bound refresh tokens end then.
    pub session_max_age: Option<i64>,
    /// A session idle longer than this must sign in again for this client.
    pub session_idle: Option<i64>,
}

impl ClientPolicy {
    /// The access-token lifetime for this client under `global`.
    pub fn access_token_ttl(&self, global: i64) -> i64 {
        self.access_token_ttl.map_or(global, |c| c.min(global))
    }

    /// Checks the figures against the server's lifetimes: each within its bounds and no
    /// looser than the server's, and the access token shorter than any idle timeout.
    pub fn validate(&self, global: &crate::policy::Lifetimes) -> Result<(), String> {
        if let Some(t) = self.access_token_ttl {
            if !(60..=global.access_token).contains(&t) {
                return Err(format!(
                    "the access-token lifetime must be between 60 and {} seconds (the server's)",
                    global.access_token
                ));
            }
        }
        if let Some(a) = self.session_max_age {
            if !(300..=global.session_absolute).contains(&a) {
                return Err(format!(
                    "the session max age must be between 300 and {} seconds (the server's)",
                    global.session_absolute
                ));
            }
        }
        if let Some(i) = self.session_idle {
            let ceiling = global.session_idle.unwrap_or(30 * 24 * 3600);
            if !(300..=ceiling).contains(&i) {
                return Err(format!(
                    "the session idle timeout must be between 300 and {ceiling} seconds"
                ));
            }
            if self.access_token_ttl(global.access_token) >= i {
                return Err(
                    "the access-token lifetime must be shorter than the session idle timeout"
                        .into(),
                );
            }
        }
        Ok(())
    }

    /// Whether a session signed in at `auth_time` and last active at `last_seen` may still be
    /// used for this client at `now` without signing in again.
    pub fn session_fresh(&self, auth_time: i64, last_seen: i64, now: i64) -> bool {
        self.session_max_age.is_none_or(|a| now - auth_time < a)
            && self.session_idle.is_none_or(|i| now - last_seen < i)
    }
}

impl Client {
    pub fn allows_grant(&self, g: GrantType) -> bool {
        self.grants.contains(&g)
    }
}

/// An API (resource server) that access tokens can be issued for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Api {
    /// The `aud` of its tokens (an absolute URI).
    pub audience: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: i64,
}

/// A signing key as stored: the private part encrypted at rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSigningKey {
    pub kid: KeyId,
    pub alg: SigningAlg,
    /// `Encrypter` blob of the PKCS#8 private key (AAD binds it to kid and purpose).
    pub private_key_blob: String,
    pub created_at: i64,
    /// When it may start signing (published in JWKS before that).
    pub activates_at: i64,
    pub retired_at: Option<i64>,
}

impl StoredSigningKey {
    /// Whether it signs at `now`: activated and not yet retired (a key being replaced signs
    /// until its successor activates).
    pub fn signs_at(&self, now: i64) -> bool {
        self.activates_at <= now && self.retired_at.is_none_or(|r| now < r)
    }

    /// Whether it is published and waits for its activation at `now`.
    pub fn waits_at(&self, now: i64) -> bool {
        self.activates_at > now && self.retired_at.is_none()
    }
}

/// A signed-in browser session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    /// Keyed hash of the cookie value.
    pub cookie_hash: String,
    pub user_id: UserId,
    pub auth_time: i64,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    /// The browser's `User-Agent` at sign-in (shortened, control characters removed).
    pub user_agent: Option<String>,
    /// The client address at sign-in.
    pub address: Option<String>,
    /// Ends the session after this many seconds without activity (`None`: never idle-ends).
    pub idle_timeout: Option<i64>,
    /// The user's password version this session was signed in with.
    pub password_version: i64,
}

impl Session {
    /// Not revoked, within its absolute lifetime, and not idle for its idle timeout.
    pub fn is_active(&self, now: i64) -> bool {
        self.revoked_at.is_none()
            && now < self.expires_at
            && self
                .idle_timeout
                .is_none_or(|idle| now < self.last_seen_at.saturating_add(idle))
    }
}

/// A validated authorization request, waiting for the user (the "flow").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: ClientId,
    pub redirect_uri: String,
    pub scope: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub prompt_none: bool,
    pub prompt_login: bool,
    /// `prompt=consent` or `select_account`: the user confirms even with a session.
    #[serde(default)]
    pub prompt_confirm: bool,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    /// The API audience the access token will carry.
    pub audience: Option<String>,
}

/// A pending flow as stored: the request plus its CSRF secret, keyed by the cookie's hash.
#[derive(Clone, PartialEq, Eq)]
pub struct Flow {
    pub cookie_hash: String,
    pub csrf_token: String,
    pub request: AuthorizationRequest,
    pub created_at: i64,
    pub expires_at: i64,
}

/// The CSRF token is a secret bound to the browser: it never prints.
impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flow")
            .field("request", &self.request)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// An issued authorization code (stored by hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthCode {
    pub code_hash: String,
    pub client_id: ClientId,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub scope: Vec<String>,
    pub audience: Option<String>,
    pub nonce: Option<String>,
    pub user_id: UserId,
    pub session_id: SessionId,
    pub auth_time: i64,
    pub created_at: i64,
    pub expires_at: i64,
    /// Set at the first (only valid) redemption.
    pub consumed_at: Option<i64>,
    /// The refresh-token family the first redemption created, revoked if the code is replayed.
    pub family_id: Option<FamilyId>,
}

/// A refresh token (stored by hash), one link of a rotation family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshToken {
    pub token_hash: String,
    pub family_id: FamilyId,
    pub client_id: ClientId,
    pub user_id: UserId,
    pub session_id: SessionId,
    pub scope: Vec<String>,
    pub audience: Option<String>,
    pub auth_time: i64,
    pub created_at: i64,
    /// Absolute end of the whole family.
    pub expires_at: i64,
    pub rotated_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// `offline_access`: outlives the session; dies when unused for the offline idle limit.
    pub offline: bool,
}
