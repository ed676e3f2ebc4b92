//! Back-channel logout: which clients received tokens in a session (`session_clients`), and the
//! outbox of logout notices, written in the transaction that ends a session.

use async_trait::async_trait;
use portcullis_core::ids::{ClientId, SessionId, UserId};
use portcullis_core::store::{BackchannelStore, LogoutNotice, StoreResult};
use sqlx::SqliteConnection;

use super::{map_err, SqliteStore};

/// The condition (on a `sessions` row `s`) that the session has ended at `?1`.
macro_rules! session_ended {
    () => {
        "(s.revoked_at IS NOT NULL OR s.expires_at <= ?1 \
          OR (s.idle_timeout IS NOT NULL AND s.last_seen_at + s.idle_timeout <= ?1))"
    };
}

/// `INSERT` of a notice, as of `?1`, for every client with a back-channel URI among the
/// not-yet-announced `session_clients` rows `sc` (of session `s`, client `c`) that the condition
/// selects.
macro_rules! enqueue_sql {
    ($($cond:tt)+) => {
        concat!(
            "INSERT INTO backchannel_outbox (client_id, session_id, user_id, created_at, \
             attempts, next_attempt_at) \
             SELECT sc.client_id, sc.session_id, s.user_id, ?1, 0, ?1 \
             FROM session_clients sc JOIN sessions s ON s.id = sc.session_id \
             JOIN clients c ON c.id = sc.client_id \
             WHERE sc.notified_at IS NULL AND c.backchannel_logout_uri IS NOT NULL AND ",
            $($cond)+,
            " ORDER BY sc.created_at, sc.client_id"
        )
    };
}

/// Runs `insert` (from [`enqueue_sql`]) and then `mark`, which sets `notified_at = ?1` on the
/// same rows (clients without a URI too), binding `key` as `?2` when given.
async fn run_enqueue(
    conn: &mut SqliteConnection,
    insert: &str,
    mark: &str,
    now: i64,
    key: Option<&str>,
) -> StoreResult<u64> {
    let mut q = sqlx::query(insert).bind(now);
    if let Some(k) = key {
        q = q.bind(k);
    }
    let queued = q
        .execute(&mut *conn)
        .await
        .map_err(map_err)?
        .rows_affected();
    let mut q = sqlx::query(mark).bind(now);
    if let Some(k) = key {
        q = q.bind(k);
    }
    q.execute(&mut *conn).await.map_err(map_err)?;
    Ok(queued)
}

/// Inside the caller's write transaction (the one that ends the session): queues the logout
/// notices of session `id` that were not queued yet. Idempotent.
pub(super) async fn enqueue_session_in(
    conn: &mut SqliteConnection,
    id: &SessionId,
    now: i64,
) -> StoreResult<u64> {
    run_enqueue(
        conn,
        enqueue_sql!("s.id = ?2"),
        "UPDATE session_clients SET notified_at = ?1 WHERE session_id = ?2 AND notified_at IS NULL",
        now,
        Some(id.as_str()),
    )
    .await
}

/// Inside the caller's write transaction: queues the logout notices of every session of the
/// user that were not queued yet (used where all of them end at once). Idempotent.
pub(super) async fn enqueue_user_in(
    conn: &mut SqliteConnection,
    user_id: &UserId,
    now: i64,
) -> StoreResult<u64> {
    run_enqueue(
        conn,
        enqueue_sql!("s.user_id = ?2"),
        "UPDATE session_clients SET notified_at = ?1 WHERE notified_at IS NULL \
         AND session_id IN (SELECT id FROM sessions WHERE user_id = ?2)",
        now,
        Some(user_id.as_str()),
    )
    .await
}

/// Inside the caller's write transaction (the redemption of a code): records that `client_id`
/// received tokens in `session_id`. Idempotent.
pub(super) async fn record_session_client_in(
    conn: &mut SqliteConnection,
    session_id: &SessionId,
    client_id: &ClientId,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO session_clients (session_id, client_id, created_at) VALUES (?, ?, ?) \
         ON CONFLICT (session_id, client_id) DO NOTHING",
    )
    .bind(session_id.as_str())
    .bind(client_id.as_str())
    .bind(now)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct NoticeRow {
    id: i64,
    client_id: String,
    session_id: String,
    user_id: String,
    created_at: i64,
    attempts: i64,
    next_attempt_at: i64,
}

