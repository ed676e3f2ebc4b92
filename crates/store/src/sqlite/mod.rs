//! The SQLite backend: one file, shared by the server and the CLI (both may write at once).
//!
//! Every multi-statement write runs in a `BEGIN IMMEDIATE` transaction, so it takes SQLite's
//! write lock before reading anything. Concurrent writers then queue on the busy timeout
//! instead of failing with `SQLITE_BUSY_SNAPSHOT` when a read snapshot goes stale, and
//! check-then-write sequences (rotation, redemption) see no interleaved writes.

mod access;
mod apis;
mod audit;
mod backchannel;
mod clients;
mod codes;
mod flows;
mod keys;
mod refresh;
mod secrets;
mod sessions;
mod users;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::store::{StoreError, StoreResult};
use sqlx::error::ErrorKind;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Sqlite, Transaction};

/// The SQLite migrations, embedded at compile time.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Upper bound on pooled connections. SQLite has one writer at a time; the extra connections
/// serve concurrent readers (WAL lets them run beside the writer).
pub const MAX_CONNECTIONS: u32 = 8;

/// How long a statement waits for another connection's (or process's) write lock before it
/// fails with [`StoreError::Busy`].
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a caller waits for a free pooled connection before getting [`StoreError::Busy`].
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Retries of the first connection while another process switches a fresh file to WAL
/// (about [`BUSY_TIMEOUT`] in all).
const WAL_SWITCH_ATTEMPTS: u32 = 50;
const WAL_SWITCH_BACKOFF: Duration = Duration::from_millis(100);

/// Runs of the migrator while another process migrates the same fresh file.
const MIGRATION_ATTEMPTS: u32 = 10;

/// Storage on a SQLite database file. Cheap to clone (it is a connection pool).
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The write lane: this process's write transactions wait here, in FIFO order, instead of
    /// in SQLite's busy handler (which polls with sleeps of up to 100 ms and so turns a queue
    /// of writers into long tail latencies). Other processes (the CLI) still meet the busy
    /// timeout.
    writer: Arc<tokio::sync::Mutex<()>>,
    /// The group-commit queue of rotations (started on first use): see `refresh::Batcher`.
    rotations: Arc<std::sync::OnceLock<tokio::sync::mpsc::Sender<refresh::RotationJob>>>,
}

/// A pooled connection for one write statement, holding this process's write lane.
pub(crate) struct WriteConn {
    conn: sqlx::pool::PoolConnection<Sqlite>,
    _lane: tokio::sync::OwnedMutexGuard<()>,
}

impl std::ops::Deref for WriteConn {
    type Target = sqlx::SqliteConnection;
    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl std::ops::DerefMut for WriteConn {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

/// A write transaction holding both SQLite's write lock and this process's write lane.
/// Dereferences to the connection, like an sqlx transaction.
pub(crate) struct WriteTx {
    tx: Transaction<'static, Sqlite>,
    _lane: tokio::sync::OwnedMutexGuard<()>,
}

impl WriteTx {
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    pub(crate) async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::SqliteConnection;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

impl SqliteStore {
    /// Opens (creating it if missing) the database at `database_url`: either a `sqlite:` URL
    /// (`sqlite://portcullis.db`, `sqlite::memory:`) or a plain file path. Does not migrate.
    pub async fn connect(database_url: &str) -> StoreResult<Self> {
        Self::connect_with(database_url, Durability::default()).await
    }

    /// [`SqliteStore::connect`] with an explicit commit durability.
    pub async fn connect_with(database_url: &str, durability: Durability) -> StoreResult<Self> {
        let in_memory = database_url.contains(":memory:") || database_url.contains("mode=memory");
        let options = connect_options(database_url, durability)?;

        if !in_memory {
            // Switching a file to WAL needs an exclusive lock that the busy timeout does not
            // wait for; do it once on a lone connection so that pooled connections, opened
            // concurrently later, find the file already in WAL mode (then the pragma is a no-op).
            // Another process switching a fresh file at the same moment makes this fail with
            // SQLITE_BUSY at once, so retry for about the busy timeout.
            let mut attempts = 0;
            let conn = loop {
                match options.clone().connect().await.map_err(map_err) {
                    Err(StoreError::Busy) if attempts < WAL_SWITCH_ATTEMPTS => {
                        attempts += 1;
                        tokio::time::sleep(WAL_SWITCH_BACKOFF).await;
                    }
                    other => break other?,
                }
            };
            conn.close().await.map_err(map_err)?;
        }

        let pool_options = if in_memory {
            // An in-memory database lives as long as its connections: keep exactly one open.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(MAX_CONNECTIONS)
        };
        let pool = pool_options
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(map_err)?;
        Ok(Self::from_pool(pool))
    }

    /// Wraps an existing pool. The caller is responsible for its connection options (WAL,
    /// `foreign_keys = ON`, busy timeout); prefer [`SqliteStore::connect`].
    pub fn from_pool(pool: SqlitePool) -> Self {
        Self {
            pool,
            writer: Arc::new(tokio::sync::Mutex::new(())),
            rotations: Arc::new(std::sync::OnceLock::new()),
        }
    }

    /// The underlying pool, for maintenance tasks outside the storage traits.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Applies the embedded migrations that have not run yet. Idempotent.
    pub async fn migrate(&self) -> StoreResult<()> {
        // The server and the CLI may migrate a fresh file at the same moment; the loser fails
        // ("table already exists", "duplicate column") because it listed the applied
        // migrations before the winner committed one. Each migration is one transaction, so
        // running again sees it applied; the race can repeat once per migration, so retry a
        // few times. A genuine failure fails every time and is reported.
        let mut attempt = 0;
        loop {
            match MIGRATOR.run(&self.pool).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt < MIGRATION_ATTEMPTS => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "migration failed; retrying");
                    tokio::time::sleep(WAL_SWITCH_BACKOFF).await;
                }
                Err(e) => {
                    return Err(match e {
                        sqlx::migrate::MigrateError::Execute(inner) => map_err(inner),
                        other => StoreError::Backend(format!("migration failed: {other}")),
                    })
                }
            }
        }
    }

