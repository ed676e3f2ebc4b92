//! Storage conformance suite.
//!
//! Every check in [`checks`] is backend-agnostic: it takes `&dyn Storage` (or an
//! `Arc<dyn Storage>` when it spawns tasks) and a fresh, migrated, empty store. The
//! `conformance!` macro turns the list of checks into tests for one backend; SQLite runs them
//! always (in a temporary file), and a PostgreSQL backend adds one more invocation.
//!
//! Time is a parameter: checks pass explicit `now` values and never sleep.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// Generates one `#[tokio::test]` per check, each on a fresh store made by `$fresh`, which
/// returns `(guard, store)`: the guard (e.g. a temp dir) lives until the check ends.
macro_rules! conformance {
    (
        fresh = $fresh:path;
        by_ref = [$($check:ident),* $(,)?];
        shared = [$($shared:ident),* $(,)?];
    ) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let (_guard, store) = $fresh().await;
                crate::checks::$check(&store).await;
            }
        )*
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $shared() {
                let (_guard, store) = $fresh().await;
                let store: std::sync::Arc<dyn portcullis_core::store::Storage> =
                    std::sync::Arc::new(store);
                crate::checks::$shared(store).await;
            }
        )*
    };
}

/// The full list of checks, for each backend's `conformance!` invocation.
macro_rules! all_checks {
    ($fresh:path) => {
        conformance! {
            fresh = $fresh;
            by_ref = [
                users_round_trip,
                user_email_conflict,
                user_disable_revokes_sessions_tokens_and_codes,
                user_delete_cascades,
                revoke_devices_raises_the_epoch,
                password_change_revokes_sessions_and_refresh_tokens,
                own_password_change_keeps_this_session_and_ends_offline_access,
                audit_events_filter_page_and_purge,
                admin_tokens_keep_the_two_newest,
                offline_tokens_of_a_user_can_all_end,
                clients_round_trip,
                client_id_conflict,
                client_secrets_keep_two_newest,
                client_disable_revokes_refresh_tokens,
                apis_round_trip_and_conflict,
                signing_keys_oldest_first,
                flows_expire_and_are_single_use,
                sessions_round_trip_touch_and_revoke,
                code_redeemed_once,
                code_expiry_is_left_to_the_caller,
                code_replay_revokes_family,
                code_replay_before_family_is_recorded,
                code_family_cannot_change,
                code_of_another_client_is_untouched,
                code_refused_by_check_is_untouched,
                rotation_success_chain,
                rotation_recent_reuse_within_grace,
                rotation_reuse_after_grace_revokes_family_and_session,
                rotation_wrong_client,
                rotation_ended_session,
                rotation_disabled_user,
                rotation_disabled_client,
                rotation_invalid_tokens,
                rotation_refuses_successor_outside_family,
                offline_tokens_outlive_the_session_and_idle_out,
                live_refresh_token_applies_every_rule,
                access_token_liveness_follows_every_revocation,
                api_secrets_keep_two_newest,
                purge_removes_only_what_cannot_matter,
                sessions_list_revoke_all_and_cap,
                idle_sessions_end_and_refreshes_keep_them_alive,
                first_token_only_while_its_holders_live,
                signing_key_rotation_revocation_and_rewrap,
                a_clients_idle_timeout_stops_its_refreshes,
                revoking_a_waiting_successor_keeps_the_current_key,
                a_signer_is_ensured_once_whoever_asks,
                session_clients_are_recorded_at_redemption,
                every_session_end_queues_logout_notices,
                the_sweep_queues_each_ended_session_once,
                logout_notices_are_claimed_leased_and_retried,
            ];
            shared = [
                flow_take_is_atomic,
                concurrent_rotation_yields_one_winner,
            ];
        }
    };
}

mod sqlite {
    use portcullis_core::store::{SessionStore, UserStore};
    use portcullis_store::SqliteStore;
    use tempfile::TempDir;

    /// A migrated store on a new database file in a temporary directory.
    async fn fresh() -> (TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("portcullis.db");
        let store = portcullis_store::connect(path.to_str().expect("utf-8 path"))
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        (dir, store)
    }

    all_checks!(fresh);

