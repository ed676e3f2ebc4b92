//! Revoked access tokens, the liveness check that introspection and userinfo run on every
//! verified access token, and the purge of rows that can no longer matter.

use async_trait::async_trait;
use portcullis_core::ids::ClientId;
use portcullis_core::store::{AccessTokenCheck, AccessTokenStore, StoreResult};

use super::{map_err, SqliteStore};

/// How long expired codes, sessions and refresh tokens are kept after their end (seconds):
/// long enough that a late replay is still recognised as one.
const KEEP_AFTER_END: i64 = 24 * 3600;

#[async_trait]
impl AccessTokenStore for SqliteStore {
    async fn revoke_access_token(
        &self,
        jti: &str,
        client_id: &ClientId,
        expires_at: i64,
        now: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO revoked_access_tokens (jti, client_id, revoked_at, expires_at) \
             VALUES (?, ?, ?, ?) ON CONFLICT (jti) DO NOTHING",
        )
        .bind(jti)
        .bind(client_id.as_str())
        .bind(now)
        .bind(expires_at)
        .execute(&mut *self.write_conn().await?)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn access_token_active(&self, check: &AccessTokenCheck<'_>) -> StoreResult<bool> {
        // One statement, so the answer is one consistent snapshot. A family counts as revoked
        // when any of its tokens was revoked (revocation always takes the whole family) or the
        // code that started it was replayed.
        let active: bool = sqlx::query_scalar(
            "SELECT \
               NOT EXISTS (SELECT 1 FROM revoked_access_tokens WHERE jti = ?1) \
               AND EXISTS (SELECT 1 FROM clients WHERE id = ?2 AND disabled = 0) \
               AND (?3 IS NULL OR EXISTS (SELECT 1 FROM users WHERE id = ?3 AND disabled = 0)) \
               AND (?4 IS NULL OR ( \
                 NOT EXISTS (SELECT 1 FROM refresh_tokens \
                             WHERE family_id = ?4 AND revoked_at IS NOT NULL) \
                 AND NOT EXISTS (SELECT 1 FROM auth_codes \
                                 WHERE family_id = ?4 AND replayed_at IS NOT NULL))) \
               AND (?5 IS NULL \
                 OR (?4 IS NOT NULL AND EXISTS (SELECT 1 FROM refresh_tokens \
                                                WHERE family_id = ?4 AND offline = 1)) \
                 OR EXISTS (SELECT 1 FROM sessions \
                            WHERE id = ?5 AND revoked_at IS NULL AND expires_at > ?6 \
                            AND (idle_timeout IS NULL OR last_seen_at + idle_timeout > ?6)))",
        )
        .bind(check.jti)
        .bind(check.client_id)
        .bind(check.user_id)
        .bind(check.family_id)
        .bind(check.session_id)
        .bind(check.now)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(active)
    }

    async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
        let cutoff = now.saturating_sub(KEEP_AFTER_END);
        let mut tx = self.begin_write().await?;
        let mut removed = 0;
        for (sql, at) in [
            (
                "DELETE FROM revoked_access_tokens WHERE expires_at <= ?1",
                now,
            ),
            ("DELETE FROM auth_codes WHERE expires_at <= ?1", cutoff),
            ("DELETE FROM refresh_tokens WHERE expires_at <= ?1", cutoff),
            (
                "DELETE FROM refresh_tokens WHERE revoked_at IS NOT NULL AND revoked_at <= ?1",
                cutoff,
            ),
            // A session that ended stays while an offline token it granted is alive (deleting
            // it would cascade to that token), and until its back-channel notices are queued.
            (
                "DELETE FROM sessions WHERE expires_at <= ?1 \
                 AND NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.session_id = sessions.id) \
                 AND NOT EXISTS (SELECT 1 FROM session_clients sc \
                                 WHERE sc.session_id = sessions.id AND sc.notified_at IS NULL)",
                cutoff,
            ),
            (
                "DELETE FROM sessions WHERE revoked_at IS NOT NULL AND revoked_at <= ?1 \
                 AND NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.session_id = sessions.id) \
                 AND NOT EXISTS (SELECT 1 FROM session_clients sc \
                                 WHERE sc.session_id = sessions.id AND sc.notified_at IS NULL)",
                cutoff,
            ),
        ] {
            removed += sqlx::query(sql)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?
                .rows_affected();
        }
        tx.commit().await.map_err(map_err)?;
        Ok(removed)
    }
}