    /// Closes every pooled connection (and checkpoints the WAL when the last one goes).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A turn in the write lane, waiting at most [`BUSY_TIMEOUT`] (then `Busy`: the caller
    /// answers 503, as SQLite's own busy timeout would).
    async fn lane(&self) -> StoreResult<tokio::sync::OwnedMutexGuard<()>> {
        tokio::time::timeout(BUSY_TIMEOUT, self.writer.clone().lock_owned())
            .await
            .map_err(|_| StoreError::Busy)
    }

    /// Whether a row with `key_column = key` issued to `client_id` exists (a plain read,
    /// outside the write lane). `table` and `key_column` are compile-time names.
    async fn exists(
        &self,
        table: &'static str,
        key_column: &'static str,
        key: &str,
        client_id: &portcullis_core::ids::ClientId,
    ) -> StoreResult<bool> {
        let sql = format!("SELECT 1 FROM {table} WHERE {key_column} = ? AND client_id = ?");
        let found: Option<i64> = sqlx::query_scalar(&sql)
            .bind(key)
            .bind(client_id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(found.is_some())
    }

    /// A connection for a single write statement, in the write lane: single statements queue
    /// with the transactions instead of meeting them in SQLite's busy handler.
    async fn write_conn(&self) -> StoreResult<WriteConn> {
        let lane = self.lane().await?;
        let conn = self.pool.acquire().await.map_err(map_err)?;
        Ok(WriteConn { conn, _lane: lane })
    }

    /// Starts a transaction that holds SQLite's write lock from its first moment.
    async fn begin_write(&self) -> StoreResult<WriteTx> {
        let lane = self.lane().await?;
        let tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)?;
        Ok(WriteTx { tx, _lane: lane })
    }
}

/// How far a commit is on disk when it returns (SQLite's `synchronous` in WAL mode).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous = FULL` (the default): the WAL is synced at every commit, so a committed
    /// rotation, revocation or sign-out survives a power loss too. An auth server must not
    /// bring a revoked token back to life after a crash.
    #[default]
    Full,
    /// `synchronous = NORMAL`: no sync at commit. Still consistent, and a commit survives a
    /// crash of the process, but a power loss or OS crash may undo the last commits.
    Normal,
}

impl Durability {
    /// Parses `full` or `normal` (any case).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "full" => Some(Self::Full),
            "normal" => Some(Self::Normal),
            _ => None,
        }
    }
}

/// Connection options applied to every pooled connection.
fn connect_options(
    database_url: &str,
    durability: Durability,
) -> StoreResult<SqliteConnectOptions> {
    let base = if database_url.starts_with("sqlite:") {
        SqliteConnectOptions::from_str(database_url)
            .map_err(|e| StoreError::Backend(format!("invalid database URL: {e}")))?
    } else {
        SqliteConnectOptions::new().filename(database_url)
    };
    Ok(base
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(match durability {
            Durability::Full => SqliteSynchronous::Full,
            Durability::Normal => SqliteSynchronous::Normal,
        })
        // Set explicitly (it is also sqlx's default) because cascades and integrity rely on it;
        // it is sent on every new connection of the pool.
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT))
}

/// SQLite primary result codes (the low byte of an extended code) that mean "try again".
const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;

fn is_busy(db: &dyn sqlx::error::DatabaseError) -> bool {
    db.code()
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| matches!(code & 0xff, SQLITE_BUSY | SQLITE_LOCKED))
}

/// Maps an sqlx error; a unique violation becomes `Conflict(what)`, naming only the field.
fn map_err_conflict(e: sqlx::Error, what: impl FnOnce(&str) -> &'static str) -> StoreError {
    match e {
        sqlx::Error::Database(db) => {
            if is_busy(db.as_ref()) {
                StoreError::Busy
            } else if db.kind() == ErrorKind::UniqueViolation {
                StoreError::Conflict(what(db.message()).to_owned())
            } else {
                StoreError::Backend(db.to_string())
            }
        }
        sqlx::Error::PoolTimedOut => StoreError::Busy,
        e @ (sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. }) => StoreError::Corrupt(e.to_string()),
        other => StoreError::Backend(other.to_string()),
    }
}

/// Maps an sqlx error from a statement that is not expected to hit a uniqueness rule.
fn map_err(e: sqlx::Error) -> StoreError {
    map_err_conflict(e, |_| "record")
}

/// Encodes a list (or any record) as JSON text for a TEXT column.
fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(format!("JSON encoding: {e}")))
}

/// Decodes a JSON TEXT column; bad JSON means the row is corrupt.
fn from_json<T: serde::de::DeserializeOwned>(column: &str, text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}
