//! The audit pipeline's cost, with the server's real parts: events recorded through
//! `Audit::record` (with the JSON log layer writing each line, to a sink) into SQLite with
//! durable commits (`synchronous = FULL`).
//!
//! - ingestion: events per second from the first `record` until every one is stored;
//! - the cost a request pays to record one event (p50, p99, max of `record` calls).
//!
//! `cargo bench -p portcullis-server --bench audit` (figures in BENCHMARKS.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_core::audit::{Event, EventKind, Origin};
use portcullis_core::store::Storage;
use portcullis_server::audit::Audit;
use portcullis_store::sqlite::SqliteStore;

fn event(n: u64) -> Event {
    Event::new(EventKind::TokenIssued, 1_800_000_000 + (n / 1000) as i64)
        .client("cl_benchmarkclient0000000000")
        .detail("grant_type=client_credentials")
        .from(&Origin {
            address: Some("203.0.113.7".into()),
            user_agent: Some("bench/1.0 (a realistic user agent of some length)".into()),
            request_id: Some(format!("req{n:012}")),
        })
}

fn main() {
    // The server's log format, written to nowhere: the cost of building each line counts.
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::sink)
        .with_current_span(false)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        let store = SqliteStore::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let n: u64 = std::env::var("EVENTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(300_000);
        let audit = Audit::start(
            Arc::new(store.clone()) as Arc<dyn Storage>,
            n as usize,
            Default::default(),
        );
        let mut costs = Vec::with_capacity(n as usize);
        let started = Instant::now();
        for i in 0..n {
            let e = event(i);
            let t = Instant::now();
            audit.record(e);
            costs.push(t.elapsed());
            // Let the writer run as it would beside request handling.
            if i % 2048 == 0 {
                tokio::task::yield_now().await;
            }
        }
        let recorded_in = started.elapsed();
        assert!(audit.flush(Duration::from_secs(120)).await);
        let total = started.elapsed();
        let c = &audit.counters;
        let stored = c.stored.load(Ordering::Acquire);
        costs.sort_unstable();
        let pct = |p: f64| costs[((costs.len() as f64 * p) as usize).min(costs.len() - 1)];
        println!(
            "events: {n}, stored: {stored}, dropped: {}",
            c.dropped.load(Ordering::Acquire)
        );
        println!(
            "ingestion: {:.0} events/s stored (all {n} recorded in {:.2} s, stored by {:.2} s)",
            n as f64 / total.as_secs_f64(),
            recorded_in.as_secs_f64(),
            total.as_secs_f64()
        );
        println!(
            "record() cost: p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.1} µs",
            pct(0.50).as_secs_f64() * 1e6,
            pct(0.99).as_secs_f64() * 1e6,
            pct(0.999).as_secs_f64() * 1e6,
            costs[costs.len() - 1].as_secs_f64() * 1e6
        );
        assert_eq!(stored, n, "every event stored");
    });
}
