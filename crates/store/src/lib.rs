//! SQL storage backends for Portcullis. SQLite is the default (one file, no server); a
//! PostgreSQL backend will live beside it in `postgres/`, each with its own SQL and migrations,
//! and both pass the shared conformance suite in `tests/conformance.rs`.
//!
//! ```no_run
//! # async fn run() -> Result<(), portcullis_store::StoreError> {
//! let store = portcullis_store::connect("sqlite://portcullis.db").await?;
//! store.migrate().await?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod sqlite;

pub use portcullis_core::store::{StoreError, StoreResult};
pub use sqlite::{Durability, SqliteStore};

/// Opens the SQLite database at `database_url` (a `sqlite:` URL or a file path), creating the
/// file if it is missing. Call [`SqliteStore::migrate`] before use.
pub async fn connect(database_url: &str) -> Result<SqliteStore, StoreError> {
    SqliteStore::connect(database_url).await
}
