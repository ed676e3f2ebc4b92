//! Signing keys, their private parts encrypted by the caller before they get here.

use async_trait::async_trait;
use portcullis_core::ids::KeyId;
use portcullis_core::keys::RotationPolicy;
use portcullis_core::model::{SigningAlg, StoredSigningKey};
use portcullis_core::store::{
    RecordedAlg, ServingKeys, SignerChange, SigningKeyStore, StoreError, StoreResult,
};

use super::{map_err, map_err_conflict, SqliteStore};

#[derive(sqlx::FromRow)]
struct KeyRow {
    kid: String,
    alg: String,
    private_key_blob: String,
    created_at: i64,
    activates_at: i64,
    retired_at: Option<i64>,
}

impl TryFrom<KeyRow> for StoredSigningKey {
    type Error = StoreError;

    fn try_from(row: KeyRow) -> StoreResult<Self> {
        let alg = SigningAlg::parse(&row.alg)
            .ok_or_else(|| StoreError::Corrupt(format!("signing key alg {:?}", row.alg)))?;
        Ok(StoredSigningKey {
            kid: KeyId::from_trusted(row.kid),
            alg,
            private_key_blob: row.private_key_blob,
            created_at: row.created_at,
            activates_at: row.activates_at,
            retired_at: row.retired_at,
        })
    }
}

/// Its row in `deployment_settings`.
fn setting_name(which: RecordedAlg) -> &'static str {
    match which {
        RecordedAlg::AccessTokenDefault => "access_token_alg",
        RecordedAlg::StandIn => "access_token_alg_in_use",
    }
}

