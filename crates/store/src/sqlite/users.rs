//! Users: accounts, disabling (which revokes everything the user holds) and deletion (which
//! cascades through the foreign keys).

use async_trait::async_trait;
use portcullis_core::ids::{SessionId, UserId};
use portcullis_core::model::User;
use portcullis_core::store::{OwnPasswordChange, StoreResult, UserStore};

use super::backchannel::enqueue_user_in;
use super::sessions::revoke_session_in;
use super::{map_err, map_err_conflict, SqliteStore};

#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    email: String,
    email_key: String,
    email_verified: bool,
    password_hash: String,
    disabled: bool,
    created_at: i64,
    device_epoch: i64,
    password_changed_at: Option<i64>,
    password_version: i64,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        User {
            id: UserId::from_trusted(row.id),
            email: row.email,
            email_key: row.email_key,
            email_verified: row.email_verified,
            password_hash: row.password_hash,
            disabled: row.disabled,
            created_at: row.created_at,
            device_epoch: row.device_epoch,
            password_changed_at: row.password_changed_at,
            password_version: row.password_version,
        }
    }
}

/// `SELECT <every user column> FROM users <tail>`, as one string literal.
macro_rules! select_user {
    ($tail:literal) => {
        concat!(
            "SELECT id, email, email_key, email_verified, password_hash, disabled, created_at, \
             device_epoch, password_changed_at, password_version FROM users ",
            $tail
        )
    };
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, user: &User) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO users (id, email, email_key, email_verified, password_hash, disabled, \
             created_at, device_epoch, password_changed_at, password_version) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(user.id.as_str())
        .bind(&user.email)
        .bind(&user.email_key)
        .bind(user.email_verified)
        .bind(&user.password_hash)
        .bind(user.disabled)
        .bind(user.created_at)
        .bind(user.device_epoch)
        .bind(user.password_changed_at)
        .bind(user.password_version)
        .execute(&mut *self.write_conn().await?)
        .await
        .map_err(|e| {
            map_err_conflict(e, |msg| {
                if msg.contains("users.email_key") {
                    "email"
                } else {
                    "user id"
                }
            })
        })?;
        Ok(())
    }

    async fn user_by_id(&self, id: &UserId) -> StoreResult<Option<User>> {
        let row: Option<UserRow> = sqlx::query_as(select_user!("WHERE id = ?"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(row.map(User::from))
    }

    async fn user_by_email_key(&self, email_key: &str) -> StoreResult<Option<User>> {
        let row: Option<UserRow> = sqlx::query_as(select_user!("WHERE email_key = ?"))
            .bind(email_key)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(row.map(User::from))
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let rows: Vec<UserRow> = sqlx::query_as(select_user!("ORDER BY created_at, id"))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(rows.into_iter().map(User::from).collect())
    }

    /// Disabling also revokes the user's sessions and refresh tokens and deletes the user's
    /// unredeemed authorization codes, so that nothing issued before can still be exchanged.
    async fn set_user_disabled(&self, id: &UserId, disabled: bool, now: i64) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let found = sqlx::query("UPDATE users SET disabled = ? WHERE id = ?")
            .bind(disabled)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected()
            > 0;
        if found && disabled {
            enqueue_user_in(&mut tx, id, now).await?;
            sqlx::query(
                "UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            sqlx::query("DELETE FROM auth_codes WHERE user_id = ? AND consumed_at IS NULL")
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(found)
    }

    async fn revoke_devices(&self, id: &UserId) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE users SET device_epoch = device_epoch + 1 WHERE id = ?")
            .bind(id.as_str())
            .execute(&mut *self.write_conn().await?)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    /// The user's sessions are announced to the clients that received tokens in them first
    /// (the notices carry the user id, so they outlive the deletion).
    async fn delete_user(&self, id: &UserId, now: i64) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        enqueue_user_in(&mut tx, id, now).await?;
        // Sessions, codes and refresh tokens go with it: ON DELETE CASCADE.
        let done = sqlx::query("DELETE FROM users WHERE id = ?")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn set_password_hash(&self, id: &UserId, hash: &str, now: i64) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let found = sqlx::query(
            "UPDATE users SET password_hash = ?, password_changed_at = ?, \
                 password_version = password_version + 1 WHERE id = ?",
        )
        .bind(hash)
        .bind(now)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected()
            > 0;
        if found {
            // A new password ends every way in that the old one opened: sessions (announced
            // to the clients that received tokens in them), their refresh tokens, and codes not
            // yet redeemed.
            enqueue_user_in(&mut tx, id, now).await?;
            for sql in [
                "UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
                "UPDATE refresh_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
            ] {
                sqlx::query(sql)
                    .bind(now)
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
            }
            sqlx::query("DELETE FROM auth_codes WHERE user_id = ? AND consumed_at IS NULL")
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(found)
    }

    async fn change_own_password(
        &self,
        c: &OwnPasswordChange<'_>,
        now: i64,
    ) -> StoreResult<Option<Vec<SessionId>>> {
        let mut tx = self.begin_write().await?;
        // The hash must still be the one the current password was checked against.
        let changed = sqlx::query(
            "UPDATE users SET password_hash = ?1, password_changed_at = ?2, \
             password_version = password_version + 1 \
             WHERE id = ?3 AND password_hash = ?4 AND disabled = 0",
        )
        .bind(c.new_hash)
        .bind(now)
        .bind(c.user_id.as_str())
        .bind(c.old_hash)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected()
            > 0;
        // The current session must still be live (not ended by another tab, an admin or its
        // timeouts since the page was loaded); it moves to the new version with a new cookie.
        let kept = changed
            && sqlx::query(
                "UPDATE sessions SET auth_time = ?1, cookie_hash = ?2, \
                 password_version = (SELECT password_version FROM users WHERE id = ?4) \
                 WHERE id = ?3 AND user_id = ?4 \
                 AND revoked_at IS NULL AND expires_at > ?1 \
                 AND (idle_timeout IS NULL OR last_seen_at + idle_timeout > ?1)",
            )
            .bind(now)
            .bind(c.new_cookie_hash)
            .bind(c.current.as_str())
            .bind(c.user_id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected()
                > 0;
        if !kept {
            tx.rollback().await.map_err(map_err)?;
            return Ok(None);
        }
        // Offline grants end, and so does everything issued in this session so far: a copy of
        // its cookie may have been used to get them (the apps of this browser sign in again,
        // silently where they may). Codes not yet redeemed go too.
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = ?1 \
             WHERE user_id = ?2 AND revoked_at IS NULL AND (offline = 1 OR session_id = ?3)",
        )
        .bind(now)
        .bind(c.user_id.as_str())
        .bind(c.current.as_str())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query("DELETE FROM auth_codes WHERE user_id = ?1 AND consumed_at IS NULL")
            .bind(c.user_id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let mut ended = Vec::new();
        if c.end_others {
            let ids: Vec<String> = sqlx::query_scalar(
                "SELECT id FROM sessions WHERE user_id = ?1 AND revoked_at IS NULL AND id <> ?2",
            )
            .bind(c.user_id.as_str())
            .bind(c.current.as_str())
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
            for other in ids.into_iter().map(SessionId::from_trusted) {
                revoke_session_in(&mut tx, &other, now).await?;
                ended.push(other);
            }
        }
        tx.commit().await.map_err(map_err)?;
        Ok(Some(ended))
    }
}
