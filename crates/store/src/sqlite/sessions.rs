//! Browser sessions, keyed by ID and found by the hash of their cookie.

use async_trait::async_trait;
use portcullis_core::ids::{SessionId, UserId};
use portcullis_core::model::Session;
use portcullis_core::store::{SessionStore, StoreResult};
use sqlx::SqliteConnection;

use super::backchannel::enqueue_session_in;
use super::{map_err, map_err_conflict, SqliteStore};

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: String,
    cookie_hash: String,
    user_id: String,
    auth_time: i64,
    created_at: i64,
    last_seen_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
    user_agent: Option<String>,
    address: Option<String>,
    idle_timeout: Option<i64>,
    password_version: i64,
}

impl From<SessionRow> for Session {
    fn from(row: SessionRow) -> Self {
        Session {
            id: SessionId::from_trusted(row.id),
            cookie_hash: row.cookie_hash,
            user_id: UserId::from_trusted(row.user_id),
            auth_time: row.auth_time,
            created_at: row.created_at,
            last_seen_at: row.last_seen_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            user_agent: row.user_agent,
            address: row.address,
            idle_timeout: row.idle_timeout,
            password_version: row.password_version,
        }
    }
}

/// `SELECT <every session column> FROM sessions <tail>`, as one string literal.
macro_rules! select_session {
    ($tail:literal) => {
        concat!(
            "SELECT id, cookie_hash, user_id, auth_time, created_at, last_seen_at, expires_at, \
             revoked_at, user_agent, address, idle_timeout, password_version FROM sessions ",
            $tail
        )
    };
}

/// Inside the caller's write transaction: revokes the session (keeping an earlier revocation
/// time), every session-bound refresh token of it (offline ones outlive it), deletes its
/// unredeemed codes, and queues the back-channel logout notices of the clients that received
/// tokens in it (once per session and client). Returns whether the session exists.
pub(super) async fn revoke_session_in(
    conn: &mut SqliteConnection,
    id: &SessionId,
    now: i64,
) -> StoreResult<bool> {
    let found =
        sqlx::query("UPDATE sessions SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?")
            .bind(now)
            .bind(id.as_str())
            .execute(&mut *conn)
            .await
            .map_err(map_err)?
            .rows_affected()
            > 0;
    if found {
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = ? \
             WHERE session_id = ? AND revoked_at IS NULL AND offline = 0",
        )
        .bind(now)
        .bind(id.as_str())
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
        sqlx::query("DELETE FROM auth_codes WHERE session_id = ? AND consumed_at IS NULL")
            .bind(id.as_str())
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
        enqueue_session_in(conn, id, now).await?;
    }
    Ok(found)
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn insert_session(&self, session: &Session) -> StoreResult<bool> {
        let inserted = sqlx::query(
            "INSERT INTO sessions (id, cookie_hash, user_id, auth_time, created_at, last_seen_at, \
             expires_at, revoked_at, user_agent, address, idle_timeout, password_version) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12 \
             WHERE EXISTS (SELECT 1 FROM users WHERE id = ?3 AND disabled = 0 \
                           AND password_version = ?12)",
        )
        .bind(session.id.as_str())
        .bind(&session.cookie_hash)
        .bind(session.user_id.as_str())
        .bind(session.auth_time)
        .bind(session.created_at)
        .bind(session.last_seen_at)
        .bind(session.expires_at)
        .bind(session.revoked_at)
        .bind(session.user_agent.as_deref())
        .bind(session.address.as_deref())
        .bind(session.idle_timeout)
        .bind(session.password_version)
        .execute(&mut *self.write_conn().await?)
        .await
        .map_err(|e| {
            map_err_conflict(e, |msg| {
                if msg.contains("sessions.cookie_hash") {
                    "session cookie"
                } else {
                    "session id"
                }
            })
        })?;
        Ok(inserted.rows_affected() > 0)
    }

    async fn session_by_cookie_hash(&self, cookie_hash: &str) -> StoreResult<Option<Session>> {
        let row: Option<SessionRow> = sqlx::query_as(select_session!("WHERE cookie_hash = ?"))
            .bind(cookie_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(row.map(Session::from))
    }

    async fn session_by_id(&self, id: &SessionId) -> StoreResult<Option<Session>> {
        let row: Option<SessionRow> = sqlx::query_as(select_session!("WHERE id = ?"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(row.map(Session::from))
    }

    async fn touch_session(&self, id: &SessionId, now: i64) -> StoreResult<()> {
        // Never moves backwards when two requests race with slightly different clocks.
        // Only a live session: activity must not bring back one that ended (or idled out).
        sqlx::query(
            "UPDATE sessions SET last_seen_at = MAX(last_seen_at, ?1) WHERE id = ?2 \
             AND revoked_at IS NULL AND expires_at > ?1 \
             AND (idle_timeout IS NULL OR last_seen_at + idle_timeout > ?1)",
        )
        .bind(now)
        .bind(id.as_str())
        .execute(&mut *self.write_conn().await?)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    /// Also deletes the session's unredeemed authorization codes.
    async fn revoke_session(&self, id: &SessionId, now: i64) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let found = revoke_session_in(&mut tx, id, now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(found)
    }

    async fn list_sessions(&self, user_id: &UserId, now: i64) -> StoreResult<Vec<Session>> {
        let rows: Vec<SessionRow> = sqlx::query_as(select_session!(
            "WHERE user_id = ?1 AND revoked_at IS NULL AND expires_at > ?2 \
             AND (idle_timeout IS NULL OR last_seen_at + idle_timeout > ?2) \
             ORDER BY created_at DESC, rowid DESC"
        ))
        .bind(user_id.as_str())
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(rows.into_iter().map(Session::from).collect())
    }

    async fn revoke_user_sessions(
        &self,
        user_id: &UserId,
        keep: Option<&SessionId>,
        now: i64,
    ) -> StoreResult<Vec<SessionId>> {
        let mut tx = self.begin_write().await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM sessions WHERE user_id = ? AND revoked_at IS NULL AND id IS NOT ?",
        )
        .bind(user_id.as_str())
        .bind(keep.map(SessionId::as_str))
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        let ids: Vec<SessionId> = ids.into_iter().map(SessionId::from_trusted).collect();
        for id in &ids {
            revoke_session_in(&mut tx, id, now).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(ids)
    }

    async fn revoke_user_offline_tokens(&self, user_id: &UserId, now: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = ?1 \
             WHERE user_id = ?2 AND offline = 1 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(user_id.as_str())
        .execute(&mut *self.write_conn().await?)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn cap_sessions(
        &self,
        user_id: &UserId,
        max: u32,
        now: i64,
    ) -> StoreResult<Vec<SessionId>> {
        let mut tx = self.begin_write().await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM sessions WHERE user_id = ?1 AND revoked_at IS NULL \
             AND expires_at > ?2 AND (idle_timeout IS NULL OR last_seen_at + idle_timeout > ?2) \
             ORDER BY created_at DESC, rowid DESC LIMIT -1 OFFSET ?3",
        )
        .bind(user_id.as_str())
        .bind(now)
        .bind(i64::from(max))
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        let ids: Vec<SessionId> = ids.into_iter().map(SessionId::from_trusted).collect();
        for id in &ids {
            revoke_session_in(&mut tx, id, now).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(ids)
    }
}
