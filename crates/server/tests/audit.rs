//! The audit pipeline against real SQLite: events reach storage in order; while storage fails
//! they wait in the bounded queue (a sign-in never waits for them); what the queue cannot hold
//! is dropped, counted, and reported by an `audit.events_lost` event once storage is back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::audit::{Event, EventFilter, EventKind, Origin};
use portcullis_core::store::{AuditStore, Storage};
use portcullis_server::audit::Audit;
use portcullis_store::sqlite::SqliteStore;

async fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("audit.db").display());
    let store = SqliteStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    (dir, store)
}

fn event(n: usize) -> Event {
    Event::new(EventKind::LoginFailed, 1_800_000_000 + n as i64)
        .reason("wrong_password")
        .from(&Origin {
            address: Some("203.0.113.7".into()),
            user_agent: Some(format!("agent {n}")),
            request_id: Some(format!("req{n}")),
        })
}

async fn all(store: &SqliteStore) -> Vec<portcullis_core::audit::StoredEvent> {
    store
        .query_events(&EventFilter {
            limit: 10_000,
            ..EventFilter::default()
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_stored_in_order() {
    let (_dir, store) = store().await;
    let audit = Audit::start(
        Arc::new(store.clone()) as Arc<dyn Storage>,
        10_000,
        Default::default(),
    );
    for n in 0..2_000 {
        audit.record(event(n));
    }
    assert!(audit.flush(Duration::from_secs(10)).await);
    let stored = all(&store).await;
    assert_eq!(stored.len(), 2_000);
    assert!(stored.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(stored[0].event.request_id.as_deref(), Some("req0"));
    assert_eq!(stored[1999].event.user_agent.as_deref(), Some("agent 1999"));
    let c = &audit.counters;
    assert_eq!(c.recorded.load(Ordering::Acquire), 2_000);
    assert_eq!(c.stored.load(Ordering::Acquire), 2_000);
    assert_eq!(c.dropped.load(Ordering::Acquire), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_buffers_then_drops_and_reports_the_loss() {
    let (_dir, store) = store().await;
    let capacity = 50;
    let audit = Audit::start(
        Arc::new(store.clone()) as Arc<dyn Storage>,
        capacity,
        Default::default(),
    );
    // Storage goes away: the table the writer needs is gone (every insert fails at once).
    sqlx::query("ALTER TABLE audit_events RENAME TO audit_events_away")
        .execute(store.pool())
        .await
        .unwrap();
    let started = std::time::Instant::now();
    for n in 0..2_000 {
        audit.record(event(n));
    }
    // Recording never waited for storage.
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let c = audit.counters.clone();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(c.store_failures.load(Ordering::Acquire) > 0);
    let dropped = c.dropped.load(Ordering::Acquire);
    // The queue holds `capacity`, the writer's retried batch at most 512 more: the rest were
    // dropped.
    assert!(dropped >= 2_000 - capacity as u64 - 512, "{dropped}");
    assert!(c.pending() > 0 && c.pending() <= capacity as u64 + 512);
    // Storage is back: what was buffered is stored, and the loss is on record.
    sqlx::query("ALTER TABLE audit_events_away RENAME TO audit_events")
        .execute(store.pool())
        .await
        .unwrap();
    assert!(
        audit.flush(Duration::from_secs(15)).await,
        "pending {}",
        c.pending()
    );
    let stored = all(&store).await;
    let lost: Vec<_> = stored
        .iter()
        .filter(|e| e.event.kind == "audit.events_lost")
        .collect();
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(
        lost[0].event.detail.as_deref(),
        Some(format!("dropped={dropped}").as_str())
    );
    let real = stored.len() as u64 - 1;
    assert_eq!(real, c.stored.load(Ordering::Acquire));
    assert_eq!(
        real + dropped,
        2_000,
        "every event is stored or counted as dropped"
    );
}

/// Floodable events: one per network (an IPv6 /64 is one, however its last 64 bits vary) and
/// minute, and at most `FLOOD_CAP` of a kind and reason in all, however many networks send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_are_stored_once_per_network_and_capped_in_all() {
    use portcullis_server::audit::FLOOD_CAP;
    let (_dir, store) = store().await;
    let audit = Audit::start_reporting(
        Arc::new(store.clone()) as Arc<dyn Storage>,
        10_000,
        Default::default(),
        Duration::from_millis(200),
    )
    .with_network_prefix(64);
    let at = 1_800_000_000;
    let refused = |address: String| {
        Event::new(EventKind::CsrfRefused, at)
            .reason("cross_site")
            .from(&Origin {
                address: Some(address),
                user_agent: None,
                request_id: None,
            })
    };
    for n in 0..200u32 {
        audit
            .record_floodable(refused(format!("2001:db8:1:2::{n:x}")))
            .await;
    }
    let total = FLOOD_CAP + 200;
    for n in 0..total {
        audit
            .record_floodable(refused(format!(
                "2001:db8:{:x}:{:x}::1",
                n >> 16,
                n & 0xffff
            )))
            .await;
    }
    assert!(audit.flush(Duration::from_secs(10)).await);
    let stored = all(&store).await;
    // The first /64 once, then other /64s until the cap.
    assert_eq!(stored.len() as u32, FLOOD_CAP, "{}", stored.len());
    let c = &audit.counters;
    let suppressed = 200 + total - FLOOD_CAP;
    assert_eq!(c.suppressed.load(Ordering::Acquire) as u32, suppressed);
    // Events that name a user are capped per user: one user's flood leaves another's seen.
    let failed = |user: &str, n: u32| {
        Event::new(EventKind::TokenRefreshFailed, at)
            .reason("invalid_grant")
            .user(user)
            .from(&Origin {
                address: Some(format!("2001:db8:ff:{n:x}::1")),
                user_agent: None,
                request_id: None,
            })
    };
    for n in 0..100 {
        audit.record_floodable(failed("usr_flooder", n)).await;
    }
    audit.record_floodable(failed("usr_victim", 0)).await;
    // The summary is written once the report interval has passed, with nothing else
    // recorded meanwhile.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(audit.flush(Duration::from_secs(10)).await);
    let stored = all(&store).await;
    let of = |user: &str| {
        stored
            .iter()
            .filter(|s| s.event.user_id.as_deref() == Some(user))
            .count() as u32
    };
    assert_eq!(
        of("usr_flooder"),
        portcullis_server::audit::FLOOD_CAP_PER_USER
    );
    assert_eq!(of("usr_victim"), 1);
    let summaries: Vec<&str> = stored
        .iter()
        .filter(|s| s.event.kind == "audit.events_suppressed")
        .filter_map(|s| s.event.detail.as_deref())
        .collect();
    let expected = format!(
        "suppressed={} ",
        suppressed + 100 - portcullis_server::audit::FLOOD_CAP_PER_USER
    );
    assert!(
        summaries.iter().any(|d| d.starts_with(&expected)),
        "{summaries:?} {expected}"
    );
}
