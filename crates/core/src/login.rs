//! Password sign-in and session creation. Every failure is the same `LoginFailed`: unknown
//! e-mail, malformed e-mail, wrong password and disabled account cost one Argon2 verification
//! each and are told apart only in the log.

use secrecy::SecretString;

use crate::crypto::HashKey;
use crate::email::Email;
use crate::ids::SessionId;
use crate::model::{Session, User};
use crate::password::{self, HashError, PasswordHasher};
use crate::secret::{self, IssuedSecret, SecretKind};
use crate::store::{StoreError, UserStore};

/// Why a sign-in failed, for the log only; the user always sees "Invalid credentials".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    MalformedEmail,
    UnknownUser,
    WrongPassword,
    Disabled,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::MalformedEmail => "malformed_email",
            FailureReason::UnknownUser => "unknown_user",
            FailureReason::WrongPassword => "wrong_password",
            FailureReason::Disabled => "disabled",
        }
    }
}

/// Outcome of a sign-in attempt.
#[derive(Debug)]
pub enum LoginError {
    /// With the account's id when the e-mail names one (for the audit trail only).
    Failed(FailureReason, Option<crate::ids::UserId>),
    Store(StoreError),
    Hash(HashError),
}

/// Checks an e-mail and password.
pub async fn verify_credentials<S: UserStore + ?Sized>(
    store: &S,
    hasher: &PasswordHasher,
    email: &str,
    password: &str,
) -> Result<User, LoginError> {
    let pw: SecretString = password::normalize(password);
    let user = match Email::parse(email) {
        Ok(e) => store
            .user_by_email_key(e.key())
            .await
            .map_err(LoginError::Store)?,
        Err(_) => None,
    };
    let malformed = Email::parse(email).is_err();
    let ok = hasher
        .verify(pw, user.as_ref().map(|u| u.password_hash.clone()))
        .await
        .map_err(LoginError::Hash)?;
    match user {
        None if malformed => Err(LoginError::Failed(FailureReason::MalformedEmail, None)),
        None => Err(LoginError::Failed(FailureReason::UnknownUser, None)),
        Some(u) if !ok => Err(LoginError::Failed(FailureReason::WrongPassword, Some(u.id))),
        // The disabled check comes after the password check, so it reveals nothing new.
        Some(u) if u.disabled => Err(LoginError::Failed(FailureReason::Disabled, Some(u.id))),
        Some(u) => Ok(u),
    }
}

/// Where a sign-in came from, as the user will see it in their list of sessions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionOrigin {
    pub user_agent: Option<String>,
    pub address: Option<String>,
}

/// Longest `User-Agent` kept with a session, in characters.
pub const MAX_USER_AGENT: usize = 200;

impl SessionOrigin {
    /// Keeps at most [`MAX_USER_AGENT`] characters of the user agent, without control
    /// characters (it is shown on a page and in the CLI).
    pub fn new(user_agent: Option<&str>, address: Option<String>) -> Self {
        let user_agent = user_agent
            .map(|ua| {
                ua.chars()
                    .filter(|c| !c.is_control())
                    .take(MAX_USER_AGENT)
                    .collect::<String>()
            })
            .filter(|ua| !ua.trim().is_empty());
        Self {
            user_agent,
            address,
        }
    }
}

/// A new session for `user` (a new id at every sign-in: no fixation).
pub fn new_session(
    user: &User,
    key: &HashKey,
    now: i64,
    policy: &crate::policy::SessionPolicy,
    origin: SessionOrigin,
) -> (Session, IssuedSecret) {
    let cookie = secret::issue(SecretKind::SessionCookie, key);
    let session = Session {
        id: SessionId::generate(),
        cookie_hash: cookie.hash.clone(),
        user_id: user.id.clone(),
        auth_time: now,
        created_at: now,
        last_seen_at: now,
        expires_at: now + policy.absolute,
        revoked_at: None,
        user_agent: origin.user_agent,
        address: origin.address,
        idle_timeout: policy.idle,
        password_version: user.password_version,
    };
    (session, cookie)
}
