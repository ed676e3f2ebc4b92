//! Authorization codes: stored by hash, consumed exactly once. A replay revokes the refresh
//! tokens the first redemption issued, including ones attached after the replay.

use async_trait::async_trait;
use portcullis_core::ids::{ClientId, FamilyId, SessionId, UserId};
use portcullis_core::model::AuthCode;
use portcullis_core::store::{CodeCheck, CodeRedemption, CodeStore, StoreError, StoreResult};

use super::backchannel::record_session_client_in;
use super::refresh::revoke_family_in;
use super::{from_json, map_err, map_err_conflict, to_json, SqliteStore};

#[derive(sqlx::FromRow)]
struct CodeRow {
    code_hash: String,
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
    scope: String,
    audience: Option<String>,
    nonce: Option<String>,
    user_id: String,
    session_id: String,
    auth_time: i64,
    created_at: i64,
    expires_at: i64,
    consumed_at: Option<i64>,
    family_id: Option<String>,
}

impl TryFrom<CodeRow> for AuthCode {
    type Error = StoreError;

    fn try_from(row: CodeRow) -> StoreResult<Self> {
        Ok(AuthCode {
            code_hash: row.code_hash,
            client_id: ClientId::from_trusted(row.client_id),
            redirect_uri: row.redirect_uri,
            code_challenge: row.code_challenge,
            scope: from_json("scope", &row.scope)?,
            audience: row.audience,
            nonce: row.nonce,
            user_id: UserId::from_trusted(row.user_id),
            session_id: SessionId::from_trusted(row.session_id),
            auth_time: row.auth_time,
            created_at: row.created_at,
            expires_at: row.expires_at,
            consumed_at: row.consumed_at,
            family_id: row.family_id.map(FamilyId::from_trusted),
        })
    }
}

#[async_trait]
impl CodeStore for SqliteStore {
    async fn insert_code(&self, code: &AuthCode) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO auth_codes (code_hash, client_id, redirect_uri, code_challenge, scope, \
             audience, nonce, user_id, session_id, auth_time, created_at, expires_at, \
             consumed_at, family_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&code.code_hash)
        .bind(code.client_id.as_str())
        .bind(&code.redirect_uri)
        .bind(&code.code_challenge)
        .bind(to_json(&code.scope)?)
        .bind(code.audience.as_deref())
        .bind(code.nonce.as_deref())
        .bind(code.user_id.as_str())
        .bind(code.session_id.as_str())
        .bind(code.auth_time)
        .bind(code.created_at)
        .bind(code.expires_at)
        .bind(code.consumed_at)
        .bind(code.family_id.as_ref().map(FamilyId::as_str))
        .execute(&mut *self.write_conn().await?)
        .await
        .map_err(|e| map_err_conflict(e, |_| "code"))?;
        Ok(())
    }

    /// Expiry is not checked here: the caller compares `expires_at` with its clock. A replay
    /// is recorded (`replayed_at`) so that a family attached later is revoked at once.
    async fn redeem_code(
        &self,
        code_hash: &str,
        client_id: &ClientId,
        now: i64,
        check: &CodeCheck<'_>,
    ) -> StoreResult<CodeRedemption> {
        // A plain read first: a made-up code (its checksum is no secret) must not cost a turn
        // in the write lane.
        if !self
            .exists("auth_codes", "code_hash", code_hash, client_id)
            .await?
        {
            return Ok(CodeRedemption::Unknown);
        }
        let mut tx = self.begin_write().await?;
        let found: Option<CodeRow> = sqlx::query_as(
            "SELECT code_hash, client_id, redirect_uri, code_challenge, scope, audience, \
             nonce, user_id, session_id, auth_time, created_at, expires_at, consumed_at, \
             family_id FROM auth_codes WHERE code_hash = ? AND client_id = ?",
        )
        .bind(code_hash)
        .bind(client_id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some(row) = found else {
            tx.rollback().await.map_err(map_err)?;
            return Ok(CodeRedemption::Unknown);
        };
        let mut code = AuthCode::try_from(row)?;
        // The check runs on spent codes too: a replay counts (and revokes) only when it comes
        // with the right redirect URI and verifier, so a stranger holding a leaked code and a
        // public client id can revoke nothing.
        if let Err(reason) = check(&code) {
            return Ok(CodeRedemption::Refused(reason));
        }
        if code.consumed_at.is_none() {
            // The write lock is held since BEGIN IMMEDIATE: nobody consumed it meanwhile.
            sqlx::query("UPDATE auth_codes SET consumed_at = ? WHERE code_hash = ?")
                .bind(now)
                .bind(code_hash)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            // The client receives tokens in this session: it is told when the session ends.
            record_session_client_in(&mut tx, &code.session_id, &code.client_id, now).await?;
            tx.commit().await.map_err(map_err)?;
            code.consumed_at = Some(now);
            return Ok(CodeRedemption::Redeemed(Box::new(code)));
        }
        sqlx::query(
            "UPDATE auth_codes SET replayed_at = COALESCE(replayed_at, ?) WHERE code_hash = ?",
        )
        .bind(now)
        .bind(code_hash)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if let Some(family) = &code.family_id {
            revoke_family_in(&mut tx, family, now).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(CodeRedemption::Replayed)
    }

    /// If the code was replayed before this call, the family is revoked at once. Fails with
    /// `Conflict` if the code already records a different family; a code that no longer
    /// exists (its user was deleted meanwhile) is ignored.
    async fn set_code_family(&self, code_hash: &str, family_id: &FamilyId) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let updated: Vec<(Option<i64>,)> = sqlx::query_as(
            "UPDATE auth_codes SET family_id = ? \
             WHERE code_hash = ? AND (family_id IS NULL OR family_id = ?) \
             RETURNING replayed_at",
        )
        .bind(family_id.as_str())
        .bind(code_hash)
        .bind(family_id.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        match updated.into_iter().next() {
            Some((Some(replayed_at),)) => {
                revoke_family_in(&mut tx, family_id, replayed_at).await?;
            }
            Some((None,)) => {}
            None => {
                let exists: Option<i64> =
                    sqlx::query_scalar("SELECT 1 FROM auth_codes WHERE code_hash = ?")
                        .bind(code_hash)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map_err)?;
                if exists.is_some() {
                    return Err(StoreError::Conflict("code family".to_owned()));
                }
                tracing::warn!("set_code_family: the code no longer exists");
            }
        }
        tx.commit().await.map_err(map_err)?;
        Ok(())
    }
}
