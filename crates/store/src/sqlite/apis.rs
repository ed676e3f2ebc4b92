//! APIs (resource servers), keyed by audience.

use async_trait::async_trait;
use portcullis_core::model::Api;
use portcullis_core::store::{ApiStore, StoreError, StoreResult};

use super::secrets::{self, ACTIVE_SECRETS, API_SECRETS};
use super::{from_json, map_err, map_err_conflict, to_json, SqliteStore};

#[derive(sqlx::FromRow)]
struct ApiRow {
    audience: String,
    name: String,
    scopes: String,
    created_at: i64,
}

impl TryFrom<ApiRow> for Api {
    type Error = StoreError;

    fn try_from(row: ApiRow) -> StoreResult<Self> {
        Ok(Api {
            audience: row.audience,
            name: row.name,
            scopes: from_json("scopes", &row.scopes)?,
            created_at: row.created_at,
        })
    }
}

#[async_trait]
impl ApiStore for SqliteStore {
    async fn create_api(&self, api: &Api) -> StoreResult<()> {
        sqlx::query("INSERT INTO apis (audience, name, scopes, created_at) VALUES (?, ?, ?, ?)")
            .bind(&api.audience)
            .bind(&api.name)
            .bind(to_json(&api.scopes)?)
            .bind(api.created_at)
            .execute(&mut *self.write_conn().await?)
            .await
            .map_err(|e| map_err_conflict(e, |_| "audience"))?;
        Ok(())
    }

    async fn api_by_audience(&self, audience: &str) -> StoreResult<Option<Api>> {
        let row: Option<ApiRow> = sqlx::query_as(
            "SELECT audience, name, scopes, created_at FROM apis WHERE audience = ?",
        )
        .bind(audience)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.map(Api::try_from).transpose()
    }

    async fn list_apis(&self) -> StoreResult<Vec<Api>> {
        let rows: Vec<ApiRow> = sqlx::query_as(
            "SELECT audience, name, scopes, created_at FROM apis ORDER BY created_at, audience",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.into_iter().map(Api::try_from).collect()
    }

    async fn add_api_secret(
        &self,
        audience: &str,
        secret_hash: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let found = secrets::add_in(&mut tx, &API_SECRETS, audience, secret_hash, now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(found)
    }

    async fn api_secret_hashes(&self, audience: &str) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(
            "SELECT secret_hash FROM api_secrets WHERE audience = ? ORDER BY id DESC LIMIT ?",
        )
        .bind(audience)
        .bind(ACTIVE_SECRETS)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)
    }
}
