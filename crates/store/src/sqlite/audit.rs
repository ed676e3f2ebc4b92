//! The audit trail: appended in batches (one transaction each, through the write lane like
//! every write), read by filter with the indexes on time, user, client and kind. And the admin
//! API's tokens, which guard reading it.

use async_trait::async_trait;
use portcullis_core::audit::{Event, EventFilter, Outcome, StoredEvent};
use portcullis_core::store::{AdminTokenStore, AuditStore, StoreError, StoreResult};
use sqlx::{QueryBuilder, Sqlite};

use super::{map_err, SqliteStore};

/// Most rows one `INSERT` carries (11 columns each, well under SQLite's variable limit).
const ROWS_PER_INSERT: usize = 500;
/// Most events one query returns.
pub const MAX_QUERY: u32 = 10_000;

#[derive(sqlx::FromRow)]
struct EventRow {
    id: i64,
    at: i64,
    kind: String,
    outcome: String,
    reason: Option<String>,
    user_id: Option<String>,
    client_id: Option<String>,
    address: Option<String>,
    user_agent: Option<String>,
    session_id: Option<String>,
    request_id: Option<String>,
    detail: Option<String>,
}

impl TryFrom<EventRow> for StoredEvent {
    type Error = StoreError;

    fn try_from(r: EventRow) -> Result<Self, StoreError> {
        let outcome = Outcome::parse(&r.outcome)
            .ok_or_else(|| StoreError::Corrupt(format!("event {} outcome", r.id)))?;
        Ok(StoredEvent {
            id: r.id,
            event: Event {
                at: r.at,
                kind: r.kind,
                outcome,
                reason: r.reason,
                user_id: r.user_id,
                client_id: r.client_id,
                address: r.address,
                user_agent: r.user_agent,
                session_id: r.session_id,
                request_id: r.request_id,
                detail: r.detail,
            }
            // Whatever another writer put in the file is made safe for a terminal again.
            .cleaned(),
        })
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_events(&self, events: &[Event]) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for chunk in events.chunks(ROWS_PER_INSERT) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO audit_events (at, kind, outcome, reason, user_id, client_id, \
                 address, user_agent, session_id, request_id, detail) ",
            );
            q.push_values(chunk, |mut b, e| {
                b.push_bind(e.at)
                    .push_bind(&e.kind)
                    .push_bind(e.outcome.as_str())
                    .push_bind(&e.reason)
                    .push_bind(&e.user_id)
                    .push_bind(&e.client_id)
                    .push_bind(&e.address)
                    .push_bind(&e.user_agent)
                    .push_bind(&e.session_id)
                    .push_bind(&e.request_id)
                    .push_bind(&e.detail);
            });
            q.build().execute(&mut *tx).await.map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(())
    }

    async fn query_events(&self, f: &EventFilter) -> StoreResult<Vec<StoredEvent>> {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT id, at, kind, outcome, reason, user_id, client_id, address, user_agent, \
             session_id, request_id, detail FROM audit_events WHERE 1 = 1",
        );
        let eq = |q: &mut QueryBuilder<Sqlite>, column: &str, v: &Option<String>| {
            if let Some(v) = v {
                q.push(format_args!(" AND {column} = "))
                    .push_bind(v.clone());
            }
        };
        eq(&mut q, "user_id", &f.user_id);
        eq(&mut q, "client_id", &f.client_id);
        eq(&mut q, "kind", &f.kind);
        eq(&mut q, "address", &f.address);
        if let Some(o) = f.outcome {
            q.push(" AND outcome = ").push_bind(o.as_str());
        }
        if let Some(t) = f.since {
            q.push(" AND at >= ").push_bind(t);
        }
        if let Some(t) = f.until {
            q.push(" AND at < ").push_bind(t);
        }
        if let Some(id) = f.before_id {
            q.push(" AND id < ").push_bind(id);
        }
        let limit = i64::from(f.limit.clamp(1, MAX_QUERY));
        let newest_first = f.after_id.is_none();
        if let Some(id) = f.after_id {
            q.push(" AND id > ").push_bind(id);
            q.push(" ORDER BY id ASC LIMIT ").push_bind(limit);
        } else {
            q.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
        }
        let rows: Vec<EventRow> = q
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        let mut events = rows
            .into_iter()
            .map(StoredEvent::try_from)
            .collect::<StoreResult<Vec<_>>>()?;
        if newest_first {
            events.reverse();
        }
        Ok(events)
    }

    /// In chunks, each its own short write, so a large purge never holds the write lock long
    /// enough to hold up a sign-in.
    async fn purge_events(&self, before: i64) -> StoreResult<u64> {
        let mut total = 0;
        loop {
            let done = sqlx::query(
                "DELETE FROM audit_events WHERE id IN \
                 (SELECT id FROM audit_events WHERE at < ?1 ORDER BY id LIMIT 5000)",
            )
            .bind(before)
            .execute(&mut *self.write_conn().await?)
            .await
            .map_err(map_err)?
            .rows_affected();
            total += done;
            if done < 5000 {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }
}

#[async_trait]
impl AdminTokenStore for SqliteStore {
    async fn add_admin_token(&self, hash: &str, now: i64) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO admin_tokens (token_hash, created_at) VALUES (?1, ?2)")
            .bind(hash)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query(
            "DELETE FROM admin_tokens WHERE id NOT IN \
             (SELECT id FROM admin_tokens ORDER BY id DESC LIMIT ?1)",
        )
        .bind(super::secrets::ACTIVE_SECRETS)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(())
    }

    async fn revoke_admin_tokens(&self) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM admin_tokens")
            .execute(&mut *self.write_conn().await?)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn admin_token_hashes(&self) -> StoreResult<Vec<String>> {
        sqlx::query_scalar("SELECT token_hash FROM admin_tokens ORDER BY id DESC")
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)
    }
}