impl From<NoticeRow> for LogoutNotice {
    fn from(row: NoticeRow) -> Self {
        LogoutNotice {
            id: row.id,
            client_id: ClientId::from_trusted(row.client_id),
            session_id: SessionId::from_trusted(row.session_id),
            user_id: UserId::from_trusted(row.user_id),
            created_at: row.created_at,
            attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
            next_attempt_at: row.next_attempt_at,
        }
    }
}

const NOTICE_COLUMNS: &str =
    "id, client_id, session_id, user_id, created_at, attempts, next_attempt_at";

#[async_trait]
impl BackchannelStore for SqliteStore {
    async fn enqueue_ended_sessions(&self, now: i64) -> StoreResult<u64> {
        // A plain read first: the sweep runs every few seconds and must not take a turn in the
        // write lane when nothing has ended.
        let pending: Option<i64> = sqlx::query_scalar(concat!(
            "SELECT 1 FROM session_clients sc JOIN sessions s ON s.id = sc.session_id \
             WHERE sc.notified_at IS NULL AND ",
            session_ended!(),
            " LIMIT 1"
        ))
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        if pending.is_none() {
            return Ok(0);
        }
        let mut tx = self.begin_write().await?;
        let queued = run_enqueue(
            &mut tx,
            enqueue_sql!(session_ended!()),
            concat!(
                "UPDATE session_clients SET notified_at = ?1 WHERE notified_at IS NULL \
                 AND EXISTS (SELECT 1 FROM sessions s WHERE s.id = session_clients.session_id \
                 AND ",
                session_ended!(),
                ")"
            ),
            now,
            None,
        )
        .await?;
        tx.commit().await.map_err(map_err)?;
        Ok(queued)
    }

    async fn claim_logout_notices(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> StoreResult<Vec<LogoutNotice>> {
        let due: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM backchannel_outbox WHERE next_attempt_at <= ? LIMIT 1",
        )
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "UPDATE backchannel_outbox SET attempts = attempts + 1, next_attempt_at = ?2 \
             WHERE id IN (SELECT id FROM backchannel_outbox WHERE next_attempt_at <= ?1 \
             ORDER BY next_attempt_at, id LIMIT ?3) RETURNING {NOTICE_COLUMNS}"
        );
        let mut rows: Vec<NoticeRow> = sqlx::query_as(&sql)
            .bind(now)
            .bind(lease_until)
            .bind(i64::from(limit))
            .fetch_all(&mut *self.write_conn().await?)
            .await
            .map_err(map_err)?;
        rows.sort_by_key(|r| r.id);
        Ok(rows.into_iter().map(LogoutNotice::from).collect())
    }

    async fn remove_logout_notice(&self, id: i64) -> StoreResult<()> {
        sqlx::query("DELETE FROM backchannel_outbox WHERE id = ?")
            .bind(id)
            .execute(&mut *self.write_conn().await?)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn retry_logout_notice(&self, id: i64, next_attempt_at: i64) -> StoreResult<()> {
        sqlx::query("UPDATE backchannel_outbox SET next_attempt_at = ? WHERE id = ?")
            .bind(next_attempt_at)
            .bind(id)
            .execute(&mut *self.write_conn().await?)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn list_logout_notices(&self) -> StoreResult<Vec<LogoutNotice>> {
        let sql = format!("SELECT {NOTICE_COLUMNS} FROM backchannel_outbox ORDER BY id");
        let rows: Vec<NoticeRow> = sqlx::query_as(&sql)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(rows.into_iter().map(LogoutNotice::from).collect())
    }

    async fn session_clients(&self, session_id: &SessionId) -> StoreResult<Vec<ClientId>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT client_id FROM session_clients WHERE session_id = ? \
             ORDER BY created_at, client_id",
        )
        .bind(session_id.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(ids.into_iter().map(ClientId::from_trusted).collect())
    }
}
