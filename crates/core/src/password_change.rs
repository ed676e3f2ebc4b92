//! A signed-in user changes their own password. The new password is checked first (cheap and
//! independent of the account's secret); then the current password is verified (one Argon2
//! verification, which the caller counts against the sign-in limits); then the new hash is
//! stored with the session policy the user chose: end every other session, or keep them.
//!
//! Either way every offline grant ends (it was given under the old password), and the session
//! the change was made from counts as freshly signed in.

use secrecy::{ExposeSecret, SecretString};

use crate::crypto::HashKey;
use crate::ids::SessionId;
use crate::model::User;
use crate::password::{self, HashError, PasswordError, PasswordHasher, PasswordPolicy};
use crate::secret::{self, IssuedSecret, SecretKind};
use crate::store::{OwnPasswordChange, StoreError, UserStore};

/// Longest password field accepted from a form, in bytes (the policy's own maximum is lower,
/// in characters; this only bounds the work done before the policy speaks).
pub const MAX_FIELD_BYTES: usize = 1024;

/// What the form asked for.
pub struct ChangeRequest<'a> {
    pub current: &'a str,
    pub new: &'a str,
    pub confirm: &'a str,
    /// End every other session of the user.
    pub end_others: bool,
}

/// Why a change was refused. Every message is safe to show to the signed-in user.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("the new password and its confirmation differ")]
    Mismatch,
    #[error("{0}")]
    Policy(PasswordError),
    #[error("the current password is not correct")]
    WrongPassword,
    #[error("the new password must differ from the current one")]
    Unchanged,
    /// The session ended, the user was disabled, or the password was changed elsewhere while
    /// the form was open: nothing was changed.
    #[error("your password was not changed: this session has ended or the password was changed meanwhile")]
    SessionEnded,
    #[error("password hashing is unavailable: {0}")]
    Hash(HashError),
    #[error("storage failure: {0}")]
    Store(StoreError),
}

/// The checks that need no secret of the account: confirmation, policy, and that it differs
/// from what was typed as the current one. Returns the new password, normalised.
pub fn check_new(
    req: &ChangeRequest<'_>,
    policy: &PasswordPolicy,
    user: &User,
) -> Result<SecretString, ChangeError> {
    let new = password::normalize(req.new);
    if new.expose_secret() != password::normalize(req.confirm).expose_secret() {
        return Err(ChangeError::Mismatch);
    }
    // Typed by the user both times, so telling it costs nothing and reveals nothing.
    if new.expose_secret() == password::normalize(req.current).expose_secret() {
        return Err(ChangeError::Unchanged);
    }
    policy
        .check(&new, &[user.email.as_str()])
        .map_err(ChangeError::Policy)?;
    Ok(new)
}

/// A change that was stored.
pub struct Changed {
    /// The other sessions that ended.
    pub ended: Vec<SessionId>,
    /// This browser's new session cookie (the old value no longer signs in).
    pub cookie: IssuedSecret,
}

/// Verifies the current password, then stores the new one (already passed by [`check_new`])
/// with a new cookie for the current session.
#[allow(clippy::too_many_arguments)]
pub async fn change<S: UserStore + ?Sized>(
    store: &S,
    hasher: &PasswordHasher,
    key: &HashKey,
    user: &User,
    session: &SessionId,
    req: &ChangeRequest<'_>,
    new: SecretString,
    now: i64,
) -> Result<Changed, ChangeError> {
    let current = password::normalize(req.current);
    let ok = hasher
        .verify(current, Some(user.password_hash.clone()))
        .await
        .map_err(ChangeError::Hash)?;
    if !ok {
        return Err(ChangeError::WrongPassword);
    }
    let hash = hasher.hash(new).await.map_err(ChangeError::Hash)?;
    let cookie = secret::issue(SecretKind::SessionCookie, key);
    let ended = store
        .change_own_password(
            &OwnPasswordChange {
                user_id: &user.id,
                current: session,
                old_hash: &user.password_hash,
                new_hash: &hash,
                new_cookie_hash: &cookie.hash,
                end_others: req.end_others,
            },
            now,
        )
        .await
        .map_err(ChangeError::Store)?
        .ok_or(ChangeError::SessionEnded)?;
    Ok(Changed { ended, cookie })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;

    fn user() -> User {
        User {
            id: UserId::generate(),
            email: "robin.example@example.com".into(),
            email_key: "robin.example@example.com".into(),
            email_verified: true,
            password_hash: String::new(),
            disabled: false,
            created_at: 0,
            device_epoch: 0,
            password_changed_at: None,
            password_version: 0,
        }
    }

    fn req<'a>(new: &'a str, confirm: &'a str) -> ChangeRequest<'a> {
        ChangeRequest {
            current: "whatever it was before",
            new,
            confirm,
            end_others: true,
        }
    }

    #[test]
    fn the_new_password_is_confirmed_and_meets_the_policy() {
        let policy = PasswordPolicy::default();
        let u = user();
        assert!(matches!(
            check_new(
                &req("glacier orbit lantern", "glacier orbit lanterns"),
                &policy,
                &u
            ),
            Err(ChangeError::Mismatch)
        ));
        assert!(matches!(
            check_new(&req("short one", "short one"), &policy, &u),
            Err(ChangeError::Policy(PasswordError::TooShort(15)))
        ));
        assert!(matches!(
            check_new(&req("robin.example2024", "robin.example2024"), &policy, &u),
            Err(ChangeError::Policy(PasswordError::Context))
        ));
        assert!(check_new(
            &req("glacier orbit lantern", "glacier orbit lantern"),
            &policy,
            &u
        )
        .is_ok());
        // Compatibility forms are one password (NFKC): a full-width confirmation matches.
        assert!(check_new(
            &req(
                "glacier orbit lantern",
                "\u{ff47}\u{ff4c}\u{ff41}\u{ff43}\u{ff49}\u{ff45}\u{ff52} orbit lantern"
            ),
            &policy,
            &u
        )
        .is_ok());
    }
}