    /// Two processes (two pools on one database file) that both saw no signer ask at once:
    /// the write transaction makes them agree on one key, every round.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_processes_agree_on_one_signer() {
        use portcullis_core::model::{SigningAlg, StoredSigningKey};
        use portcullis_core::store::{SignerChange, SigningKeyStore};
        let (dir, a) = fresh().await;
        let b = portcullis_store::connect(
            dir.path()
                .join("portcullis.db")
                .to_str()
                .expect("utf-8 path"),
        )
        .await
        .expect("connect");
        for round in 0..20_i64 {
            let now = 1_000 + round * 10;
            let candidate = |who: &str| StoredSigningKey {
                kid: portcullis_core::ids::KeyId::from_trusted(format!("k_{who}_{round}")),
                alg: SigningAlg::RS256,
                private_key_blob: "v1.blob".to_owned(),
                created_at: now,
                activates_at: now,
                retired_at: None,
            };
            // Nothing signs RS256 at `now` (the last round's winner is revoked).
            for k in a.list_signing_keys().await.expect("list") {
                a.revoke_signing_key(&k.kid, now).await.expect("revoke");
            }
            let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
            let (ka, kb) = (candidate("a"), candidate("b"));
            let (ba, bb) = (barrier.clone(), barrier.clone());
            let (ra, rb) = tokio::join!(
                async {
                    ba.wait().await;
                    a.ensure_signing_key(&ka, now).await.expect("a")
                },
                async {
                    bb.wait().await;
                    b.ensure_signing_key(&kb, now).await.expect("b")
                }
            );
            let mut changes = [ra, rb];
            changes.sort_by_key(|c| matches!(c, SignerChange::Unchanged));
            assert_eq!(changes[0], SignerChange::Inserted, "round {round}");
            assert_eq!(changes[1], SignerChange::Unchanged, "round {round}");
            assert_eq!(
                a.list_signing_keys().await.expect("list").len(),
                1,
                "round {round}"
            );
        }
    }

    /// A database made before Ed25519 keys (migrations up to 0014) keeps its keys, retired and
    /// revoked ones included, when 0015 rebuilds the table; EdDSA keys are accepted after.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_eddsa_migration_keeps_existing_keys() {
        use portcullis_core::store::SigningKeyStore;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("old.db");
        let store = portcullis_store::connect(path.to_str().expect("utf-8 path"))
            .await
            .expect("connect");
        let all = sqlx::migrate!("./migrations/sqlite");
        let before: Vec<_> = all
            .migrations
            .iter()
            .filter(|m| m.version < 15)
            .cloned()
            .collect();
        assert_eq!(before.len(), 14);
        let old = sqlx::migrate::Migrator {
            migrations: std::borrow::Cow::Owned(before),
            ..sqlx::migrate::Migrator::DEFAULT
        };
        old.run(store.pool()).await.expect("migrations up to 0014");
        // Rowids with gaps (rows deleted in between), which a copy without them would close.
        for (rowid, kid, alg, retired, revoked) in [
            (5i64, "k_rs", "RS256", None, None),
            (7, "k_es_old", "ES256", Some(50i64), Some(60i64)),
            (9, "k_es", "ES256", None, None),
        ] {
            sqlx::query(
                "INSERT INTO signing_keys (rowid, kid, alg, private_key_blob, created_at, activates_at, retired_at, revoked_at) \
                 VALUES (?, ?, ?, ?, 10, 20, ?, ?)",
            )
            .bind(rowid)
            .bind(kid)
            .bind(alg)
            .bind(format!("v1.blob-of-{kid}"))
            .bind(retired)
            .bind(revoked)
            .execute(store.pool())
            .await
            .expect("insert an old key");
        }
        let rowids_before: Vec<(i64, String)> =
            sqlx::query_as("SELECT rowid, kid FROM signing_keys ORDER BY rowid")
                .fetch_all(store.pool())
                .await
                .expect("rowids");
        // EdDSA is refused before the migration...
        assert!(sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_key_blob, created_at, activates_at) VALUES ('k_x', 'EdDSA', 'v1.x', 1, 1)"
        )
        .execute(store.pool())
        .await
        .is_err());
        store.migrate().await.expect("the remaining migrations");
        let rowids_after: Vec<(i64, String)> =
            sqlx::query_as("SELECT rowid, kid FROM signing_keys ORDER BY rowid")
                .fetch_all(store.pool())
                .await
                .expect("rowids");
        assert_eq!(rowids_after, rowids_before, "rowids kept");
        // A deployment that had keys keeps ES256 access tokens unless configured otherwise; a
        // fresh one has nothing recorded (EdDSA, the default).
        use portcullis_core::model::SigningAlg;
        use portcullis_core::store::RecordedAlg;
        assert_eq!(
            store
                .recorded_alg(RecordedAlg::AccessTokenDefault)
                .await
                .expect("recorded"),
            Some(SigningAlg::ES256)
        );
        let (_fresh_dir, fresh_store) = fresh().await;
        // Each recorded value: nothing at first, then the last one recorded, apart from the
        // others.
        for which in [RecordedAlg::AccessTokenDefault, RecordedAlg::StandIn] {
            assert_eq!(
                fresh_store.recorded_alg(which).await.expect("recorded"),
                None,
                "{which:?}"
            );
        }
        for alg in [SigningAlg::RS256, SigningAlg::EdDSA] {
            fresh_store
                .record_alg(RecordedAlg::StandIn, alg)
                .await
                .expect("record");
            assert_eq!(
                fresh_store
                    .recorded_alg(RecordedAlg::StandIn)
                    .await
                    .expect("recorded"),
                Some(alg)
            );
        }
        // The serving key settings: nothing before a server records them, then the last.
        assert_eq!(fresh_store.serving_keys().await.expect("serving"), None);
        for (alg, lead, key_id) in [
            (SigningAlg::EdDSA, 3600, "0a1b2c3d"),
            (SigningAlg::ES256, 20, "ffee0011"),
        ] {
            let serving = portcullis_core::store::ServingKeys {
                access_token_alg: alg,
                rotation: portcullis_core::keys::RotationPolicy {
                    period: 90 * 86_400,
                    lead,
                },
                encryption_key_id: key_id.to_owned(),
            };
            fresh_store
                .record_serving_keys(&serving)
                .await
                .expect("record");
            assert_eq!(
                fresh_store.serving_keys().await.expect("serving"),
                Some(serving)
            );
        }
        assert_eq!(
            fresh_store
                .recorded_alg(RecordedAlg::StandIn)
                .await
                .expect("recorded"),
            Some(SigningAlg::EdDSA)
        );
        assert_eq!(
            fresh_store
                .recorded_alg(RecordedAlg::AccessTokenDefault)
                .await
                .expect("recorded"),
            None,
            "a separate setting"
        );
        type Row = (String, String, String, i64, i64, Option<i64>, Option<i64>);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT kid, alg, private_key_blob, created_at, activates_at, retired_at, revoked_at FROM signing_keys ORDER BY kid",
        )
        .fetch_all(store.pool())
        .await
        .expect("read back");
        assert_eq!(
            rows,
            vec![
                (
                    "k_es".into(),
                    "ES256".into(),
                    "v1.blob-of-k_es".into(),
                    10,
                    20,
                    None,
                    None
                ),
                (
                    "k_es_old".into(),
                    "ES256".into(),
                    "v1.blob-of-k_es_old".into(),
                    10,
                    20,
                    Some(50),
                    Some(60)
                ),
                (
                    "k_rs".into(),
                    "RS256".into(),
                    "v1.blob-of-k_rs".into(),
                    10,
                    20,
                    None,
                    None
                ),
            ]
        );
        // The revoked key stays out of the listing, as before.
        let listed: Vec<String> = store
            .list_signing_keys()
            .await
            .expect("list")
            .into_iter()
            .map(|k| k.kid.to_string())
            .collect();
        // In insertion order still (the rowid breaks ties of `created_at`; kid order would be
        // k_es first).
        assert_eq!(listed, ["k_rs", "k_es"]);
        // ...and accepted after; anything else still is not.
        let ed = portcullis_core::model::StoredSigningKey {
            kid: portcullis_core::ids::KeyId::from_trusted("k_ed".into()),
            alg: portcullis_core::model::SigningAlg::EdDSA,
            private_key_blob: "v1.ed".into(),
            created_at: 30,
            activates_at: 30,
            retired_at: None,
        };
        store.insert_signing_key(&ed).await.expect("an EdDSA key");
        assert!(store
            .list_signing_keys()
            .await
            .expect("list")
            .iter()
            .any(
                |k| k.kid.as_str() == "k_ed" && k.alg == portcullis_core::model::SigningAlg::EdDSA
            ));
        assert!(sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_key_blob, created_at, activates_at) VALUES ('k_bad', 'HS256', 'v1.x', 1, 1)"
        )
        .execute(store.pool())
        .await
        .is_err());
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'signing_keys' AND name NOT LIKE 'sqlite_autoindex%'",
        )
        .fetch_all(store.pool())
        .await
        .expect("indexes");
        assert_eq!(indexes, ["signing_keys_created_at"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_pooled_connection_has_the_pragmas() {
        let (_dir, store) = fresh().await;
        // Hold all connections at once so that each one is a distinct, newly opened one.
        let mut conns = Vec::new();
        for _ in 0..portcullis_store::sqlite::MAX_CONNECTIONS {
            conns.push(store.pool().acquire().await.expect("acquire"));
        }
        for conn in &mut conns {
            let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
                .fetch_one(&mut **conn)
                .await
                .expect("foreign_keys");
            assert_eq!(fk, 1);
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&mut **conn)
                .await
                .expect("journal_mode");
            assert_eq!(mode, "wal");
            let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut **conn)
                .await
                .expect("synchronous");
            assert_eq!(sync, 2, "FULL: commits survive a power loss");
            let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
                .fetch_one(&mut **conn)
                .await
                .expect("busy_timeout");
            assert_eq!(busy, 5000);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connect_creates_the_file_and_migrate_is_idempotent() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("new.db");
        assert!(!path.exists());
        let url = format!("sqlite://{}", path.display());
        let store = portcullis_store::connect(&url).await.expect("connect");
        assert!(path.exists());
        store.migrate().await.expect("first migrate");
        store.migrate().await.expect("second migrate");
        let user = crate::fixtures::user("again");
        store.create_user(&user).await.expect("create");
        store.close().await;

        // A second process (here: a second pool) sees the same data.
        let other = portcullis_store::connect(&url).await.expect("reconnect");
        other.migrate().await.expect("migrate");
        assert!(other.user_by_id(&user.id).await.expect("read").is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_first_migrations_both_succeed() {
        // The server and the CLI starting at once on a fresh file.
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("race.db");
            let path = path.to_str().expect("utf-8");
            let (a, b) = tokio::join!(
                portcullis_store::connect(path),
                portcullis_store::connect(path)
            );
            let (a, b) = (a.expect("connect a"), b.expect("connect b"));
            let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
            ra.expect("migrate a");
            rb.expect("migrate b");
            let user = crate::fixtures::user("race");
            a.create_user(&user).await.expect("create");
            assert!(b.user_by_id(&user.id).await.expect("read").is_some());
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn in_memory_database_works() {
        let store = portcullis_store::connect("sqlite::memory:")
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        crate::checks::users_round_trip(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_pools_on_one_file_write_concurrently() {
        // The CLI and the server each hold a pool on the same file.
        let (dir, server) = fresh().await;
        let path = dir.path().join("portcullis.db");
        let cli = portcullis_store::connect(path.to_str().expect("utf-8"))
            .await
            .expect("connect");
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..20 {
            let store = if i % 2 == 0 {
                server.clone()
            } else {
                cli.clone()
            };
            tasks.spawn(async move {
                let user = crate::fixtures::user(&format!("u{i}"));
                store.create_user(&user).await.expect("create");
                let session = crate::fixtures::session(&user, &format!("c{i}"));
                store.insert_session(&session).await.expect("session");
                store
                    .set_user_disabled(&user.id, true, crate::fixtures::T0)
                    .await
                    .expect("disable");
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("task");
        }
        assert_eq!(server.list_users().await.expect("list").len(), 20);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn corrupt_rows_are_reported_as_corrupt() {
        use portcullis_core::store::{ClientStore, StoreError};
        let (_dir, store) = fresh().await;
        let fx = crate::fixtures::seed(&store).await;
        // Valid JSON (so the CHECK passes) but not a grant: as if written by a newer version.
        sqlx::query("UPDATE clients SET grants = '[\"nope\"]' WHERE id = ?")
            .bind(fx.client.id.as_str())
            .execute(store.pool())
            .await
            .expect("damage");
        let err = store
            .client_by_id(&fx.client.id)
            .await
            .expect_err("corrupt");
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    }
}

/// Records and seeds shared by the checks.
mod fixtures {
    use portcullis_core::ids::{ClientId, FamilyId, KeyId, SessionId, UserId};
    use portcullis_core::model::{
        Api, AuthCode, AuthorizationRequest, Client, ClientKind, Flow, GrantType, RefreshToken,
        Session, SigningAlg, StoredSigningKey, User,
    };
    use portcullis_core::store::Storage;

    /// An arbitrary "now".
    pub const T0: i64 = 1_700_000_000;
    pub const HOUR: i64 = 3600;
    pub const DAY: i64 = 86_400;

    pub fn user(name: &str) -> User {
        User {
            id: UserId::generate(),
            email: format!("{name}@Example.org"),
            email_key: format!("{name}@example.org"),
            email_verified: true,
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
            disabled: false,
            created_at: T0,
            device_epoch: 0,
            password_changed_at: None,
            password_version: 0,
        }
    }

    pub fn client(name: &str) -> Client {
        Client {
            id: ClientId::generate(),
            name: name.to_owned(),
            kind: ClientKind::Confidential,
            redirect_uris: vec![
                "https://app.example.org/callback".to_owned(),
                "https://app.example.org/other".to_owned(),
            ],
            post_logout_redirect_uris: vec!["https://app.example.org/".to_owned()],
            grants: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            apis: vec!["https://api.example.org".to_owned()],
            scopes: vec!["read".to_owned(), "write".to_owned()],
            first_party: true,
            id_token_alg: SigningAlg::ES256,
            disabled: false,
            backchannel_logout_uri: None,
            secret_hashes: vec![format!("secret-{name}")],
            policy: Default::default(),
            created_at: T0,
        }
    }

    pub fn session(user: &User, cookie: &str) -> Session {
        Session {
            id: SessionId::generate(),
            cookie_hash: format!("cookie-{cookie}"),
            user_id: user.id.clone(),
            auth_time: T0,
            created_at: T0,
            last_seen_at: T0,
            expires_at: T0 + DAY,
            revoked_at: None,
            user_agent: None,
            address: None,
            idle_timeout: None,
            password_version: 0,
        }
    }

    pub fn code(fx: &Fixture, hash: &str) -> AuthCode {
        AuthCode {
            code_hash: hash.to_owned(),
            client_id: fx.client.id.clone(),
            redirect_uri: "https://app.example.org/callback".to_owned(),
            code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned(),
            scope: vec!["openid".to_owned(), "read".to_owned()],
            audience: Some("https://api.example.org".to_owned()),
            nonce: Some("n-0S6_WzA2Mj".to_owned()),
            user_id: fx.user.id.clone(),
            session_id: fx.session.id.clone(),
            auth_time: T0,
            created_at: T0,
            expires_at: T0 + 60,
            consumed_at: None,
            family_id: None,
        }
    }

    pub fn refresh(fx: &Fixture, hash: &str, family: &FamilyId) -> RefreshToken {
        RefreshToken {
            token_hash: hash.to_owned(),
            family_id: family.clone(),
            client_id: fx.client.id.clone(),
            user_id: fx.user.id.clone(),
            session_id: fx.session.id.clone(),
            scope: vec!["openid".to_owned(), "offline_access".to_owned()],
            audience: None,
            auth_time: T0,
            created_at: T0,
            expires_at: T0 + 30 * DAY,
            rotated_at: None,
            revoked_at: None,
            offline: false,
        }
    }

    /// The successor `make_next` builds: same family and binding, new hash.
    pub fn next_of(old: &RefreshToken, hash: &str, now: i64) -> RefreshToken {
        RefreshToken {
            token_hash: hash.to_owned(),
            created_at: now,
            rotated_at: None,
            revoked_at: None,
            ..old.clone()
        }
    }

    pub fn api(audience: &str) -> Api {
        Api {
            audience: audience.to_owned(),
            name: format!("API {audience}"),
            scopes: vec!["read".to_owned(), "write".to_owned()],
            created_at: T0,
        }
    }

    pub fn signing_key(kid: &str, created_at: i64) -> StoredSigningKey {
        StoredSigningKey {
            kid: KeyId::from_trusted(kid.to_owned()),
            alg: SigningAlg::RS256,
            private_key_blob: format!("v1.blob-of-{kid}"),
            created_at,
            activates_at: created_at + HOUR,
            retired_at: None,
        }
    }

    pub fn flow(cookie_hash: &str, client: &ClientId, expires_at: i64) -> Flow {
        Flow {
            cookie_hash: cookie_hash.to_owned(),
            csrf_token: format!("csrf-{cookie_hash}"),
            request: AuthorizationRequest {
                client_id: client.clone(),
                redirect_uri: "https://app.example.org/callback".to_owned(),
                scope: vec!["openid".to_owned(), "email".to_owned()],
                state: Some("xyz".to_owned()),
                nonce: None,
                code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned(),
                prompt_none: false,
                prompt_login: true,
                prompt_confirm: true,
                max_age: Some(300),
                login_hint: Some("ada@example.org".to_owned()),
                audience: Some("https://api.example.org".to_owned()),
            },
            created_at: T0,
            expires_at,
        }
    }

    /// A user with a live session, and a client.
    pub struct Fixture {
        pub user: User,
        pub client: Client,
        pub session: Session,
    }

    pub async fn seed_named(s: &dyn Storage, name: &str) -> Fixture {
        let user = user(name);
        s.create_user(&user).await.expect("create user");
        let client = client(name);
        s.create_client(&client).await.expect("create client");
        let session = session(&user, name);
        s.insert_session(&session).await.expect("insert session");
        Fixture {
            user,
            client,
            session,
        }
    }

    pub async fn seed(s: &dyn Storage) -> Fixture {
        seed_named(s, "ada").await
    }
}

/// The backend-agnostic checks.
mod checks {
    use std::sync::Arc;

    use portcullis_core::ids::{ClientId, FamilyId, SessionId, UserId};
    use portcullis_core::model::RefreshToken;
    use portcullis_core::store::{
        AccessTokenCheck, CodeRedemption, RefreshRotation, RefreshRules, Storage, StoreError,
    };

    use crate::fixtures::*;

    /// Rotates `old` at `now` with a 10 s grace, storing a successor named `next`.
    async fn rotate(
        s: &dyn Storage,
        old: &str,
        client: &ClientId,
        now: i64,
        next: &str,
    ) -> RefreshRotation {
        let next = next.to_owned();
        let make_next = move |t: &RefreshToken| Some(next_of(t, &next, now));
        s.rotate_refresh_token(old, client, now, &RULES, &make_next)
            .await
            .expect("rotate")
    }

    const GRACE: i64 = 10;
    const OFFLINE_IDLE: i64 = 7 * DAY;
    const RULES: RefreshRules = RefreshRules {
        reuse_grace: GRACE,
        offline_idle: OFFLINE_IDLE,
        client_session_idle: None,
    };

    /// Redeems `hash` for `client` with a check that accepts every code.
    async fn redeem(s: &dyn Storage, hash: &str, client: &ClientId, now: i64) -> CodeRedemption {
        s.redeem_code(hash, client, now, &|_| Ok(()))
            .await
            .expect("redeem")
    }

    fn assert_conflict(err: StoreError, field: &str) {
        match err {
            StoreError::Conflict(what) => {
                assert_eq!(what, field);
                let lower = what.to_lowercase();
                assert!(
                    !lower.contains("unique") && !lower.contains("constraint"),
                    "{what}"
                );
            }
            other => panic!("expected Conflict({field}), got {other:?}"),
        }
    }

    /// Whether the token is still usable: rotation is the only read path of the contract.
    async fn usable(s: &dyn Storage, hash: &str, client: &ClientId, now: i64) -> bool {
        matches!(
            rotate(s, hash, client, now, &format!("{hash}-probe-{now}")).await,
            RefreshRotation::Rotated(_)
        )
    }

    pub async fn users_round_trip(s: &dyn Storage) {
        let mut ada = user("ada");
        ada.email_verified = false;
        let mut bob = user("bob");
        bob.created_at = T0 + 1;
        s.create_user(&bob).await.unwrap();
        s.create_user(&ada).await.unwrap();

        assert_eq!(s.user_by_id(&ada.id).await.unwrap(), Some(ada.clone()));
        assert_eq!(
            s.user_by_email_key("bob@example.org").await.unwrap(),
            Some(bob.clone())
        );
        assert_eq!(s.user_by_email_key("Bob@Example.org").await.unwrap(), None);
        assert_eq!(s.user_by_id(&UserId::generate()).await.unwrap(), None);
        assert_eq!(s.list_users().await.unwrap(), vec![ada, bob]);
    }

    pub async fn user_email_conflict(s: &dyn Storage) {
        let ada = user("ada");
        s.create_user(&ada).await.unwrap();
        let mut twin = user("ada");
        twin.email = "ADA@example.org".to_owned();
        assert_conflict(s.create_user(&twin).await.unwrap_err(), "email");
        let mut same_id = user("other");
        same_id.id = ada.id.clone();
        assert!(matches!(
            s.create_user(&same_id).await.unwrap_err(),
            StoreError::Conflict(_)
        ));
        assert_eq!(s.list_users().await.unwrap(), vec![ada]);
    }

    pub async fn user_disable_revokes_sessions_tokens_and_codes(s: &dyn Storage) {
        let fx = seed(s).await;
        let other = seed_named(s, "bob").await;
        let earlier = session(&fx.user, "earlier");
        s.insert_session(&earlier).await.unwrap();
        s.revoke_session(&earlier.id, T0 + 5).await.unwrap();
        let family = FamilyId::generate();
        s.insert_refresh_token(&refresh(&fx, "rt-a", &family), T0)
            .await
            .unwrap();
        assert!(matches!(
            rotate(s, "rt-a", &fx.client.id, T0 + 10, "rt-a2").await,
            RefreshRotation::Rotated(_)
        ));
        s.insert_refresh_token(&refresh(&other, "rt-b", &FamilyId::generate()), T0)
            .await
            .unwrap();
        s.insert_code(&code(&fx, "pending")).await.unwrap();

        assert!(s
            .set_user_disabled(&fx.user.id, true, T0 + 100)
            .await
            .unwrap());
        assert!(s.user_by_id(&fx.user.id).await.unwrap().unwrap().disabled);
        let sess = s.session_by_id(&fx.session.id).await.unwrap().unwrap();
        assert_eq!(sess.revoked_at, Some(T0 + 100));
        let sess = s.session_by_id(&earlier.id).await.unwrap().unwrap();
        assert_eq!(
            sess.revoked_at,
            Some(T0 + 5),
            "an earlier revocation is kept"
        );
        assert!(matches!(
            redeem(s, "pending", &fx.client.id, T0 + 101).await,
            CodeRedemption::Unknown
        ));

        // Re-enabling does not bring anything back.
        assert!(s
            .set_user_disabled(&fx.user.id, false, T0 + 200)
            .await
            .unwrap());
        assert!(!s.user_by_id(&fx.user.id).await.unwrap().unwrap().disabled);
        let sess = s.session_by_id(&fx.session.id).await.unwrap().unwrap();
        assert_eq!(sess.revoked_at, Some(T0 + 100));
        // The revoked session would refuse the token anyway; that the tokens themselves are
        // revoked shows when the rotated parent is replayed: Invalid, not ReuseDetected.
        assert!(matches!(
            rotate(s, "rt-a", &fx.client.id, T0 + 201, "rt-x").await,
            RefreshRotation::Invalid
        ));
        assert!(!usable(s, "rt-a2", &fx.client.id, T0 + 202).await);

        // Other users are untouched.
        assert!(s
            .session_by_id(&other.session.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none());
        assert!(usable(s, "rt-b", &other.client.id, T0 + 201).await);

        assert!(!s
            .set_user_disabled(&UserId::generate(), true, T0)
            .await
            .unwrap());
    }

    pub async fn revoke_devices_raises_the_epoch(s: &dyn Storage) {
        let fx = seed(s).await;
        assert_eq!(fx.user.device_epoch, 0);
        assert!(s.revoke_devices(&fx.user.id).await.unwrap());
        assert!(s.revoke_devices(&fx.user.id).await.unwrap());
        let got = s.user_by_id(&fx.user.id).await.unwrap().unwrap();
        assert_eq!(got.device_epoch, 2);
        // Nothing else about the user changed.
        assert_eq!(
            portcullis_core::model::User {
                device_epoch: 0,
                password_changed_at: None,
                password_version: 0,
                ..got
            },
            fx.user
        );
        assert!(!s.revoke_devices(&UserId::generate()).await.unwrap());
    }

    pub async fn user_delete_cascades(s: &dyn Storage) {
        let fx = seed(s).await;
        let other = seed_named(s, "bob").await;
        s.insert_code(&code(&fx, "c-ada")).await.unwrap();
        s.insert_code(&code(&other, "c-bob")).await.unwrap();
        s.insert_refresh_token(&refresh(&fx, "rt-ada", &FamilyId::generate()), T0)
            .await
            .unwrap();
        s.insert_refresh_token(&refresh(&other, "rt-bob", &FamilyId::generate()), T0)
            .await
            .unwrap();

        assert!(s.delete_user(&fx.user.id, T0).await.unwrap());
        assert_eq!(s.user_by_id(&fx.user.id).await.unwrap(), None);
        assert_eq!(s.session_by_id(&fx.session.id).await.unwrap(), None);
        assert_eq!(
            s.session_by_cookie_hash(&fx.session.cookie_hash)
                .await
                .unwrap(),
            None
        );
        assert!(matches!(
            redeem(s, "c-ada", &fx.client.id, T0).await,
            CodeRedemption::Unknown
        ));
        assert!(matches!(
            rotate(s, "rt-ada", &fx.client.id, T0 + 1, "x").await,
            RefreshRotation::Invalid
        ));
        assert!(!s.delete_user(&fx.user.id, T0).await.unwrap());

        // The client and the other user's records stay.
        assert!(s.client_by_id(&fx.client.id).await.unwrap().is_some());
        assert!(s.session_by_id(&other.session.id).await.unwrap().is_some());
        assert!(matches!(
            redeem(s, "c-bob", &other.client.id, T0).await,
            CodeRedemption::Redeemed(_)
        ));
        assert!(usable(s, "rt-bob", &other.client.id, T0 + 1).await);
    }

    pub async fn password_change_revokes_sessions_and_refresh_tokens(s: &dyn Storage) {
        let fx = seed(s).await;
        s.insert_refresh_token(&refresh(&fx, "rt-1", &FamilyId::generate()), T0)
            .await
            .unwrap();
        s.insert_refresh_token(&refresh(&fx, "rt-2", &FamilyId::generate()), T0)
            .await
            .unwrap();
        assert!(s
            .set_password_hash(&fx.user.id, "$argon2id$new", T0 + 10)
            .await
            .unwrap());
        assert_eq!(
            s.user_by_id(&fx.user.id)
                .await
                .unwrap()
                .unwrap()
                .password_hash,
            "$argon2id$new"
        );
        // The sessions end too: whoever held the old password's session is out.
        assert!(!s
            .session_by_id(&fx.session.id)
            .await
            .unwrap()
            .unwrap()
            .is_active(T0 + 11));
        assert!(!usable(s, "rt-1", &fx.client.id, T0 + 11).await);
        assert!(!usable(s, "rt-2", &fx.client.id, T0 + 11).await);
        assert!(!s
            .set_password_hash(&UserId::generate(), "x", T0)
            .await
            .unwrap());
    }

    pub async fn own_password_change_keeps_this_session_and_ends_offline_access(s: &dyn Storage) {
        use portcullis_core::store::OwnPasswordChange;
        let fx = seed(s).await;
        let other = session(&fx.user, "other");
        assert!(s.insert_session(&other).await.unwrap());
        let mut in_other = refresh(&fx, "rt-other", &FamilyId::generate());
        in_other.session_id = other.id.clone();
        let mut offline = refresh(&fx, "rt-off", &FamilyId::generate());
        offline.offline = true;
        for t in [
            refresh(&fx, "rt-here", &FamilyId::generate()),
            in_other.clone(),
            offline,
        ] {
            assert!(s.insert_refresh_token(&t, T0).await.unwrap());
        }
        let change = |old: &'static str, new: &'static str, cookie: &'static str, end_others| {
            (old, new, cookie, end_others)
        };
        let run = |c: (&'static str, &'static str, &'static str, bool),
                   from: SessionId,
                   user: UserId,
                   at: i64| async move {
            s.change_own_password(
                &OwnPasswordChange {
                    user_id: &user,
                    current: &from,
                    old_hash: c.0,
                    new_hash: c.1,
                    new_cookie_hash: c.2,
                    end_others: c.3,
                },
                at,
            )
            .await
            .unwrap()
        };
        let original = fx.user.password_hash.clone();
        let original: &'static str = Box::leak(original.into_boxed_str());

        // Checked against a hash that is no longer stored (a concurrent change): nothing.
        let stale = run(
            change("$argon2id$stale", "$argon2id$x", "cookie-x", true),
            fx.session.id.clone(),
            fx.user.id.clone(),
            T0 + 5,
        )
        .await;
        assert_eq!(stale, None);

        // Keeping the other sessions: only offline access ends.
        let ended = run(
            change(original, "$argon2id$one", "cookie-new", false),
            fx.session.id.clone(),
            fx.user.id.clone(),
            T0 + 10,
        )
        .await;
        assert_eq!(ended, Some(vec![]));
        let u = s.user_by_id(&fx.user.id).await.unwrap().unwrap();
        assert_eq!(u.password_hash, "$argon2id$one");
        assert_eq!(u.password_changed_at, Some(T0 + 10));
        assert_eq!(u.password_version, 1);
        let here = s.session_by_id(&fx.session.id).await.unwrap().unwrap();
        assert_eq!(
            here.auth_time,
            T0 + 10,
            "this session has just proved the password"
        );
        assert_eq!(here.password_version, 1);
        assert!(here.is_active(T0 + 11));
        assert_eq!(
            s.session_by_cookie_hash("cookie-new")
                .await
                .unwrap()
                .map(|x| x.id),
            Some(fx.session.id.clone()),
            "a new cookie for this session"
        );
        assert_eq!(
            s.session_by_cookie_hash(&fx.session.cookie_hash)
                .await
                .unwrap(),
            None,
            "the old cookie is gone"
        );
        let kept = s.session_by_id(&other.id).await.unwrap().unwrap();
        assert!(kept.is_active(T0 + 11));
        assert!(u.password_changed_since(&kept));
        assert!(!u.password_changed_since(&here));
        assert!(
            !usable(s, "rt-here", &fx.client.id, T0 + 11).await,
            "what this session held before the change ends (a copied cookie may have got it)"
        );
        assert!(usable(s, "rt-other", &fx.client.id, T0 + 11).await);
        assert!(!usable(s, "rt-off", &fx.client.id, T0 + 11).await);
        // New grants: session-bound ones from either session; offline ones only from a
        // session signed in with the current password (whatever the clock says).
        let mut bound_other = in_other.clone();
        bound_other.token_hash = "rt-other-2".into();
        bound_other.family_id = FamilyId::generate();
        assert!(s.insert_refresh_token(&bound_other, T0 + 12).await.unwrap());
        let mut offline_old = bound_other.clone();
        offline_old.token_hash = "rt-off-old".into();
        offline_old.family_id = FamilyId::generate();
        offline_old.offline = true;
        offline_old.auth_time = T0 + 99;
        assert!(!s.insert_refresh_token(&offline_old, T0 + 12).await.unwrap());
        let mut offline_here = refresh(&fx, "rt-off-here", &FamilyId::generate());
        offline_here.offline = true;
        // A grant from before the change (its code's auth_time) is refused, even from here.
        assert!(!s
            .insert_refresh_token(&offline_here, T0 + 12)
            .await
            .unwrap());
        let mut bound_here_old = refresh(&fx, "rt-here-old", &FamilyId::generate());
        bound_here_old.auth_time = T0 + 9;
        assert!(!s
            .insert_refresh_token(&bound_here_old, T0 + 12)
            .await
            .unwrap());
        offline_here.auth_time = T0 + 10;
        assert!(s
            .insert_refresh_token(&offline_here, T0 + 12)
            .await
            .unwrap());
        let mut bound_here = refresh(&fx, "rt-here-new", &FamilyId::generate());
        bound_here.auth_time = T0 + 10;
        assert!(s.insert_refresh_token(&bound_here, T0 + 12).await.unwrap());
        // A sign-in checked against the old password cannot land now.
        let late = session(&fx.user, "late");
        assert!(!s.insert_session(&late).await.unwrap());
        assert_eq!(s.session_by_id(&late.id).await.unwrap(), None);
        let mut current = session(&fx.user, "current");
        current.password_version = 1;
        assert!(s.insert_session(&current).await.unwrap());

        // Ending the others: they and their tokens end, this one carries on.
        let ended = run(
            change("$argon2id$one", "$argon2id$two", "cookie-newer", true),
            fx.session.id.clone(),
            fx.user.id.clone(),
            T0 + 20,
        )
        .await
        .unwrap();
        assert_eq!(ended.len(), 2);
        assert!(ended.contains(&other.id) && ended.contains(&current.id));
        for id in [&other.id, &current.id] {
            assert!(!s
                .session_by_id(id)
                .await
                .unwrap()
                .unwrap()
                .is_active(T0 + 21));
        }
        assert!(!usable(s, "rt-other-2", &fx.client.id, T0 + 21).await);
        assert!(!usable(s, "rt-off-here", &fx.client.id, T0 + 21).await);
        assert!(!usable(s, "rt-here-new", &fx.client.id, T0 + 21).await);
        let mut after = refresh(&fx, "rt-after", &FamilyId::generate());
        after.auth_time = T0 + 20;
        assert!(s.insert_refresh_token(&after, T0 + 21).await.unwrap());
        assert!(usable(s, "rt-after", &fx.client.id, T0 + 22).await);

        // From an ended session, another user's session, or for a disabled user: nothing
        // changes.
        let bob = seed_named(s, "bob").await;
        let bob_hash: &'static str = Box::leak(bob.user.password_hash.clone().into_boxed_str());
        for (user, from, old) in [
            (&fx.user.id, &other.id, "$argon2id$two"),
            (&fx.user.id, &bob.session.id, "$argon2id$two"),
        ] {
            let r = run(
                change(old, "$argon2id$bad", "cookie-bad", true),
                from.clone(),
                user.clone(),
                T0 + 30,
            )
            .await;
            assert_eq!(r, None);
        }
        s.set_user_disabled(&bob.user.id, true, T0 + 31)
            .await
            .unwrap();
        let r = run(
            change(bob_hash, "$argon2id$bad", "cookie-bad2", true),
            bob.session.id.clone(),
            bob.user.id.clone(),
            T0 + 33,
        )
        .await;
        assert_eq!(r, None);
        for id in [&fx.user.id, &bob.user.id] {
            let u = s.user_by_id(id).await.unwrap().unwrap();
            assert_ne!(u.password_hash, "$argon2id$bad");
        }
        assert!(s
            .session_by_id(&fx.session.id)
            .await
            .unwrap()
            .unwrap()
            .is_active(T0 + 34));
    }

    pub async fn audit_events_filter_page_and_purge(s: &dyn Storage) {
        use portcullis_core::audit::{Event, EventFilter, EventKind, Origin, Outcome};
        let at = |n: i64| T0 + n;
        let mut batch = Vec::new();
        for n in 0..10 {
            let kind = if n % 2 == 0 {
                EventKind::LoginFailed
            } else {
                EventKind::LoginSucceeded
            };
            batch.push(
                Event::new(kind, at(n * 100))
                    .user(if n < 5 { "usr_a" } else { "usr_b" })
                    .client("cl_web")
                    .from(&Origin {
                        address: Some(format!("192.0.2.{}", n % 3)),
                        user_agent: Some("ua".into()),
                        request_id: Some(format!("r{n}")),
                    }),
            );
        }
        s.append_events(&batch).await.unwrap();
        s.append_events(&[]).await.unwrap();
        let q = |f: EventFilter| async move { s.query_events(&f).await.unwrap() };
        let all = q(EventFilter {
            limit: 100,
            ..Default::default()
        })
        .await;
        assert_eq!(all.len(), 10);
        assert!(all.windows(2).all(|w| w[0].id < w[1].id), "oldest first");
        assert_eq!(all[3].event, batch[3], "stored as given");
        // The newest `limit`, oldest first; then paging on with after_id.
        let newest = q(EventFilter {
            limit: 3,
            ..Default::default()
        })
        .await;
        assert_eq!(
            newest
                .iter()
                .map(|e| e.event.request_id.clone().unwrap())
                .collect::<Vec<_>>(),
            vec!["r7", "r8", "r9"]
        );
        let page = q(EventFilter {
            after_id: Some(all[1].id),
            limit: 2,
            ..Default::default()
        })
        .await;
        assert_eq!(
            page.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![all[2].id, all[3].id]
        );
        // And back with before_id: the newest before that event, oldest first.
        let back = q(EventFilter {
            before_id: Some(all[5].id),
            limit: 2,
            ..Default::default()
        })
        .await;
        assert_eq!(
            back.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![all[3].id, all[4].id]
        );
        // Every filter narrows.
        let failed_a = q(EventFilter {
            user_id: Some("usr_a".into()),
            outcome: Some(Outcome::Failure),
            limit: 100,
            ..Default::default()
        })
        .await;
        assert_eq!(failed_a.len(), 3);
        assert!(failed_a.iter().all(|e| e.event.kind == "login.failed"));
        let from = q(EventFilter {
            address: Some("192.0.2.1".into()),
            kind: Some("login.succeeded".into()),
            since: Some(at(100)),
            until: Some(at(700)),
            limit: 100,
            ..Default::default()
        })
        .await;
        assert_eq!(
            from.iter()
                .map(|e| e.event.request_id.clone().unwrap())
                .collect::<Vec<_>>(),
            vec!["r1"]
        );
        assert!(q(EventFilter {
            client_id: Some("cl_other".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .is_empty());
        // Retention: older than the cut goes, the rest stays.
        assert_eq!(s.purge_events(at(500)).await.unwrap(), 5);
        assert_eq!(
            q(EventFilter {
                limit: 100,
                ..Default::default()
            })
            .await
            .len(),
            5
        );
    }

    pub async fn offline_tokens_of_a_user_can_all_end(s: &dyn Storage) {
        let fx = seed(s).await;
        let mut off = refresh(&fx, "rt-off", &FamilyId::generate());
        off.offline = true;
        s.insert_refresh_token(&off, T0).await.unwrap();
        s.insert_refresh_token(&refresh(&fx, "rt-bound", &FamilyId::generate()), T0)
            .await
            .unwrap();
        assert_eq!(
            s.revoke_user_offline_tokens(&fx.user.id, T0 + 1)
                .await
                .unwrap(),
            1
        );
        assert!(!usable(s, "rt-off", &fx.client.id, T0 + 2).await);
        assert!(
            usable(s, "rt-bound", &fx.client.id, T0 + 2).await,
            "session-bound stay"
        );
    }

    pub async fn admin_tokens_keep_the_two_newest(s: &dyn Storage) {
        assert!(s.admin_token_hashes().await.unwrap().is_empty());
        for (n, h) in ["h1", "h2", "h3"].iter().enumerate() {
            s.add_admin_token(h, T0 + n as i64).await.unwrap();
        }
        assert_eq!(s.admin_token_hashes().await.unwrap(), vec!["h3", "h2"]);
    }

    pub async fn clients_round_trip(s: &dyn Storage) {
        let mut web = client("web");
        web.secret_hashes = vec!["new".to_owned(), "old".to_owned()];
        let mut spa = client("spa");
        spa.kind = portcullis_core::model::ClientKind::Public;
        spa.secret_hashes = vec![];
        spa.first_party = false;
        spa.disabled = true;
        spa.id_token_alg = portcullis_core::model::SigningAlg::RS256;
        spa.grants = vec![portcullis_core::model::GrantType::ClientCredentials];
        spa.post_logout_redirect_uris = vec![];
        spa.created_at = T0 + 1;
        s.create_client(&spa).await.unwrap();
        s.create_client(&web).await.unwrap();

        assert_eq!(s.client_by_id(&web.id).await.unwrap(), Some(web.clone()));
        assert_eq!(s.client_by_id(&spa.id).await.unwrap(), Some(spa.clone()));
        assert_eq!(s.client_by_id(&ClientId::generate()).await.unwrap(), None);
        assert_eq!(s.list_clients().await.unwrap(), vec![web, spa]);
    }

    pub async fn client_id_conflict(s: &dyn Storage) {
        let web = client("web");
        s.create_client(&web).await.unwrap();
        let mut again = client("again");
        again.id = web.id.clone();
        assert_conflict(s.create_client(&again).await.unwrap_err(), "client id");
        assert_eq!(s.list_clients().await.unwrap(), vec![web]);
    }

    pub async fn client_secrets_keep_two_newest(s: &dyn Storage) {
        let mut web = client("web");
        web.secret_hashes = vec!["s1".to_owned()];
        s.create_client(&web).await.unwrap();
        assert!(s.add_client_secret(&web.id, "s2", T0 + 1).await.unwrap());
        let got = s.client_by_id(&web.id).await.unwrap().unwrap();
        assert_eq!(got.secret_hashes, vec!["s2", "s1"]);
        // Newest is by insertion, even if the clock went backwards.
        assert!(s.add_client_secret(&web.id, "s3", T0).await.unwrap());
        let got = s.client_by_id(&web.id).await.unwrap().unwrap();
        assert_eq!(got.secret_hashes, vec!["s3", "s2"]);
        assert_eq!(
            s.list_clients().await.unwrap()[0].secret_hashes,
            vec!["s3", "s2"]
        );
        assert!(!s
            .add_client_secret(&ClientId::generate(), "s4", T0)
            .await
            .unwrap());

        let mut many = client("many");
        many.secret_hashes = vec!["c".to_owned(), "b".to_owned(), "a".to_owned()];
        s.create_client(&many).await.unwrap();
        let got = s.client_by_id(&many.id).await.unwrap().unwrap();
        assert_eq!(got.secret_hashes, vec!["c", "b"]);
    }

    pub async fn client_disable_revokes_refresh_tokens(s: &dyn Storage) {
        let fx = seed(s).await;
        let other = seed_named(s, "bob").await;
        s.insert_refresh_token(&refresh(&fx, "rt-a", &FamilyId::generate()), T0)
            .await
            .unwrap();
        s.insert_refresh_token(&refresh(&other, "rt-b", &FamilyId::generate()), T0)
            .await
            .unwrap();
        s.insert_code(&code(&fx, "pending")).await.unwrap();

        assert!(s
            .set_client_disabled(&fx.client.id, true, T0 + 10)
            .await
            .unwrap());
        assert!(
            s.client_by_id(&fx.client.id)
                .await
                .unwrap()
                .unwrap()
                .disabled
        );
        assert!(matches!(
            redeem(s, "pending", &fx.client.id, T0 + 11).await,
            CodeRedemption::Unknown
        ));
        assert!(s
            .set_client_disabled(&fx.client.id, false, T0 + 20)
            .await
            .unwrap());
        assert!(
            !s.client_by_id(&fx.client.id)
                .await
                .unwrap()
                .unwrap()
                .disabled
        );
        assert!(!usable(s, "rt-a", &fx.client.id, T0 + 21).await);
        assert!(usable(s, "rt-b", &other.client.id, T0 + 21).await);
        // The session is not the client's to end.
        assert!(s
            .session_by_id(&fx.session.id)
            .await
            .unwrap()
            .unwrap()
            .is_active(T0 + 21));
        assert!(!s
            .set_client_disabled(&ClientId::generate(), true, T0)
            .await
            .unwrap());
    }

    pub async fn apis_round_trip_and_conflict(s: &dyn Storage) {
        let mut b = api("https://b.example.org");
        b.scopes = vec![];
        let mut a = api("https://a.example.org");
        a.created_at = T0 + 1;
        s.create_api(&b).await.unwrap();
        s.create_api(&a).await.unwrap();
        assert_eq!(
            s.api_by_audience("https://a.example.org").await.unwrap(),
            Some(a.clone())
        );
        assert_eq!(
            s.api_by_audience("https://c.example.org").await.unwrap(),
            None
        );
        assert_eq!(s.list_apis().await.unwrap(), vec![b.clone(), a.clone()]);

        let mut dup = api("https://a.example.org");
        dup.name = "another".to_owned();
        assert_conflict(s.create_api(&dup).await.unwrap_err(), "audience");
        assert_eq!(s.list_apis().await.unwrap(), vec![b, a]);
    }

    pub async fn signing_keys_oldest_first(s: &dyn Storage) {
        assert!(s.list_signing_keys().await.unwrap().is_empty());
        let newer = signing_key("k_newer", T0 + 100);
        let mut older = signing_key("k_older", T0);
        older.retired_at = Some(T0 + 200);
        older.alg = portcullis_core::model::SigningAlg::ES256;
        s.insert_signing_key(&newer).await.unwrap();
        s.insert_signing_key(&older).await.unwrap();
        assert_eq!(
            s.list_signing_keys().await.unwrap(),
            vec![older, newer.clone()]
        );
        assert!(matches!(
            s.insert_signing_key(&newer).await.unwrap_err(),
            StoreError::Conflict(_)
        ));
    }

    pub async fn flows_expire_and_are_single_use(s: &dyn Storage) {
        let cid = ClientId::generate();
        let live = flow("f-live", &cid, T0 + 600);
        let short = flow("f-short", &cid, T0 + 60);
        s.insert_flow(&live).await.unwrap();
        s.insert_flow(&short).await.unwrap();
        assert!(matches!(
            s.insert_flow(&live).await.unwrap_err(),
            StoreError::Conflict(_)
        ));

        assert_eq!(
            s.flow_by_hash("f-live", T0).await.unwrap(),
            Some(live.clone())
        );
        assert_eq!(
            s.flow_by_hash("f-short", T0 + 59).await.unwrap(),
            Some(short.clone())
        );
        assert_eq!(
            s.flow_by_hash("f-short", T0 + 60).await.unwrap(),
            None,
            "expired"
        );
        assert_eq!(s.flow_by_hash("f-none", T0).await.unwrap(), None);

        // Expired flows cannot be taken.
        assert_eq!(s.take_flow("f-short", T0 + 61).await.unwrap(), None);
        // A live flow is taken once.
        assert_eq!(s.take_flow("f-live", T0 + 1).await.unwrap(), Some(live));
        assert_eq!(s.take_flow("f-live", T0 + 1).await.unwrap(), None);
        assert_eq!(s.flow_by_hash("f-live", T0 + 1).await.unwrap(), None);

        let later = flow("f-later", &cid, T0 + 900);
        s.insert_flow(&later).await.unwrap();
        assert_eq!(
            s.purge_expired_flows(T0 + 60).await.unwrap(),
            1,
            "only f-short"
        );
        assert_eq!(s.purge_expired_flows(T0 + 60).await.unwrap(), 0);
        assert_eq!(
            s.flow_by_hash("f-later", T0 + 60).await.unwrap(),
            Some(later)
        );
        assert_eq!(s.purge_expired_flows(T0 + 10_000).await.unwrap(), 1);
    }

    pub async fn flow_take_is_atomic(s: Arc<dyn Storage>) {
        let cid = ClientId::generate();
        s.insert_flow(&flow("f-race", &cid, T0 + 600))
            .await
            .unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..10 {
            let s = Arc::clone(&s);
            tasks.spawn(async move { s.take_flow("f-race", T0).await });
        }
        let mut taken = 0;
        while let Some(res) = tasks.join_next().await {
            match res.unwrap() {
                Ok(Some(_)) => taken += 1,
                Ok(None) | Err(StoreError::Busy) => {}
                Err(other) => panic!("unexpected error {other:?}"),
            }
        }
        assert_eq!(taken, 1);
    }

    pub async fn sessions_round_trip_touch_and_revoke(s: &dyn Storage) {
        let fx = seed(s).await;
        assert_eq!(
            s.session_by_cookie_hash(&fx.session.cookie_hash)
                .await
                .unwrap(),
            Some(fx.session.clone())
        );
        assert_eq!(
            s.session_by_id(&fx.session.id).await.unwrap(),
            Some(fx.session.clone())
        );
        assert_eq!(s.session_by_id(&SessionId::generate()).await.unwrap(), None);
        assert_eq!(s.session_by_cookie_hash("nope").await.unwrap(), None);

        let mut dup = session(&fx.user, "ada");
        dup.id = SessionId::generate();
        assert!(matches!(
            s.insert_session(&dup).await.unwrap_err(),
            StoreError::Conflict(_)
        ));

        s.touch_session(&fx.session.id, T0 + 50).await.unwrap();
        s.touch_session(&fx.session.id, T0 + 40).await.unwrap();
        let got = s.session_by_id(&fx.session.id).await.unwrap().unwrap();
        assert_eq!(got.last_seen_at, T0 + 50, "never moves backwards");
        s.touch_session(&SessionId::generate(), T0).await.unwrap();

        // A second session of the same user, with its own token, is not affected.
        let second = session(&fx.user, "second");
        s.insert_session(&second).await.unwrap();
        let mut other_rt = refresh(&fx, "rt-second", &FamilyId::generate());
        other_rt.session_id = second.id.clone();
        s.insert_refresh_token(&other_rt, T0).await.unwrap();
        s.insert_refresh_token(&refresh(&fx, "rt-1", &FamilyId::generate()), T0)
            .await
            .unwrap();
        s.insert_refresh_token(&refresh(&fx, "rt-2", &FamilyId::generate()), T0)
            .await
            .unwrap();
        assert!(matches!(
            rotate(s, "rt-2", &fx.client.id, T0 + 30, "rt-3").await,
            RefreshRotation::Rotated(_)
        ));

        assert!(s.revoke_session(&fx.session.id, T0 + 60).await.unwrap());
        assert!(s.revoke_session(&fx.session.id, T0 + 70).await.unwrap());
        let got = s.session_by_id(&fx.session.id).await.unwrap().unwrap();
        assert_eq!(got.revoked_at, Some(T0 + 60), "first revocation time kept");
        assert!(!got.is_active(T0 + 61));
        assert!(!s.revoke_session(&SessionId::generate(), T0).await.unwrap());

        // The tokens themselves are revoked (not only refused for their session): replaying
        // the rotated "rt-2" is Invalid, not ReuseDetected.
        assert!(matches!(
            rotate(s, "rt-2", &fx.client.id, T0 + 61, "rt-x").await,
            RefreshRotation::Invalid
        ));
        assert!(!usable(s, "rt-1", &fx.client.id, T0 + 61).await);
        assert!(!usable(s, "rt-3", &fx.client.id, T0 + 61).await);
        assert!(usable(s, "rt-second", &fx.client.id, T0 + 61).await);
    }

    pub async fn code_redeemed_once(s: &dyn Storage) {
        let fx = seed(s).await;
        let c = code(&fx, "code-1");
        s.insert_code(&c).await.unwrap();
        assert!(matches!(
            s.insert_code(&c).await.unwrap_err(),
            StoreError::Conflict(_)
        ));
        match redeem(s, "code-1", &fx.client.id, T0 + 5).await {
            CodeRedemption::Redeemed(got) => {
                assert_eq!(
                    *got,
                    portcullis_core::model::AuthCode {
                        consumed_at: Some(T0 + 5),
                        ..c
                    }
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            redeem(s, "code-1", &fx.client.id, T0 + 6).await,
            CodeRedemption::Replayed
        ));
        assert!(matches!(
            redeem(s, "code-unknown", &fx.client.id, T0).await,
            CodeRedemption::Unknown
        ));
    }

    pub async fn code_of_another_client_is_untouched(s: &dyn Storage) {
        let fx = seed(s).await;
        let other = seed_named(s, "eve").await;
        s.insert_code(&code(&fx, "code-1")).await.unwrap();
        // Another client cannot consume it, nor (after the real redemption) revoke its family.
        assert!(matches!(
            redeem(s, "code-1", &other.client.id, T0 + 1).await,
            CodeRedemption::Unknown
        ));
        assert!(matches!(
            redeem(s, "code-1", &fx.client.id, T0 + 2).await,
            CodeRedemption::Redeemed(_)
        ));
        let family = FamilyId::generate();
        s.insert_refresh_token(&refresh(&fx, "rt-1", &family), T0)
            .await
            .unwrap();
        s.set_code_family("code-1", &family).await.unwrap();
        assert!(matches!(
            redeem(s, "code-1", &other.client.id, T0 + 3).await,
            CodeRedemption::Unknown
        ));
        assert!(usable(s, "rt-1", &fx.client.id, T0 + 4).await);
    }

    pub async fn code_refused_by_check_is_untouched(s: &dyn Storage) {
        let fx = seed(s).await;
        s.insert_code(&code(&fx, "code-1")).await.unwrap();
        let refuse = |_: &portcullis_core::model::AuthCode| Err("wrong verifier");
        for _ in 0..3 {
            assert!(matches!(
                s.redeem_code("code-1", &fx.client.id, T0 + 1, &refuse)
                    .await
                    .unwrap(),
                CodeRedemption::Refused("wrong verifier")
            ));
        }
        // Still live for the right presentation, and only once.
        assert!(matches!(
            redeem(s, "code-1", &fx.client.id, T0 + 2).await,
            CodeRedemption::Redeemed(_)
        ));
        let family = FamilyId::generate();
        s.insert_refresh_token(&refresh(&fx, "rt-1", &family), T0)
            .await
            .unwrap();
        s.set_code_family("code-1", &family).await.unwrap();
        // A replay the check refuses (no verifier) revokes nothing.
        assert!(matches!(
            s.redeem_code("code-1", &fx.client.id, T0 + 3, &refuse)
                .await
                .unwrap(),
            CodeRedemption::Refused(_)
        ));
        assert!(usable(s, "rt-1", &fx.client.id, T0 + 4).await);
        // A replay that passes it does.
        assert!(matches!(
            redeem(s, "code-1", &fx.client.id, T0 + 5).await,
            CodeRedemption::Replayed
        ));
        // (The probe above rotated "rt-1"; its successor is the live link, now revoked.)
        let successor = format!("rt-1-probe-{}", T0 + 4);
        assert!(!usable(s, &successor, &fx.client.id, T0 + 6).await);
    }

    pub async fn code_expiry_is_left_to_the_caller(s: &dyn Storage) {
        let fx = seed(s).await;
        let c = code(&fx, "code-late");
        s.insert_code(&c).await.unwrap();
        match redeem(s, "code-late", &fx.client.id, c.expires_at + 1000).await {
            CodeRedemption::Redeemed(got) => assert_eq!(got.expires_at, c.expires_at),
            other => panic!("{other:?}"),
        }
    }

    pub async fn code_replay_revokes_family(s: &dyn Storage) {
        let fx = seed(s).await;
        s.insert_code(&code(&fx, "code-1")).await.unwrap();
        let unrelated = FamilyId::generate();
        s.insert_refresh_token(&refresh(&fx, "rt-unrelated", &unrelated), T0)
            .await
            .unwrap();
        assert!(matches!(
            redeem(s, "code-1", &fx.client.id, T0 + 1).await,
            CodeRedemption::Redeemed(_)
        ));
        let family = FamilyId::generate();
        s.insert_refresh_token(&refresh(&fx, "rt-1", &family), T0)
            .await
            .unwrap();
        s.set_code_family("code-1", &family).await.unwrap();
        s.set_code_family("code-1", &family).await.unwrap(); // idempotent

        // The family rotated once already: the replay must revoke every link.
        assert!(matches!(
            rotate(s, "rt-1", &fx.client.id, T0 + 2, "rt-2").await,
            RefreshRotation::Rotated(_)
        ));
        assert!(matches!(
            redeem(s, "code-1", &fx.client.id, T0 + 3).await,
            CodeRedemption::Replayed
        ));
        assert!(!usable(s, "rt-2", &fx.client.id, T0 + 4).await);
        assert!(usable(s, "rt-unrelated", &fx.client.id, T0 + 4).await);
    }

    pub async fn code_replay_before_family_is_recorded(s: &dyn Storage) {
        // A replay can land between the first redemption and the issuing of its tokens; the
        // family issued afterwards must still end up revoked, whatever the order of calls.
        let fx = seed(s).await;
        for (name, family_first) in [("a", true), ("b", false)] {
            let code_hash = format!("code-{name}");
            let token_hash = format!("rt-{name}");
            s.insert_code(&code(&fx, &code_hash)).await.unwrap();
            assert!(matches!(
                redeem(s, &code_hash, &fx.client.id, T0 + 1).await,
                CodeRedemption::Redeemed(_)
            ));
            assert!(matches!(
                redeem(s, &code_hash, &fx.client.id, T0 + 2).await,
                CodeRedemption::Replayed
            ));
            let family = FamilyId::generate();
            if family_first {
                s.set_code_family(&code_hash, &family).await.unwrap();
                s.insert_refresh_token(&refresh(&fx, &token_hash, &family), T0)
                    .await
                    .unwrap();
            } else {
                s.insert_refresh_token(&refresh(&fx, &token_hash, &family), T0)
                    .await
                    .unwrap();
                s.set_code_family(&code_hash, &family).await.unwrap();
            }
            assert!(
                !usable(s, &token_hash, &fx.client.id, T0 + 3).await,
                "{name}"
            );
        }
    }

    pub async fn code_family_cannot_change(s: &dyn Storage) {
        let fx = seed(s).await;
        s.insert_code(&code(&fx, "code-1")).await.unwrap();
        redeem(s, "code-1", &fx.client.id, T0 + 1).await;
        let family = FamilyId::generate();
        s.set_code_family("code-1", &family).await.unwrap();
        assert!(matches!(
            s.set_code_family("code-1", &FamilyId::generate())
                .await
                .unwrap_err(),
            StoreError::Conflict(_)
        ));
        // A code that no longer exists is not an error.
        s.set_code_family("code-gone", &family).await.unwrap();
    }

    pub async fn rotation_success_chain(s: &dyn Storage) {
        let fx = seed(s).await;
        let family = FamilyId::generate();
        let first = refresh(&fx, "rt-1", &family);
        s.insert_refresh_token(&first, T0).await.unwrap();
        assert!(matches!(
            s.insert_refresh_token(&first, T0).await.unwrap_err(),
            StoreError::Conflict(_)
        ));

        match rotate(s, "rt-1", &fx.client.id, T0 + 100, "rt-2").await {
            RefreshRotation::Rotated(old) => {
                assert_eq!(
                    old,
                    RefreshToken {
                        rotated_at: Some(T0 + 100),
                        ..first.clone()
                    }
                );
            }
            other => panic!("{other:?}"),
        }
        match rotate(s, "rt-2", &fx.client.id, T0 + 200, "rt-3").await {
            RefreshRotation::Rotated(old) => {
                assert_eq!(old.token_hash, "rt-2");
                assert_eq!(old.family_id, family);
                assert_eq!(old.created_at, T0 + 100);
                assert_eq!(old.rotated_at, Some(T0 + 200));
                assert_eq!(old.scope, first.scope);
                assert_eq!(old.expires_at, first.expires_at);
            }
            other => panic!("{other:?}"),
        }
        assert!(usable(s, "rt-3", &fx.client.id, T0 + 300).await);

        // revoke_family ends every live link.
        s.insert_refresh_token(&refresh(&fx, "rt-x", &family), T0)
            .await
            .unwrap();
        s.revoke_family(&family, T0 + 400).await.unwrap();
        assert!(!usable(s, "rt-x", &fx.client.id, T0 + 401).await);
        s.revoke_family(&FamilyId::generate(), T0).await.unwrap();
    }

    pub async fn rotation_recent_reuse_within_grace(s: &dyn Storage) {
        let fx = seed(s).await;
        let family = FamilyId::generate();
        s.insert_refresh_token(&refresh(&fx, "rt-1", &family), T0)
            .await
            .unwrap();
        assert!(matches!(
            rotate(s, "rt-1", &fx.client.id, T0 + 100, "rt-2").await,
            RefreshRotation::Rotated(_)
        ));
        for now in [T0 + 100, T0 + 100 + GRACE] {
            assert!(matches!(
                rotate(s, "rt-1", &fx.client.id, now, "rt-dup").await,
                RefreshRotation::RecentlyRotated
            ));
        }
        // Nothing was revoked, nothing extra stored.
        assert!(s
            .session_by_id(&fx.session.id)
            .await
            .unwrap()
            .unwrap()
            .is_active(T0 + 111));
        assert!(matches!(
            rotate(s, "rt-dup", &fx.client.id, T0 + 111, "rt-x").await,
            RefreshRotation::Invalid
        ));
        assert!(usable(s, "rt-2", &fx.client.id, T0 + 111).await);
    }

    pub async fn rotation_reuse_after_grace_revokes_family_and_session(s: &dyn Storage) {
        let fx = seed(s).await;
        let family = FamilyId::generate();
        s.insert_refresh_token(&refresh(&fx, "rt-1", &family), T0)
            .await
            .unwrap();
        // Another family in the same session (e.g. a second grant) dies with the session.
        s.insert_refresh_token(&refresh(&fx, "rt-sibling", &FamilyId::generate()), T0)
            .await
            .unwrap();
        // Another session of the same user survives.
        let second = session(&fx.user, "second");
        s.insert_session(&second).await.unwrap();
        let mut other = refresh(&fx, "rt-other-session", &FamilyId::generate());
        other.session_id = second.id.clone();
        s.insert_refresh_token(&other, T0).await.unwrap();

        assert!(matches!(
            rotate(s, "rt-1", &fx.client.id, T0 + 100, "rt-2").await,
            RefreshRotation::Rotated(_)
        ));
        let now = T0 + 100 + GRACE + 1;
        match rotate(s, "rt-1", &fx.client.id, now, "rt-thief").await {
            RefreshRotation::ReuseDetected {
                family_id,
                session_id,
                user_id,
            } => {
                assert_eq!(family_id, family);
                assert_eq!(session_id, fx.session.id);
                assert_eq!(user_id, fx.user.id);
            }
            other => panic!("{other:?}"),
        }
        let sess = s.session_by_id(&fx.session.id).await.unwrap().unwrap();
        assert_eq!(sess.revoked_at, Some(now));
        // Re-presenting is now simply invalid (the family is revoked).
        assert!(matches!(
            rotate(s, "rt-1", &fx.client.id, now + 1, "rt-y").await,
            RefreshRotation::Invalid
        ));
        assert!(matches!(
            rotate(s, "rt-thief", &fx.client.id, now + 1, "rt-y").await,
            RefreshRotation::Invalid
        ));
        assert!(!usable(s, "rt-2", &fx.client.id, now + 1).await);
        assert!(!usable(s, "rt-sibling", &fx.client.id, now + 1).await);
        assert!(usable(s, "rt-other-session", &fx.client.id, now + 1).await);
    }

    pub async fn rotation_wrong_client(s: &dyn Storage) {
        let fx = seed(s).await;
        let other = seed_named(s, "bob").await;
        s.insert_refresh_token(&refresh(&fx, "rt-1", &FamilyId::generate()), T0)
            .await
            .unwrap();
        assert!(matches!(
            rotate(s, "rt-1", &other.client.id, T0 + 1, "rt-2").await,
            RefreshRotation::Invalid
        ));
        assert!(matches!(
            rotate(s, "rt-1", &ClientId::generate(), T0 + 1, "rt-2").await,
            RefreshRotation::Invalid
        ));
        // Not rotated, not revoked: its own client can still use it.
        assert!(usable(s, "rt-1", &fx.client.id, T0 + 2).await);
        // Once rotated, another client presenting it long after is still just invalid.
        assert!(matches!(
            rotate(s, "rt-1", &other.client.id, T0 + 1000, "rt-3").await,
            RefreshRotation::Invalid
        ));
    }

    pub async fn rotation_ended_session(s: &dyn Storage) {
        let fx = seed(s).await;
        let family = FamilyId::generate();
        s.insert_refresh_token(&refresh(&fx, "rt-1", &family), T0)
            .await
            .unwrap();
        // Revoking the session directly would revoke the token too; simulate a session that
        // ended by expiry instead.
        let expired_at = fx.session.expires_at;
        assert!(matches!(
            rotate(s, "rt-1", &fx.client.id, expired_at, "rt-2").await,
            RefreshRotation::Invalid
        ));
        // The failed attempt revoked the family (it did not just mark the token rotated):
        // replaying it later is Invalid, not ReuseDetected.
        assert!(matches!(
            rotate(s, "rt-1", &fx.client.id, expired_at + GRACE + 1, "rt-3").await,
            RefreshRotation::Invalid
        ));
        assert!(!usable(s, "rt-2", &fx.client.id, T0 + 1).await);

        // A token whose session was revoked (by any path) is refused.
        let second = session(&fx.user, "second");
        s.insert_session(&second).await.unwrap();
        s.revoke_session(&second.id, T0 + 5).await.unwrap();
        let mut late = refresh(&fx, "rt-late", &FamilyId::generate());
        late.session_id = second.id.clone();
        s.insert_refresh_token(&late, T0).await.unwrap();
        assert!(matches!(
            rotate(s, "rt-late", &fx.client.id, T0 + 6, "rt-late-2").await,
            RefreshRotation::Invalid
        ));
    }

    pub async fn rotation_disabled_user(s: &dyn Storage) {
        let fx = seed(s).await;
        s.set_user_disabled(&fx.user.id, true, T0 + 1)
            .await
            .unwrap();
        // A session and token stored after the disabling (so not revoked by it): the token is
        // still refused, because the user is disabled, and its family is revoked.
        let late = session(&fx.user, "late");
        s.insert_session(&late).await.unwrap();
        let mut token = refresh(&fx, "rt-1", &FamilyId::generate());
        token.session_id = late.id.clone();
        s.insert_refresh_token(&token, T0).await.unwrap();
        assert!(matches!(
            rotate(s, "rt-1", &fx.client.id, T0 + 2, "rt-2").await,
            RefreshRotation::Invalid
        ));
        s.set_user_disabled(&fx.user.id, false, T0 + 3)
            .await
            .unwrap();
        assert!(matches!(
            rotate(s, "rt-1", &fx.client.id, T0 + 100, "rt-3").await,
            RefreshRotation::Invalid
        ));
    }

    pub async fn rotation_disabled_client(s: &dyn Storage) {
        let fx = seed(s).await;
        s.set_client_disabled(&fx.client.id, true, T0 + 1)
            .await
            .unwrap();
        // A token stored after the disabling (so not revoked by it) is still refused.
        s.insert_refresh_token(&refresh(&fx, "rt-1", &FamilyId::generate()), T0)
            .await
            .unwrap();
        assert!(matches!(
            rotate(s, "rt-1", &fx.client.id, T0 + 2, "rt-2").await,
            RefreshRotation::Invalid
        ));
        s.set_client_disabled(&fx.client.id, false, T0 + 3)
            .await
            .unwrap();
        assert!(matches!(
            rotate(s, "rt-1", &fx.client.id, T0 + 100, "rt-3").await,
            RefreshRotation::Invalid
        ));
        assert!(s
            .session_by_id(&fx.session.id)
            .await
            .unwrap()
            .unwrap()
            .is_active(T0 + 100));
    }

    pub async fn rotation_invalid_tokens(s: &dyn Storage) {
        let fx = seed(s).await;
        assert!(matches!(
            rotate(s, "rt-unknown", &fx.client.id, T0, "rt-2").await,
            RefreshRotation::Invalid
        ));
        let mut short = refresh(&fx, "rt-short", &FamilyId::generate());
        short.expires_at = T0 + 100;
        s.insert_refresh_token(&short, T0).await.unwrap();
        assert!(matches!(
            rotate(s, "rt-short", &fx.client.id, T0 + 100, "rt-2").await,
            RefreshRotation::Invalid
        ));
        let family = FamilyId::generate();
        s.insert_refresh_token(&refresh(&fx, "rt-revoked", &family), T0)
            .await
            .unwrap();
        s.revoke_family(&family, T0 + 1).await.unwrap();
        assert!(matches!(
            rotate(s, "rt-revoked", &fx.client.id, T0 + 2, "rt-3").await,
            RefreshRotation::Invalid
        ));
        // Rotated then expired: invalid, not reuse.
        let mut soon = refresh(&fx, "rt-soon", &FamilyId::generate());
        soon.expires_at = T0 + 1000;
        s.insert_refresh_token(&soon, T0).await.unwrap();
        assert!(matches!(
            rotate(s, "rt-soon", &fx.client.id, T0 + 10, "rt-soon-2").await,
            RefreshRotation::Rotated(_)
        ));
        assert!(matches!(
            rotate(s, "rt-soon", &fx.client.id, T0 + 1000, "rt-z").await,
            RefreshRotation::Invalid
        ));
        assert!(s
            .session_by_id(&fx.session.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none());
    }

    pub async fn rotation_refuses_successor_outside_family(s: &dyn Storage) {
        let fx = seed(s).await;
        s.insert_refresh_token(&refresh(&fx, "rt-1", &FamilyId::generate()), T0)
            .await
            .unwrap();
        let escape = |old: &RefreshToken| {
            Some(RefreshToken {
                family_id: FamilyId::generate(),
                ..next_of(old, "rt-escape", T0 + 1)
            })
        };
        assert!(s
            .rotate_refresh_token("rt-1", &fx.client.id, T0 + 1, &RULES, &escape)
            .await
            .is_err());
        let longer = |old: &RefreshToken| {
            Some(RefreshToken {
                expires_at: old.expires_at + 1,
                ..next_of(old, "rt-longer", T0 + 1)
            })
        };
        assert!(s
            .rotate_refresh_token("rt-1", &fx.client.id, T0 + 1, &RULES, &longer)
            .await
            .is_err());
        // A caller that declines (`None`) changes nothing either.
        assert!(matches!(
            s.rotate_refresh_token(
                "rt-1",
                &fx.client.id,
                T0 + 1,
                &RULES,
                &|_: &RefreshToken| { None }
            )
            .await
            .unwrap(),
            RefreshRotation::Refused
        ));
        // Nothing happened: the token rotates normally afterwards.
        assert!(usable(s, "rt-1", &fx.client.id, T0 + 2).await);
        assert!(matches!(
            rotate(s, "rt-escape", &fx.client.id, T0 + 3, "x").await,
            RefreshRotation::Invalid
        ));
    }

    pub async fn concurrent_rotation_yields_one_winner(s: Arc<dyn Storage>) {
        let fx = seed(s.as_ref()).await;
        s.insert_refresh_token(&refresh(&fx, "rt-race", &FamilyId::generate()), T0)
            .await
            .unwrap();
        let client = fx.client.id.clone();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..10 {
            let s = Arc::clone(&s);
            let client = client.clone();
            tasks.spawn(async move {
                let next = format!("rt-next-{i}");
                let make_next = move |t: &RefreshToken| Some(next_of(t, &next, T0 + 100));
                s.rotate_refresh_token("rt-race", &client, T0 + 100, &RULES, &make_next)
                    .await
            });
        }
        let (mut rotated, mut recent, mut busy) = (Vec::new(), 0, 0);
        while let Some(res) = tasks.join_next().await {
            match res.unwrap() {
                Ok(RefreshRotation::Rotated(old)) => rotated.push(old),
                Ok(RefreshRotation::RecentlyRotated) => recent += 1,
                Err(StoreError::Busy) => busy += 1,
                other => panic!("unexpected outcome {other:?}"),
            }
        }
        assert_eq!(rotated.len(), 1, "exactly one winner");
        assert_eq!(recent + busy, 9);
        // Exactly one successor was stored, and it works.
        let mut live = 0;
        for i in 0..10 {
            if usable(s.as_ref(), &format!("rt-next-{i}"), &client, T0 + 200).await {
                live += 1;
            }
        }
        assert_eq!(live, 1);
        assert!(s
            .session_by_id(&fx.session.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none());
    }

    pub async fn offline_tokens_outlive_the_session_and_idle_out(s: &dyn Storage) {
        let fx = seed(s).await;
        let family = FamilyId::generate();
        let mut offline = refresh(&fx, "rt-off", &family);
        offline.offline = true;
        offline.expires_at = T0 + 90 * DAY;
        s.insert_refresh_token(&offline, T0).await.unwrap();
        let bound = refresh(&fx, "rt-bound", &FamilyId::generate());
        s.insert_refresh_token(&bound, T0).await.unwrap();

        // Ending the session ends the session-bound token only.
        s.revoke_session(&fx.session.id, T0 + 1).await.unwrap();
        assert!(!usable(s, "rt-bound", &fx.client.id, T0 + 2).await);
        assert!(matches!(
            rotate(s, "rt-off", &fx.client.id, T0 + 2, "rt-off-2").await,
            RefreshRotation::Rotated(_)
        ));
        // The successor keeps the kind; its idle limit counts from its own creation.
        let next = s.refresh_token_by_hash("rt-off-2").await.unwrap().unwrap();
        assert!(next.offline);
        let idle_end = T0 + 2 + OFFLINE_IDLE;
        assert!(s
            .live_refresh_token("rt-off-2", &fx.client.id, idle_end - 1, &RULES)
            .await
            .unwrap()
            .is_some());
        assert!(!usable(s, "rt-off-2", &fx.client.id, idle_end).await);

        // Disabling the user ends offline tokens too.
        let fx2 = seed_named(s, "bob").await;
        let mut off2 = refresh(&fx2, "rt-off-b", &FamilyId::generate());
        off2.offline = true;
        s.insert_refresh_token(&off2, T0).await.unwrap();
        s.set_user_disabled(&fx2.user.id, true, T0 + 3)
            .await
            .unwrap();
        s.set_user_disabled(&fx2.user.id, false, T0 + 4)
            .await
            .unwrap();
        assert!(!usable(s, "rt-off-b", &fx2.client.id, T0 + 5).await);

        // And so does a password change.
        let fx3 = seed_named(s, "cy").await;
        let mut off3 = refresh(&fx3, "rt-off-c", &FamilyId::generate());
        off3.offline = true;
        s.insert_refresh_token(&off3, T0).await.unwrap();
        s.set_password_hash(&fx3.user.id, "$argon2id$new", T0 + 3)
            .await
            .unwrap();
        assert!(!usable(s, "rt-off-c", &fx3.client.id, T0 + 5).await);
    }

    pub async fn live_refresh_token_applies_every_rule(s: &dyn Storage) {
        let fx = seed(s).await;
        s.insert_refresh_token(&refresh(&fx, "rt-1", &FamilyId::generate()), T0)
            .await
            .unwrap();
        let cid = fx.client.id.clone();
        let cid = &cid;
        let live = |now| async move {
            s.live_refresh_token("rt-1", cid, now, &RULES)
                .await
                .unwrap()
        };
        assert_eq!(live(T0 + 1).await.unwrap().token_hash, "rt-1");
        let stranger = client("stranger");
        s.create_client(&stranger).await.unwrap();
        assert!(s
            .live_refresh_token("rt-1", &stranger.id, T0 + 1, &RULES)
            .await
            .unwrap()
            .is_none());
        assert!(s
            .live_refresh_token("nope", &fx.client.id, T0 + 1, &RULES)
            .await
            .unwrap()
            .is_none());
        // Past the session's end (the session is shorter than the token here).
        assert!(live(fx.session.expires_at).await.is_none());
        // Rotated: not live, but still found by hash (revocation must find it).
        assert!(matches!(
            rotate(s, "rt-1", &fx.client.id, T0 + 2, "rt-2").await,
            RefreshRotation::Rotated(_)
        ));
        assert!(live(T0 + 3).await.is_none());
        let found = s.refresh_token_by_hash("rt-1").await.unwrap().unwrap();
        assert_eq!(found.rotated_at, Some(T0 + 2));
        assert!(s
            .live_refresh_token("rt-2", &fx.client.id, T0 + 3, &RULES)
            .await
            .unwrap()
            .is_some());
        // Disabled client: not live.
        s.set_client_disabled(&fx.client.id, true, T0 + 4)
            .await
            .unwrap();
        assert!(s
            .live_refresh_token("rt-2", &fx.client.id, T0 + 5, &RULES)
            .await
            .unwrap()
            .is_none());
    }

    pub async fn access_token_liveness_follows_every_revocation(s: &dyn Storage) {
        let fx = seed(s).await;
        let family = FamilyId::generate();
        s.insert_refresh_token(&refresh(&fx, "rt-1", &family), T0)
            .await
            .unwrap();
        let uid = fx.user.id.to_string();
        let cid = fx.client.id.to_string();
        let sid = fx.session.id.to_string();
        let fid = family.to_string();
        let user_token = AccessTokenCheck {
            jti: "jti-1",
            client_id: &cid,
            user_id: Some(&uid),
            family_id: Some(&fid),
            session_id: Some(&sid),
            now: T0 + 1,
        };
        assert!(s.access_token_active(&user_token).await.unwrap());
        // A client-credentials token: no user, family or session.
        let machine = AccessTokenCheck {
            jti: "jti-m",
            user_id: None,
            family_id: None,
            session_id: None,
            ..user_token.clone()
        };
        assert!(s.access_token_active(&machine).await.unwrap());

        // Revoking one jti ends that token only (and is idempotent).
        for _ in 0..2 {
            s.revoke_access_token("jti-m", &fx.client.id, T0 + 300, T0 + 2)
                .await
                .unwrap();
        }
        assert!(!s.access_token_active(&machine).await.unwrap());
        assert!(s.access_token_active(&user_token).await.unwrap());

        // Revoking the family ends the tokens it produced.
        s.revoke_family(&family, T0 + 3).await.unwrap();
        assert!(!s.access_token_active(&user_token).await.unwrap());

        // A token without a refresh family: the session decides.
        let no_family = AccessTokenCheck {
            jti: "jti-2",
            family_id: None,
            ..user_token.clone()
        };
        assert!(s.access_token_active(&no_family).await.unwrap());
        let past_end = AccessTokenCheck {
            now: fx.session.expires_at,
            ..no_family.clone()
        };
        assert!(!s.access_token_active(&past_end).await.unwrap());

        // A replayed code ends the tokens of its redemption even with no refresh token.
        let code_family = FamilyId::generate();
        s.insert_code(&code(&fx, "code-1")).await.unwrap();
        assert!(matches!(
            redeem(s, "code-1", &fx.client.id, T0 + 4).await,
            CodeRedemption::Redeemed(_)
        ));
        s.set_code_family("code-1", &code_family).await.unwrap();
        let cfid = code_family.to_string();
        let from_code = AccessTokenCheck {
            jti: "jti-3",
            family_id: Some(&cfid),
            ..user_token.clone()
        };
        assert!(s.access_token_active(&from_code).await.unwrap());
        assert!(matches!(
            redeem(s, "code-1", &fx.client.id, T0 + 5).await,
            CodeRedemption::Replayed
        ));
        assert!(!s.access_token_active(&from_code).await.unwrap());

        // An offline family outlives the session; a session-bound one does not.
        let off_family = FamilyId::generate();
        let mut off = refresh(&fx, "rt-off", &off_family);
        off.offline = true;
        s.insert_refresh_token(&off, T0).await.unwrap();
        let bound_family = FamilyId::generate();
        s.insert_refresh_token(&refresh(&fx, "rt-b", &bound_family), T0)
            .await
            .unwrap();
        let ofid = off_family.to_string();
        let bfid = bound_family.to_string();
        let offline_token = AccessTokenCheck {
            jti: "jti-4",
            family_id: Some(&ofid),
            ..user_token.clone()
        };
        let bound_token = AccessTokenCheck {
            jti: "jti-5",
            family_id: Some(&bfid),
            ..user_token.clone()
        };
        s.revoke_session(&fx.session.id, T0 + 6).await.unwrap();
        assert!(s.access_token_active(&offline_token).await.unwrap());
        assert!(!s.access_token_active(&bound_token).await.unwrap());

        // A disabled user or client ends everything.
        s.set_client_disabled(&fx.client.id, true, T0 + 7)
            .await
            .unwrap();
        assert!(!s.access_token_active(&offline_token).await.unwrap());
        s.set_client_disabled(&fx.client.id, false, T0 + 8)
            .await
            .unwrap();
        // (Disabling the client revoked its refresh tokens, so the offline family is over.)
        assert!(!s.access_token_active(&offline_token).await.unwrap());
        let fx2 = seed_named(s, "bob").await;
        let uid2 = fx2.user.id.to_string();
        let cid2 = fx2.client.id.to_string();
        let bob_machine = AccessTokenCheck {
            jti: "jti-6",
            client_id: &cid2,
            user_id: Some(&uid2),
            family_id: None,
            session_id: None,
            now: T0 + 9,
        };
        assert!(s.access_token_active(&bob_machine).await.unwrap());
        s.set_user_disabled(&fx2.user.id, true, T0 + 9)
            .await
            .unwrap();
        assert!(!s.access_token_active(&bob_machine).await.unwrap());
    }

    pub async fn api_secrets_keep_two_newest(s: &dyn Storage) {
        let a = api("https://api.example.org");
        s.create_api(&a).await.unwrap();
        assert!(s.api_secret_hashes(&a.audience).await.unwrap().is_empty());
        for (i, h) in ["h1", "h2", "h3"].into_iter().enumerate() {
            assert!(s
                .add_api_secret(&a.audience, h, T0 + i as i64)
                .await
                .unwrap());
        }
        assert_eq!(
            s.api_secret_hashes(&a.audience).await.unwrap(),
            ["h3", "h2"]
        );
        assert!(!s
            .add_api_secret("https://absent.example", "h", T0)
            .await
            .unwrap());
        assert!(s
            .api_secret_hashes("https://absent.example")
            .await
            .unwrap()
            .is_empty());
    }

    pub async fn purge_removes_only_what_cannot_matter(s: &dyn Storage) {
        let fx = seed(s).await;
        let family = FamilyId::generate();
        let mut bound = refresh(&fx, "rt-live", &family);
        bound.expires_at = fx.session.expires_at;
        s.insert_refresh_token(&bound, T0).await.unwrap();
        let mut off = refresh(&fx, "rt-off", &FamilyId::generate());
        off.offline = true;
        off.expires_at = T0 + 90 * DAY;
        s.insert_refresh_token(&off, T0).await.unwrap();
        s.revoke_access_token("jti-old", &fx.client.id, T0 + 300, T0)
            .await
            .unwrap();
        s.revoke_access_token("jti-new", &fx.client.id, T0 + 900, T0)
            .await
            .unwrap();
        s.insert_code(&code(&fx, "code-old")).await.unwrap();

        // Nothing is gone while it can still matter.
        assert_eq!(s.purge_expired(T0 + 30).await.unwrap(), 0);

        // A second after the first revocation record's token expired, it goes; the other stays.
        s.purge_expired(T0 + 301).await.unwrap();
        let revoked_new = AccessTokenCheck {
            jti: "jti-new",
            client_id: fx.client.id.as_str(),
            user_id: None,
            family_id: None,
            session_id: None,
            now: T0 + 301,
        };
        assert!(!s.access_token_active(&revoked_new).await.unwrap());

        // Long after the session ended, its session-bound token goes, but the session stays
        // while the offline token it granted lives.
        let late = fx.session.expires_at + 2 * DAY;
        assert!(s.purge_expired(late).await.unwrap() >= 2);
        assert!(s.refresh_token_by_hash("rt-live").await.unwrap().is_none());
        assert!(s.refresh_token_by_hash("rt-off").await.unwrap().is_some());
        assert!(s.session_by_id(&fx.session.id).await.unwrap().is_some());
        assert!(s
            .live_refresh_token("rt-off", &fx.client.id, late, &RULES)
            .await
            .unwrap()
            .is_some());
        assert!(
            s.live_refresh_token("rt-off", &fx.client.id, T0 + OFFLINE_IDLE, &RULES)
                .await
                .unwrap()
                .is_none(),
            "idle for the offline idle limit"
        );
        // Once the offline token is past its end too, everything goes.
        s.purge_expired(T0 + 92 * DAY).await.unwrap();
        assert!(s.refresh_token_by_hash("rt-off").await.unwrap().is_none());
        assert!(s.session_by_id(&fx.session.id).await.unwrap().is_none());
    }

    pub async fn sessions_list_revoke_all_and_cap(s: &dyn Storage) {
        let fx = seed(s).await;
        let mut ids = vec![fx.session.id.clone()];
        for (i, name) in ["b", "c", "d"].into_iter().enumerate() {
            let mut next = session(&fx.user, name);
            next.created_at = T0 + 1 + i as i64;
            next.user_agent = Some(format!("agent {name}"));
            next.address = Some("192.0.2.1".to_owned());
            s.insert_session(&next).await.unwrap();
            ids.push(next.id.clone());
        }
        let bob = seed_named(s, "bob").await;
        let listed = s.list_sessions(&fx.user.id, T0 + 10).await.unwrap();
        let listed_ids: Vec<_> = listed.iter().map(|x| x.id.clone()).collect();
        assert_eq!(
            listed_ids,
            ids.iter().rev().cloned().collect::<Vec<_>>(),
            "newest first"
        );
        assert_eq!(listed[0].user_agent.as_deref(), Some("agent d"));
        assert_eq!(listed[0].address.as_deref(), Some("192.0.2.1"));

        // The cap keeps the newest two; the ended ones take their refresh tokens along.
        s.insert_refresh_token(&refresh(&fx, "rt-oldest", &FamilyId::generate()), T0)
            .await
            .unwrap();
        let ended = s.cap_sessions(&fx.user.id, 2, T0 + 10).await.unwrap();
        assert_eq!(ended.len(), 2);
        assert!(ended.contains(&ids[0]) && ended.contains(&ids[1]));
        assert!(!usable(s, "rt-oldest", &fx.client.id, T0 + 11).await);
        assert_eq!(
            s.list_sessions(&fx.user.id, T0 + 11).await.unwrap().len(),
            2
        );
        assert!(s
            .cap_sessions(&fx.user.id, 2, T0 + 11)
            .await
            .unwrap()
            .is_empty());

        // All but one, then all; another user's sessions are untouched.
        let ended = s
            .revoke_user_sessions(&fx.user.id, Some(&ids[3]), T0 + 12)
            .await
            .unwrap();
        assert_eq!(ended, vec![ids[2].clone()]);
        let ended = s
            .revoke_user_sessions(&fx.user.id, None, T0 + 13)
            .await
            .unwrap();
        assert_eq!(ended, vec![ids[3].clone()]);
        assert!(s
            .list_sessions(&fx.user.id, T0 + 14)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            s.list_sessions(&bob.user.id, T0 + 14).await.unwrap().len(),
            1
        );
    }

    pub async fn idle_sessions_end_and_refreshes_keep_them_alive(s: &dyn Storage) {
        let user = user("ida");
        s.create_user(&user).await.unwrap();
        let client = client("ida");
        s.create_client(&client).await.unwrap();
        let mut idle = session(&user, "idle");
        idle.idle_timeout = Some(300);
        s.insert_session(&idle).await.unwrap();
        let fx = Fixture {
            user,
            client,
            session: idle.clone(),
        };
        s.insert_refresh_token(&refresh(&fx, "rt-1", &FamilyId::generate()), T0)
            .await
            .unwrap();
        let got = s.session_by_id(&idle.id).await.unwrap().unwrap();
        assert_eq!(got.idle_timeout, Some(300));
        assert!(got.is_active(T0 + 299) && !got.is_active(T0 + 300));
        // A refresh at T0 + 200 is activity: the session now idles out at T0 + 500.
        assert!(matches!(
            rotate(s, "rt-1", &fx.client.id, T0 + 200, "rt-2").await,
            RefreshRotation::Rotated(_)
        ));
        let got = s.session_by_id(&idle.id).await.unwrap().unwrap();
        assert_eq!(got.last_seen_at, T0 + 200);
        assert!(got.is_active(T0 + 499) && !got.is_active(T0 + 500));
        assert_eq!(
            s.list_sessions(&fx.user.id, T0 + 499).await.unwrap().len(),
            1
        );
        assert!(s
            .list_sessions(&fx.user.id, T0 + 500)
            .await
            .unwrap()
            .is_empty());
        // Past the idle end the session's tokens are dead everywhere.
        assert!(s
            .live_refresh_token("rt-2", &fx.client.id, T0 + 500, &RULES)
            .await
            .unwrap()
            .is_none());
        let uid = fx.user.id.to_string();
        let cid = fx.client.id.to_string();
        let sid = idle.id.to_string();
        let at = AccessTokenCheck {
            jti: "j",
            client_id: &cid,
            user_id: Some(&uid),
            family_id: None,
            session_id: Some(&sid),
            now: T0 + 499,
        };
        assert!(s.access_token_active(&at).await.unwrap());
        let late = AccessTokenCheck {
            now: T0 + 500,
            ..at
        };
        assert!(!s.access_token_active(&late).await.unwrap());
        assert!(!usable(s, "rt-2", &fx.client.id, T0 + 500).await);
    }

    pub async fn first_token_only_while_its_holders_live(s: &dyn Storage) {
        let fx = seed(s).await;
        // A password change after the grant's sign-in: refused (the race where the change's
        // sweep ran before this insert). Offline by the session's password version;
        // session-bound because the change ended the session.
        s.set_password_hash(&fx.user.id, "$argon2id$new", T0 + 5)
            .await
            .unwrap();
        let mut off = refresh(&fx, "rt-off", &FamilyId::generate());
        off.offline = true;
        assert!(!s.insert_refresh_token(&off, T0 + 6).await.unwrap());
        // A session signed in with the old password cannot even be stored now; one signed in
        // with the new password is fine, and so are its grants.
        let mut stale_session = session(&fx.user, "stale");
        stale_session.auth_time = T0 + 7;
        assert!(!s.insert_session(&stale_session).await.unwrap());
        let mut fresh_session = session(&fx.user, "after");
        fresh_session.auth_time = T0 + 7;
        fresh_session.password_version = 1;
        assert!(s.insert_session(&fresh_session).await.unwrap());
        let mut ok = refresh(&fx, "rt-ok", &FamilyId::generate());
        ok.session_id = fresh_session.id.clone();
        ok.auth_time = T0 + 7;
        assert!(s.insert_refresh_token(&ok, T0 + 8).await.unwrap());
        // An offline grant may start only in a live session (it then outlives it): one started
        // just before its session is ended (by a detection's response, say) and stored just
        // after must not survive.
        let mut early = ok.clone();
        early.token_hash = "rt-early".into();
        early.family_id = FamilyId::generate();
        early.offline = true;
        assert!(s.insert_refresh_token(&early, T0 + 8).await.unwrap());
        // An ended session refuses a first token, session-bound or offline.
        s.revoke_session(&fresh_session.id, T0 + 9).await.unwrap();
        let mut bound = ok.clone();
        bound.token_hash = "rt-bound".into();
        bound.family_id = FamilyId::generate();
        assert!(!s.insert_refresh_token(&bound, T0 + 10).await.unwrap());
        let mut offline = bound.clone();
        offline.token_hash = "rt-offline".into();
        offline.offline = true;
        assert!(!s.insert_refresh_token(&offline, T0 + 10).await.unwrap());
        // The offline grant started before lives on.
        assert!(usable(s, "rt-early", &fx.client.id, T0 + 10).await);
        let offline = early.clone();
        // A disabled user refuses everything.
        s.set_user_disabled(&fx.user.id, true, T0 + 11)
            .await
            .unwrap();
        let mut late = offline.clone();
        late.token_hash = "rt-late".into();
        late.family_id = FamilyId::generate();
        assert!(!s.insert_refresh_token(&late, T0 + 12).await.unwrap());
    }

    pub async fn signing_key_rotation_revocation_and_rewrap(s: &dyn Storage) {
        use portcullis_core::ids::KeyId;
        use portcullis_core::model::SigningAlg;
        let mut current = signing_key("k_current", T0);
        current.activates_at = T0;
        s.insert_signing_key(&current).await.unwrap();
        let mut es = signing_key("k_es", T0);
        es.alg = SigningAlg::ES256;
        es.activates_at = T0;
        s.insert_signing_key(&es).await.unwrap();
        // The successor is stored and the current key retires when it activates.
        let next = signing_key("k_next", T0 + 10);
        assert!(s.rotate_signing_key(&next, T0 + 10).await.unwrap());
        let keys = s.list_signing_keys().await.unwrap();
        let by = |kid: &str| keys.iter().find(|k| k.kid.as_str() == kid).unwrap().clone();
        assert_eq!(by("k_current").retired_at, Some(next.activates_at));
        assert_eq!(by("k_next").retired_at, None);
        assert_eq!(by("k_es").retired_at, None, "other algorithms untouched");
        // While it waits, another rotation does nothing.
        let again = signing_key("k_again", T0 + 20);
        assert!(!s.rotate_signing_key(&again, T0 + 20).await.unwrap());
        assert_eq!(s.list_signing_keys().await.unwrap().len(), 3);
        // Re-wrapping replaces the sealed part only.
        s.rewrap_signing_key(&KeyId::from_trusted("k_es".into()), "v1.new-blob")
            .await
            .unwrap();
        let keys = s.list_signing_keys().await.unwrap();
        let es_now = keys.iter().find(|k| k.kid.as_str() == "k_es").unwrap();
        assert_eq!(es_now.private_key_blob, "v1.new-blob");
        assert_eq!(es_now.activates_at, T0);
        // Revocation removes the key from the list at once, once.
        let kid = KeyId::from_trusted("k_current".into());
        assert!(s.revoke_signing_key(&kid, T0 + 30).await.unwrap());
        assert!(!s.revoke_signing_key(&kid, T0 + 31).await.unwrap());
        assert!(!s
            .revoke_signing_key(&KeyId::from_trusted("k_absent".into()), T0)
            .await
            .unwrap());
        let kids: Vec<String> = s
            .list_signing_keys()
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.kid.to_string())
            .collect();
        assert_eq!(kids, ["k_es", "k_next"]);
    }

    /// A client with a back-channel logout URI.
    async fn bc_client(s: &dyn Storage, name: &str) -> portcullis_core::model::Client {
        let mut c = client(name);
        c.backchannel_logout_uri = Some(format!("https://{name}.example.org/backchannel"));
        s.create_client(&c).await.unwrap();
        c
    }

    /// Redeems a fresh code of `session` for `client_id` (the client receives tokens there).
    async fn tokens_in(
        s: &dyn Storage,
        fx: &Fixture,
        session: &SessionId,
        client_id: &ClientId,
        hash: &str,
    ) {
        let mut c = code(fx, hash);
        c.client_id = client_id.clone();
        c.session_id = session.clone();
        s.insert_code(&c).await.unwrap();
        assert!(matches!(
            redeem(s, hash, client_id, T0 + 1).await,
            CodeRedemption::Redeemed(_)
        ));
    }

    /// The queued notices as (client, session, user) triples, oldest first.
    async fn notices(s: &dyn Storage) -> Vec<(ClientId, SessionId, UserId)> {
        s.list_logout_notices()
            .await
            .unwrap()
            .into_iter()
            .map(|n| (n.client_id, n.session_id, n.user_id))
            .collect()
    }

    pub async fn session_clients_are_recorded_at_redemption(s: &dyn Storage) {
        let fx = seed(s).await;
        let other = bc_client(s, "other").await;
        assert!(s.session_clients(&fx.session.id).await.unwrap().is_empty());
        tokens_in(s, &fx, &fx.session.id, &fx.client.id, "c-1").await;
        tokens_in(s, &fx, &fx.session.id, &other.id, "c-2").await;
        // A second code of the same client in the same session adds nothing.
        tokens_in(s, &fx, &fx.session.id, &fx.client.id, "c-3").await;
        let mut got = s.session_clients(&fx.session.id).await.unwrap();
        got.sort();
        let mut want = vec![fx.client.id.clone(), other.id.clone()];
        want.sort();
        assert_eq!(got, want);
        // A replay, a refused presentation and a code of another client record nothing.
        let third = bc_client(s, "third").await;
        let mut c = code(&fx, "c-refused");
        c.client_id = third.id.clone();
        s.insert_code(&c).await.unwrap();
        assert!(matches!(
            s.redeem_code("c-refused", &third.id, T0 + 2, &|_| Err("wrong verifier"))
                .await
                .unwrap(),
            CodeRedemption::Refused(_)
        ));
        assert!(matches!(
            redeem(s, "c-refused", &fx.client.id, T0 + 2).await,
            CodeRedemption::Unknown
        ));
        assert!(matches!(
            redeem(s, "c-1", &fx.client.id, T0 + 2).await,
            CodeRedemption::Replayed
        ));
        assert_eq!(s.session_clients(&fx.session.id).await.unwrap().len(), 2);
        // Nothing is queued while the session lives.
        assert_eq!(s.enqueue_ended_sessions(T0 + 3).await.unwrap(), 0);
        assert!(notices(s).await.is_empty());
    }

    pub async fn every_session_end_queues_logout_notices(s: &dyn Storage) {
        let fx = seed(s).await;
        let rp = bc_client(s, "rp").await;
        let bystander = bc_client(s, "bystander").await;
        let user = fx.user.id.clone();
        // A session the back-channel client received tokens in, and the plain client too.
        let new_session = |name: &str| session(&fx.user, name);
        async fn used(
            s: &dyn Storage,
            fx: &Fixture,
            sess: &portcullis_core::model::Session,
            rp: &ClientId,
            plain: &ClientId,
        ) {
            s.insert_session(sess).await.unwrap();
            let tag = sess.cookie_hash.clone();
            tokens_in(s, fx, &sess.id, rp, &format!("{tag}-rp")).await;
            tokens_in(s, fx, &sess.id, plain, &format!("{tag}-plain")).await;
        }

        // Revocation (logout, the sessions page, `sessions revoke`): one notice for the client
        // with a URI, none for the one without, none for a client that got no tokens there;
        // visible at once (queued by the revocation itself, not by a sweep).
        let a = new_session("a");
        used(s, &fx, &a, &rp.id, &fx.client.id).await;
        assert!(s.revoke_session(&a.id, T0 + 10).await.unwrap());
        assert_eq!(
            notices(s).await,
            vec![(rp.id.clone(), a.id.clone(), user.clone())]
        );
        let n = &s.list_logout_notices().await.unwrap()[0];
        assert_eq!(
            (n.created_at, n.attempts, n.next_attempt_at),
            (T0 + 10, 0, T0 + 10)
        );
        // Once per session: revoking again, or the sweep, queues nothing more.
        assert!(s.revoke_session(&a.id, T0 + 11).await.unwrap());
        assert_eq!(s.enqueue_ended_sessions(T0 + 12).await.unwrap(), 0);
        assert_eq!(notices(s).await.len(), 1);
        assert!(!notices(s).await.iter().any(|n| n.0 == bystander.id));
        for n in s.list_logout_notices().await.unwrap() {
            s.remove_logout_notice(n.id).await.unwrap();
        }

        // "End the others" keeps the current one; "end all" ends it too.
        let keep = new_session("keep");
        let other = new_session("other");
        used(s, &fx, &keep, &rp.id, &fx.client.id).await;
        used(s, &fx, &other, &rp.id, &fx.client.id).await;
        s.revoke_user_sessions(&fx.user.id, Some(&keep.id), T0 + 20)
            .await
            .unwrap();
        assert_eq!(
            notices(s).await,
            vec![(rp.id.clone(), other.id.clone(), user.clone())]
        );
        s.revoke_user_sessions(&fx.user.id, None, T0 + 21)
            .await
            .unwrap();
        assert_eq!(
            notices(s).await,
            vec![
                (rp.id.clone(), other.id.clone(), user.clone()),
                (rp.id.clone(), keep.id.clone(), user.clone())
            ]
        );
        for n in s.list_logout_notices().await.unwrap() {
            s.remove_logout_notice(n.id).await.unwrap();
        }

        // The concurrent-session cap ends the oldest.
        let mut old = new_session("old");
        old.created_at = T0 + 30;
        let mut young = new_session("young");
        young.created_at = T0 + 31;
        used(s, &fx, &old, &rp.id, &fx.client.id).await;
        used(s, &fx, &young, &rp.id, &fx.client.id).await;
        let capped = s.cap_sessions(&fx.user.id, 1, T0 + 32).await.unwrap();
        assert_eq!(capped, vec![old.id.clone()]);
        assert_eq!(
            notices(s).await,
            vec![(rp.id.clone(), old.id.clone(), user.clone())]
        );
        for n in s.list_logout_notices().await.unwrap() {
            s.remove_logout_notice(n.id).await.unwrap();
        }

        // Refresh-token theft revokes the session inside the rotation.
        let mut t = refresh(&fx, "rt-1", &FamilyId::generate());
        t.client_id = rp.id.clone();
        t.session_id = young.id.clone();
        assert!(s.insert_refresh_token(&t, T0 + 40).await.unwrap());
        assert!(matches!(
            rotate(s, "rt-1", &rp.id, T0 + 41, "rt-2").await,
            RefreshRotation::Rotated(_)
        ));
        assert!(matches!(
            rotate(s, "rt-1", &rp.id, T0 + 41 + GRACE + 1, "rt-thief").await,
            RefreshRotation::ReuseDetected { .. }
        ));
        assert_eq!(
            notices(s).await,
            vec![(rp.id.clone(), young.id.clone(), user.clone())]
        );
        for n in s.list_logout_notices().await.unwrap() {
            s.remove_logout_notice(n.id).await.unwrap();
        }

        // A password change and a disable end every session of the user.
        let p1 = new_session("p1");
        let p2 = new_session("p2");
        used(s, &fx, &p1, &rp.id, &fx.client.id).await;
        used(s, &fx, &p2, &rp.id, &fx.client.id).await;
        s.set_password_hash(&fx.user.id, "$argon2id$new", T0 + 50)
            .await
            .unwrap();
        let mut got: Vec<SessionId> = notices(s).await.into_iter().map(|n| n.1).collect();
        got.sort();
        let mut want = vec![p1.id.clone(), p2.id.clone()];
        want.sort();
        assert_eq!(got, want);
        for n in s.list_logout_notices().await.unwrap() {
            s.remove_logout_notice(n.id).await.unwrap();
        }
        let d = new_session("d");
        let mut d = d;
        d.auth_time = T0 + 60;
        d.password_version = 1; // signed in with the new password
        used(s, &fx, &d, &rp.id, &fx.client.id).await;
        assert!(s
            .set_user_disabled(&fx.user.id, true, T0 + 61)
            .await
            .unwrap());
        assert_eq!(
            notices(s).await,
            vec![(rp.id.clone(), d.id.clone(), user.clone())]
        );
        for n in s.list_logout_notices().await.unwrap() {
            s.remove_logout_notice(n.id).await.unwrap();
        }

        // Deleting a user announces its sessions; the notice outlives the user.
        let bob = seed_named(s, "bob").await;
        tokens_in(s, &bob, &bob.session.id, &rp.id, "bob-rp").await;
        assert!(s.delete_user(&bob.user.id, T0 + 70).await.unwrap());
        assert_eq!(
            notices(s).await,
            vec![(rp.id.clone(), bob.session.id.clone(), bob.user.id.clone())]
        );
    }

    pub async fn the_sweep_queues_each_ended_session_once(s: &dyn Storage) {
        let fx = seed(s).await;
        let rp = bc_client(s, "rp").await;
        // `fx.session` ends at T0 + DAY (absolute); `idle` after an hour without activity.
        tokens_in(s, &fx, &fx.session.id, &rp.id, "c-abs").await;
        let mut idle = session(&fx.user, "idle");
        idle.idle_timeout = Some(HOUR);
        s.insert_session(&idle).await.unwrap();
        tokens_in(s, &fx, &idle.id, &rp.id, "c-idle").await;
        let mut long = session(&fx.user, "long");
        long.expires_at = T0 + 30 * DAY;
        s.insert_session(&long).await.unwrap();
        tokens_in(s, &fx, &long.id, &rp.id, "c-long").await;

        assert_eq!(s.enqueue_ended_sessions(T0 + HOUR - 1).await.unwrap(), 0);
        assert_eq!(s.enqueue_ended_sessions(T0 + HOUR).await.unwrap(), 1);
        assert_eq!(
            notices(s).await,
            vec![(rp.id.clone(), idle.id.clone(), fx.user.id.clone())]
        );
        assert_eq!(s.enqueue_ended_sessions(T0 + HOUR + 1).await.unwrap(), 0);
        assert_eq!(s.enqueue_ended_sessions(T0 + DAY).await.unwrap(), 1);
        assert_eq!(s.enqueue_ended_sessions(T0 + DAY + 1).await.unwrap(), 0);
        let all = notices(s).await;
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].1, fx.session.id);
        // Revoking a session that expired (and was announced) queues nothing more.
        assert!(s
            .revoke_session(&fx.session.id, T0 + DAY + 2)
            .await
            .unwrap());
        assert_eq!(notices(s).await.len(), 2);
        // The long session is still live and unannounced; when it ends, it is announced once.
        assert!(s.revoke_session(&long.id, T0 + DAY + 3).await.unwrap());
        assert_eq!(notices(s).await.len(), 3);
        assert_eq!(s.enqueue_ended_sessions(T0 + 31 * DAY).await.unwrap(), 0);
        assert_eq!(notices(s).await.len(), 3);
    }

    pub async fn logout_notices_are_claimed_leased_and_retried(s: &dyn Storage) {
        let fx = seed(s).await;
        let rp = bc_client(s, "rp").await;
        tokens_in(s, &fx, &fx.session.id, &rp.id, "c-1").await;
        let second = session(&fx.user, "second");
        s.insert_session(&second).await.unwrap();
        tokens_in(s, &fx, &second.id, &rp.id, "c-2").await;
        s.revoke_session(&fx.session.id, T0 + 10).await.unwrap();
        s.revoke_session(&second.id, T0 + 11).await.unwrap();

        // Nothing is due before it was queued; a limit is respected, oldest first.
        assert!(s
            .claim_logout_notices(T0 + 9, T0 + 100, 8)
            .await
            .unwrap()
            .is_empty());
        let first = s.claim_logout_notices(T0 + 20, T0 + 80, 1).await.unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].session_id, fx.session.id);
        assert_eq!(first[0].attempts, 1);
        assert_eq!(first[0].next_attempt_at, T0 + 80);
        // A claimed notice is not claimed again during its lease.
        let rest = s.claim_logout_notices(T0 + 21, T0 + 81, 8).await.unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].session_id, second.id);
        assert!(s
            .claim_logout_notices(T0 + 22, T0 + 82, 8)
            .await
            .unwrap()
            .is_empty());
        // A retry is due at its time, with one more attempt counted.
        s.retry_logout_notice(first[0].id, T0 + 30).await.unwrap();
        assert!(s
            .claim_logout_notices(T0 + 29, T0 + 90, 8)
            .await
            .unwrap()
            .is_empty());
        let again = s.claim_logout_notices(T0 + 30, T0 + 90, 8).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].attempts, 2);
        // After the lease (a crashed delivery), it comes back.
        let back = s.claim_logout_notices(T0 + 81, T0 + 200, 8).await.unwrap();
        assert_eq!(
            back.iter().map(|n| n.id).collect::<Vec<_>>(),
            vec![rest[0].id]
        );
        s.remove_logout_notice(first[0].id).await.unwrap();
        s.remove_logout_notice(rest[0].id).await.unwrap();
        assert!(s.list_logout_notices().await.unwrap().is_empty());
    }

    pub async fn a_clients_idle_timeout_stops_its_refreshes(s: &dyn Storage) {
        let fx = seed(s).await;
        s.insert_refresh_token(&refresh(&fx, "rt-1", &FamilyId::generate()), T0)
            .await
            .unwrap();
        let strict = RefreshRules {
            client_session_idle: Some(300),
            ..RULES
        };
        let next =
            |name: &'static str, now: i64| move |t: &RefreshToken| Some(next_of(t, name, now));
        // The session was last active at T0: fine until T0 + 599 for this client.
        assert!(matches!(
            s.rotate_refresh_token(
                "rt-1",
                &fx.client.id,
                T0 + 299,
                &strict,
                &next("rt-2", T0 + 299)
            )
            .await
            .unwrap(),
            RefreshRotation::Rotated(_)
        ));
        assert!(s
            .live_refresh_token("rt-2", &fx.client.id, T0 + 599, &strict)
            .await
            .unwrap()
            .is_none());
        assert!(matches!(
            s.rotate_refresh_token(
                "rt-2",
                &fx.client.id,
                T0 + 599,
                &strict,
                &next("rt-3", T0 + 599)
            )
            .await
            .unwrap(),
            RefreshRotation::Invalid
        ));
        // Refused without theft or revocation: under the server's own rules it still rotates.
        assert!(usable(s, "rt-2", &fx.client.id, T0 + 600).await);
    }

    pub async fn a_signer_is_ensured_once_whoever_asks(s: &dyn Storage) {
        use portcullis_core::ids::KeyId;
        use portcullis_core::model::SigningAlg;
        use portcullis_core::store::SignerChange;
        let kid = |k: &str| KeyId::from_trusted(k.to_owned());
        let signs_now = |k: &str, at: i64| {
            let mut key = signing_key(k, at);
            key.activates_at = at;
            key
        };
        assert!(!s.any_signing_key_stored().await.unwrap(), "a new store");
        let mut current = signs_now("k_cur", T0);
        current.alg = SigningAlg::RS256;
        s.insert_signing_key(&current).await.unwrap();
        let mut other = signs_now("k_es", T0);
        other.alg = SigningAlg::ES256;
        s.insert_signing_key(&other).await.unwrap();
        // A key signs: nothing is stored.
        assert_eq!(
            s.ensure_signing_key(&signs_now("k_x", T0 + 5), T0 + 5)
                .await
                .unwrap(),
            SignerChange::Unchanged
        );
        // A rotation is pending and the current key is revoked: the published successor
        // signs from now on, and the candidate is not stored.
        let next = signing_key("k_wait", T0 + 10);
        assert!(s.rotate_signing_key(&next, T0 + 10).await.unwrap());
        assert!(s.revoke_signing_key(&kid("k_cur"), T0 + 20).await.unwrap());
        assert_eq!(
            s.ensure_signing_key(&signs_now("k_a", T0 + 20), T0 + 20)
                .await
                .unwrap(),
            SignerChange::Activated(kid("k_wait"))
        );
        // Another process that saw no signer too (it listed before) asks next: nothing more.
        assert_eq!(
            s.ensure_signing_key(&signs_now("k_b", T0 + 20), T0 + 20)
                .await
                .unwrap(),
            SignerChange::Unchanged
        );
        let keys = s.list_signing_keys().await.unwrap();
        let rs: Vec<(String, i64, Option<i64>)> = keys
            .iter()
            .filter(|k| k.alg == SigningAlg::RS256)
            .map(|k| (k.kid.to_string(), k.activates_at, k.retired_at))
            .collect();
        assert_eq!(rs, [("k_wait".to_owned(), T0 + 20, None)]);
        assert_eq!(
            keys.iter()
                .find(|k| k.kid.as_str() == "k_es")
                .unwrap()
                .retired_at,
            None,
            "other algorithms untouched"
        );
        // No key left at all: the candidate is stored, once. (The store is not new.)
        assert!(s.revoke_signing_key(&kid("k_wait"), T0 + 30).await.unwrap());
        assert!(s.revoke_signing_key(&kid("k_es"), T0 + 30).await.unwrap());
        assert!(s.list_signing_keys().await.unwrap().is_empty());
        assert!(s.any_signing_key_stored().await.unwrap());
        assert_eq!(
            s.ensure_signing_key(&signs_now("k_new", T0 + 30), T0 + 30)
                .await
                .unwrap(),
            SignerChange::Inserted
        );
        assert_eq!(
            s.ensure_signing_key(&signs_now("k_late", T0 + 30), T0 + 30)
                .await
                .unwrap(),
            SignerChange::Unchanged
        );
        // A candidate that would wait (an access-token-only algorithm behind its stand-in):
        // stored when nothing of its algorithm signs or waits; never beside a waiting one.
        let waits = |k: &str| {
            let mut key = signing_key(k, T0 + 40);
            key.alg = SigningAlg::EdDSA;
            key
        };
        assert_eq!(
            s.ensure_signing_key(&waits("k_ed1"), T0 + 40)
                .await
                .unwrap(),
            SignerChange::Inserted
        );
        assert_eq!(
            s.ensure_signing_key(&waits("k_ed2"), T0 + 40)
                .await
                .unwrap(),
            SignerChange::Unchanged
        );
        let eds: Vec<String> = s
            .list_signing_keys()
            .await
            .unwrap()
            .into_iter()
            .filter(|k| k.alg == SigningAlg::EdDSA)
            .map(|k| k.kid.to_string())
            .collect();
        assert_eq!(eds, ["k_ed1"]);
    }

    pub async fn revoking_a_waiting_successor_keeps_the_current_key(s: &dyn Storage) {
        use portcullis_core::ids::KeyId;
        let mut current = signing_key("k_cur", T0);
        current.activates_at = T0;
        s.insert_signing_key(&current).await.unwrap();
        let next = signing_key("k_wait", T0 + 10);
        assert!(s.rotate_signing_key(&next, T0 + 10).await.unwrap());
        assert!(s
            .revoke_signing_key(&KeyId::from_trusted("k_wait".into()), T0 + 20)
            .await
            .unwrap());
        let keys = s.list_signing_keys().await.unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].retired_at, None, "the current key signs on");
    }
}