#[async_trait]
impl SigningKeyStore for SqliteStore {
    async fn insert_signing_key(&self, key: &StoredSigningKey) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_key_blob, created_at, activates_at, \
             retired_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(key.kid.as_str())
        .bind(key.alg.as_str())
        .bind(&key.private_key_blob)
        .bind(key.created_at)
        .bind(key.activates_at)
        .bind(key.retired_at)
        .execute(&mut *self.write_conn().await?)
        .await
        .map_err(|e| map_err_conflict(e, |_| "kid"))?;
        Ok(())
    }

    async fn recorded_alg(&self, which: RecordedAlg) -> StoreResult<Option<SigningAlg>> {
        let name = setting_name(which);
        let value: Option<String> =
            sqlx::query_scalar("SELECT value FROM deployment_settings WHERE name = ?")
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        value
            .map(|v| {
                SigningAlg::parse(&v)
                    .ok_or_else(|| StoreError::Corrupt(format!("recorded {name} {v:?}")))
            })
            .transpose()
    }

    async fn record_alg(&self, which: RecordedAlg, alg: SigningAlg) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO deployment_settings (name, value) VALUES (?, ?) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(setting_name(which))
        .bind(alg.as_str())
        .execute(&mut *self.write_conn().await?)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn ensure_signing_key(
        &self,
        key: &StoredSigningKey,
        now: i64,
    ) -> StoreResult<SignerChange> {
        let mut tx = self.begin_write().await?;
        let alg = key.alg.as_str();
        let signing: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM signing_keys WHERE alg = ?1 AND revoked_at IS NULL \
             AND activates_at <= ?2 AND (retired_at IS NULL OR retired_at > ?2)",
        )
        .bind(alg)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let waiting: Option<(String, i64)> = sqlx::query_as(
            "SELECT kid, activates_at FROM signing_keys WHERE alg = ? AND revoked_at IS NULL \
             AND retired_at IS NULL AND activates_at > ? ORDER BY activates_at, rowid LIMIT 1",
        )
        .bind(alg)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let change = match (signing, waiting) {
            (Some(_), _) => SignerChange::Unchanged,
            (None, Some(_)) if key.activates_at > now => SignerChange::Unchanged,
            (None, Some((kid, was))) => {
                sqlx::query("UPDATE signing_keys SET activates_at = ? WHERE kid = ?")
                    .bind(now)
                    .bind(&kid)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                // What it was to replace (retired at its old activation) stops signing now.
                sqlx::query(
                    "UPDATE signing_keys SET retired_at = ? \
                     WHERE alg = ? AND retired_at = ? AND revoked_at IS NULL AND kid <> ?",
                )
                .bind(now)
                .bind(alg)
                .bind(was)
                .bind(&kid)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                SignerChange::Activated(KeyId::from_trusted(kid))
            }
            (None, None) => {
                sqlx::query(
                    "INSERT INTO signing_keys (kid, alg, private_key_blob, created_at, \
                     activates_at, retired_at) VALUES (?, ?, ?, ?, ?, ?)",
                )
                .bind(key.kid.as_str())
                .bind(alg)
                .bind(&key.private_key_blob)
                .bind(key.created_at)
                .bind(key.activates_at)
                .bind(key.retired_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| map_err_conflict(e, |_| "kid"))?;
                SignerChange::Inserted
            }
        };
        if change == SignerChange::Unchanged {
            tx.rollback().await.map_err(map_err)?;
        } else {
            tx.commit().await.map_err(map_err)?;
        }
        Ok(change)
    }

    async fn any_signing_key_stored(&self) -> StoreResult<bool> {
        let any: Option<i64> = sqlx::query_scalar("SELECT 1 FROM signing_keys LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(any.is_some())
    }

    async fn serving_keys(&self) -> StoreResult<Option<ServingKeys>> {
        let value: Option<String> =
            sqlx::query_scalar("SELECT value FROM deployment_settings WHERE name = 'serving_keys'")
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        value
            .map(|v| {
                // "<access-token alg> <publish lead s> <rotation period s> <encryption key id>"
                let mut parts = v.split(' ');
                let parsed = (|| {
                    let alg = SigningAlg::parse(parts.next()?)?;
                    let lead = parts.next()?.parse().ok()?;
                    let period = parts.next()?.parse().ok()?;
                    let key_id = parts.next().filter(|k| !k.is_empty())?.to_owned();
                    parts.next().is_none().then_some(ServingKeys {
                        access_token_alg: alg,
                        rotation: RotationPolicy { period, lead },
                        encryption_key_id: key_id,
                    })
                })();
                parsed.ok_or_else(|| StoreError::Corrupt(format!("recorded serving_keys {v:?}")))
            })
            .transpose()
    }

    async fn record_serving_keys(&self, serving: &ServingKeys) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO deployment_settings (name, value) VALUES ('serving_keys', ?) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(format!(
            "{} {} {} {}",
            serving.access_token_alg.as_str(),
            serving.rotation.lead,
            serving.rotation.period,
            serving.encryption_key_id
        ))
        .execute(&mut *self.write_conn().await?)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn list_signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>> {
        // The rowid breaks ties between keys created in the same second (insertion order).
        let rows: Vec<KeyRow> = sqlx::query_as(
            "SELECT kid, alg, private_key_blob, created_at, activates_at, retired_at \
             FROM signing_keys WHERE revoked_at IS NULL ORDER BY created_at, rowid",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.into_iter().map(StoredSigningKey::try_from).collect()
    }

    async fn rotate_signing_key(&self, next: &StoredSigningKey, now: i64) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let pending: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM signing_keys WHERE alg = ? AND revoked_at IS NULL \
             AND retired_at IS NULL AND activates_at > ?",
        )
        .bind(next.alg.as_str())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        if pending.is_some() {
            tx.rollback().await.map_err(map_err)?;
            return Ok(false);
        }
        sqlx::query(
            "UPDATE signing_keys SET retired_at = ? WHERE alg = ? AND revoked_at IS NULL \
             AND (retired_at IS NULL OR retired_at > ?)",
        )
        .bind(next.activates_at)
        .bind(next.alg.as_str())
        .bind(next.activates_at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_key_blob, created_at, activates_at, \
             retired_at) VALUES (?, ?, ?, ?, ?, NULL)",
        )
        .bind(next.kid.as_str())
        .bind(next.alg.as_str())
        .bind(&next.private_key_blob)
        .bind(next.created_at)
        .bind(next.activates_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| map_err_conflict(e, |_| "kid"))?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    /// Revoking a successor that was still waiting also un-retires the key it was to replace
    /// (which would otherwise stop signing at the successor's activation).
    async fn revoke_signing_key(&self, kid: &KeyId, now: i64) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let revoked: Option<(String, i64)> = sqlx::query_as(
            "UPDATE signing_keys SET revoked_at = ?, private_key_blob = '' \
             WHERE kid = ? AND revoked_at IS NULL RETURNING alg, activates_at",
        )
        .bind(now)
        .bind(kid.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some((alg, activates_at)) = revoked else {
            tx.rollback().await.map_err(map_err)?;
            return Ok(false);
        };
        if activates_at > now {
            sqlx::query(
                "UPDATE signing_keys SET retired_at = NULL \
                 WHERE alg = ? AND retired_at = ? AND revoked_at IS NULL",
            )
            .bind(&alg)
            .bind(activates_at)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn rewrap_signing_key(&self, kid: &KeyId, blob: &str) -> StoreResult<()> {
        // Never onto a revoked key: a revocation racing a re-wrap must stay erased.
        sqlx::query(
            "UPDATE signing_keys SET private_key_blob = ? WHERE kid = ? AND revoked_at IS NULL",
        )
        .bind(blob)
        .bind(kid.as_str())
        .execute(&mut *self.write_conn().await?)
        .await
        .map_err(map_err)?;
        Ok(())
    }
}
