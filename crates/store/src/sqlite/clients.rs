//! Clients and their secret hashes (at most two active: the rotation overlap).

use async_trait::async_trait;
use portcullis_core::ids::ClientId;
use portcullis_core::model::{Client, ClientKind, GrantType, SigningAlg};
use portcullis_core::store::{ClientStore, StoreError, StoreResult};

use super::secrets::{self, CLIENT_SECRETS};
use super::{from_json, map_err, map_err_conflict, to_json, SqliteStore};

#[derive(sqlx::FromRow)]
struct ClientRow {
    id: String,
    name: String,
    kind: String,
    redirect_uris: String,
    post_logout_redirect_uris: String,
    grants: String,
    apis: String,
    scopes: String,
    first_party: bool,
    id_token_alg: String,
    backchannel_logout_uri: Option<String>,
    disabled: bool,
    created_at: i64,
    /// JSON array, newest first.
    secret_hashes: String,
    access_token_ttl: Option<i64>,
    session_max_age: Option<i64>,
    session_idle: Option<i64>,
}

impl TryFrom<ClientRow> for Client {
    type Error = StoreError;

    fn try_from(row: ClientRow) -> StoreResult<Self> {
        let kind = match row.kind.as_str() {
            "confidential" => ClientKind::Confidential,
            "public" => ClientKind::Public,
            other => return Err(StoreError::Corrupt(format!("client kind {other:?}"))),
        };
        // Only an algorithm that may sign ID tokens (never EdDSA), whatever the row says.
        let id_token_alg = SigningAlg::parse(&row.id_token_alg)
            .filter(|a| a.signs_id_tokens())
            .ok_or_else(|| {
                StoreError::Corrupt(format!("client id_token_alg {:?}", row.id_token_alg))
            })?;
        Ok(Client {
            id: ClientId::from_trusted(row.id),
            name: row.name,
            kind,
            redirect_uris: from_json("redirect_uris", &row.redirect_uris)?,
            post_logout_redirect_uris: from_json(
                "post_logout_redirect_uris",
                &row.post_logout_redirect_uris,
            )?,
            grants: from_json::<Vec<GrantType>>("grants", &row.grants)?,
            apis: from_json("apis", &row.apis)?,
            scopes: from_json("scopes", &row.scopes)?,
            first_party: row.first_party,
            id_token_alg,
            backchannel_logout_uri: row.backchannel_logout_uri,
            disabled: row.disabled,
            secret_hashes: from_json("secret_hashes", &row.secret_hashes)?,
            created_at: row.created_at,
            policy: portcullis_core::model::ClientPolicy {
                access_token_ttl: row.access_token_ttl,
                session_max_age: row.session_max_age,
                session_idle: row.session_idle,
            },
        })
    }
}

fn kind_str(kind: ClientKind) -> &'static str {
    match kind {
        ClientKind::Confidential => "confidential",
        ClientKind::Public => "public",
    }
}

/// `SELECT <every client column>, <its secret hashes, newest first> FROM clients c <tail>`.
macro_rules! select_client {
    ($tail:literal) => {
        concat!(
            "SELECT c.id, c.name, c.kind, c.redirect_uris, c.post_logout_redirect_uris, \
             c.grants, c.apis, c.scopes, c.first_party, c.id_token_alg, c.backchannel_logout_uri, \
             c.disabled, c.created_at, c.access_token_ttl, c.session_max_age, c.session_idle, \
             (SELECT json_group_array(s.secret_hash ORDER BY s.id DESC) \
              FROM client_secrets s WHERE s.client_id = c.id) AS secret_hashes \
             FROM clients c ",
            $tail
        )
    };
}

#[async_trait]
impl ClientStore for SqliteStore {
    /// `client.secret_hashes` is read newest first; if it holds more than two, only the two
    /// newest are kept, as with [`ClientStore::add_client_secret`].
    async fn create_client(&self, client: &Client) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO clients (id, name, kind, redirect_uris, post_logout_redirect_uris, \
             grants, apis, scopes, first_party, id_token_alg, backchannel_logout_uri, disabled, \
             created_at, access_token_ttl, session_max_age, session_idle) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(client.id.as_str())
        .bind(&client.name)
        .bind(kind_str(client.kind))
        .bind(to_json(&client.redirect_uris)?)
        .bind(to_json(&client.post_logout_redirect_uris)?)
        .bind(to_json(&client.grants)?)
        .bind(to_json(&client.apis)?)
        .bind(to_json(&client.scopes)?)
        .bind(client.first_party)
        .bind(client.id_token_alg.as_str())
        .bind(client.backchannel_logout_uri.as_deref())
        .bind(client.disabled)
        .bind(client.created_at)
        .bind(client.policy.access_token_ttl)
        .bind(client.policy.session_max_age)
        .bind(client.policy.session_idle)
        .execute(&mut *tx)
        .await
        .map_err(|e| map_err_conflict(e, |_| "client id"))?;
        // Oldest first, so that insertion order (the `id` column) matches age.
        for hash in client.secret_hashes.iter().rev() {
            sqlx::query(
                "INSERT INTO client_secrets (client_id, secret_hash, created_at) VALUES (?, ?, ?)",
            )
            .bind(client.id.as_str())
            .bind(hash)
            .bind(client.created_at)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        secrets::prune_in(&mut tx, &CLIENT_SECRETS, client.id.as_str()).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(())
    }

    async fn client_by_id(&self, id: &ClientId) -> StoreResult<Option<Client>> {
        let row: Option<ClientRow> = sqlx::query_as(select_client!("WHERE c.id = ?"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.map(Client::try_from).transpose()
    }

    async fn list_clients(&self) -> StoreResult<Vec<Client>> {
        let rows: Vec<ClientRow> = sqlx::query_as(select_client!("ORDER BY c.created_at, c.id"))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.into_iter().map(Client::try_from).collect()
    }

    /// Disabling also revokes the client's refresh tokens and deletes its unredeemed codes.
    async fn set_client_disabled(
        &self,
        id: &ClientId,
        disabled: bool,
        now: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let found = sqlx::query("UPDATE clients SET disabled = ? WHERE id = ?")
            .bind(disabled)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected()
            > 0;
        if found && disabled {
            sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = ? \
                 WHERE client_id = ? AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            sqlx::query("DELETE FROM auth_codes WHERE client_id = ? AND consumed_at IS NULL")
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(found)
    }

    async fn add_client_secret(
        &self,
        id: &ClientId,
        secret_hash: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let found =
            secrets::add_in(&mut tx, &CLIENT_SECRETS, id.as_str(), secret_hash, now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(found)
    }
}
