//! Shared set-up of the server crate's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use portcullis_core::crypto::{Encrypter, KeyBytes};
use portcullis_core::keys::{self, KeySet};
use portcullis_core::model::SigningAlg;

/// A migrated SQLite store on a new file in a temporary directory (kept alive by the guard).
pub async fn temp_store() -> (tempfile::TempDir, portcullis_store::SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = portcullis_store::connect(&format!(
        "sqlite://{}",
        dir.path().join("t.sqlite3").display()
    ))
    .await
    .unwrap();
    store.migrate().await.unwrap();
    (dir, store)
}

/// A key set with one fresh key per algorithm, created at `now`.
pub fn keyset(algs: &[SigningAlg], now: i64) -> KeySet {
    let enc = Encrypter::new(
        &KeyBytes::from_hex(&KeyBytes::generate_hex()).unwrap(),
        None,
    )
    .unwrap();
    KeySet::new(
        algs.iter()
            .map(|a| keys::load(&keys::generate(*a, &enc, now, now).unwrap(), &enc).unwrap())
            .collect(),
    )
}
