//! Secret hashes of clients and of APIs: the same rules for both, so one implementation. Only
//! the newest [`ACTIVE_SECRETS`] of an owner stay (the rotation overlap).

use sqlx::SqliteConnection;

use super::map_err;
use portcullis_core::store::StoreResult;

/// How many secrets of one owner stay active.
pub(super) const ACTIVE_SECRETS: i64 = 2;

/// Where one kind of secret lives. The names are compile-time constants, never input.
pub(super) struct SecretTable {
    /// The secrets' table.
    pub table: &'static str,
    /// Its column naming the owner.
    pub owner_column: &'static str,
    /// The owners' table and its key column.
    pub owners: &'static str,
    pub owner_key: &'static str,
}

pub(super) const CLIENT_SECRETS: SecretTable = SecretTable {
    table: "client_secrets",
    owner_column: "client_id",
    owners: "clients",
    owner_key: "id",
};

pub(super) const API_SECRETS: SecretTable = SecretTable {
    table: "api_secrets",
    owner_column: "audience",
    owners: "apis",
    owner_key: "audience",
};

/// Adds a secret hash if the owner exists, then keeps only the newest; false when no owner.
pub(super) async fn add_in(
    conn: &mut SqliteConnection,
    t: &SecretTable,
    owner: &str,
    hash: &str,
    now: i64,
) -> StoreResult<bool> {
    let sql = format!(
        "INSERT INTO {} ({}, secret_hash, created_at) SELECT {}, ?, ? FROM {} WHERE {} = ?",
        t.table, t.owner_column, t.owner_key, t.owners, t.owner_key
    );
    let found = sqlx::query(&sql)
        .bind(hash)
        .bind(now)
        .bind(owner)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?
        .rows_affected()
        > 0;
    if found {
        prune_in(conn, t, owner).await?;
    }
    Ok(found)
}

/// Deletes all but the newest [`ACTIVE_SECRETS`] secrets of `owner`.
pub(super) async fn prune_in(
    conn: &mut SqliteConnection,
    t: &SecretTable,
    owner: &str,
) -> StoreResult<()> {
    let sql = format!(
        "DELETE FROM {0} WHERE {1} = ?1 AND id NOT IN \
         (SELECT id FROM {0} WHERE {1} = ?1 ORDER BY id DESC LIMIT ?2)",
        t.table, t.owner_column
    );
    sqlx::query(&sql)
        .bind(owner)
        .bind(ACTIVE_SECRETS)
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(())
}
