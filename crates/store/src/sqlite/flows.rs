//! Pending authorization flows, keyed by the hash of the flow cookie; single use.

use async_trait::async_trait;
use portcullis_core::model::Flow;
use portcullis_core::store::{FlowStore, StoreError, StoreResult};

use super::{from_json, map_err, map_err_conflict, to_json, SqliteStore};

#[derive(sqlx::FromRow)]
struct FlowRow {
    cookie_hash: String,
    csrf_token: String,
    request: String,
    created_at: i64,
    expires_at: i64,
}

impl TryFrom<FlowRow> for Flow {
    type Error = StoreError;

    fn try_from(row: FlowRow) -> StoreResult<Self> {
        Ok(Flow {
            cookie_hash: row.cookie_hash,
            csrf_token: row.csrf_token,
            request: from_json("request", &row.request)?,
            created_at: row.created_at,
            expires_at: row.expires_at,
        })
    }
}

#[async_trait]
impl FlowStore for SqliteStore {
    async fn insert_flow(&self, flow: &Flow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO flows (cookie_hash, csrf_token, request, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&flow.cookie_hash)
        .bind(&flow.csrf_token)
        .bind(to_json(&flow.request)?)
        .bind(flow.created_at)
        .bind(flow.expires_at)
        .execute(&mut *self.write_conn().await?)
        .await
        .map_err(|e| map_err_conflict(e, |_| "flow"))?;
        Ok(())
    }

    async fn flow_by_hash(&self, cookie_hash: &str, now: i64) -> StoreResult<Option<Flow>> {
        let row: Option<FlowRow> = sqlx::query_as(
            "SELECT cookie_hash, csrf_token, request, created_at, expires_at FROM flows \
             WHERE cookie_hash = ? AND expires_at > ?",
        )
        .bind(cookie_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.map(Flow::try_from).transpose()
    }

    async fn take_flow(&self, cookie_hash: &str, now: i64) -> StoreResult<Option<Flow>> {
        // One statement: of two concurrent takes, exactly one gets the row. `fetch_all` (not
        // `fetch_optional`) steps the statement to completion, so its autocommit transaction
        // ends here instead of lingering on the pooled connection (sqlx issue #3430).
        let rows: Vec<FlowRow> = sqlx::query_as(
            "DELETE FROM flows WHERE cookie_hash = ? AND expires_at > ? \
             RETURNING cookie_hash, csrf_token, request, created_at, expires_at",
        )
        .bind(cookie_hash)
        .bind(now)
        .fetch_all(&mut *self.write_conn().await?)
        .await
        .map_err(map_err)?;
        rows.into_iter().next().map(Flow::try_from).transpose()
    }

    async fn purge_expired_flows(&self, now: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM flows WHERE expires_at <= ?")
            .bind(now)
            .execute(&mut *self.write_conn().await?)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected())
    }
}
