//! Recording audit events without ever holding up a request.
//!
//! [`Audit::record`] writes the event's log line at once (one JSON object per line, through
//! the JSON log) and hands the event to a bounded queue; it never waits and never fails. A
//! background writer drains the queue in batches (one transaction each). When the store is
//! down the writer keeps its batch and retries with backoff while the queue fills; once the
//! queue is full, new events are dropped from storage (their log lines are still written),
//! counted, and reported by an `audit.events_lost` event as soon as storage works again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use portcullis_core::audit::{Event, EventKind, Origin, Outcome};
use portcullis_core::store::Storage;
use portcullis_guard::client_addr::ClientAddr;
use tokio::sync::mpsc;

/// Most events written in one transaction.
const BATCH: usize = 512;
/// How long the writer gathers events before a commit (a store lag of at most this much).
const LINGER: Duration = Duration::from_millis(25);
/// Longest wait between retries while the store is failing.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Counters of the event pipeline (exposed as metrics and in the log at shutdown).
#[derive(Default, Debug)]
pub struct Counters {
    pub recorded: AtomicU64,
    pub stored: AtomicU64,
    pub dropped: AtomicU64,
    pub store_failures: AtomicU64,
    /// Stored events the detector could not take (it was behind, or had stopped).
    pub detector_dropped: AtomicU64,
    /// Drops not yet reported by an `audit.events_lost` event.
    unreported: AtomicU64,
    /// Events of floodable kinds not recorded because one like it was recorded for the same
    /// address in the same window.
    pub suppressed: AtomicU64,
}

impl Counters {
    /// Events recorded but neither stored nor dropped yet (the writer's lag).
    pub fn pending(&self) -> u64 {
        let recorded = self.recorded.load(Ordering::Acquire);
        let done = self.stored.load(Ordering::Acquire) + self.dropped.load(Ordering::Acquire);
        recorded.saturating_sub(done)
    }
}

/// Events of a floodable kind (anyone can cause them at will, one per request) are recorded
/// once per kind, reason, client and network (an IPv4 address, an IPv6 prefix) in this many
/// seconds; the rest are counted as suppressed.
pub const FLOOD_WINDOW: i64 = 60;
/// And at most this many of one kind and reason per window from all networks together (an
/// IPv6 attacker holds millions of prefixes), for events that name no user.
pub const FLOOD_CAP: u32 = 1_000;
/// For events that name a user (a failed refresh of their token): at most this many of one
/// kind and reason per user and window, so one user's flood cannot hide another's.
pub const FLOOD_CAP_PER_USER: u32 = 20;
/// And at most this many floodable events of all kinds that name no user per window.
pub const FLOOD_CAP_ALL: u32 = 5_000;
/// And at most this many floodable events that name a user, of all users, per window: a
/// ceiling for someone holding dead tokens of many accounts.
pub const FLOOD_CAP_ALL_USERS: u32 = 50_000;
/// How often the count of suppressed events is stored as an `audit.events_suppressed` event.
const SUPPRESSED_REPORT: Duration = Duration::from_secs(60);

/// The recorder every handler shares.

#[derive(Clone)]
pub struct Audit {
    flood: Arc<portcullis_guard::limiter::MemoryLimiter>,
    flood_total: Arc<portcullis_guard::limiter::MemoryLimiter>,
    flood_user: Arc<portcullis_guard::limiter::MemoryLimiter>,
    flood_all: Arc<portcullis_guard::limiter::MemoryLimiter>,
    flood_all_users: Arc<portcullis_guard::limiter::MemoryLimiter>,
    /// The IPv6 prefix length that makes one network (as the limiters use it).
    v6_prefix: u8,
    /// The detector, for suppressed events: counted at once, never queued behind storage.
    direct: Arc<std::sync::OnceLock<Arc<crate::detect::Detector>>>,
    tx: Option<mpsc::Sender<Event>>,
    pub counters: Arc<Counters>,
    metrics: Arc<crate::metrics::Metrics>,
    /// Runs on every stored batch, once set.
    detector: Arc<std::sync::OnceLock<mpsc::Sender<Vec<Event>>>>,
}

impl Audit {
    /// Starts the writer on `store` with a queue of `capacity` events.
    pub fn start(
        store: Arc<dyn Storage>,
        capacity: usize,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        Self::start_reporting(store, capacity, metrics, SUPPRESSED_REPORT)
    }

    /// Like [`Audit::start`], storing the count of suppressed events every `report_every`.
    pub fn start_reporting(
        store: Arc<dyn Storage>,
        capacity: usize,
        metrics: Arc<crate::metrics::Metrics>,
        report_every: Duration,
    ) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let counters = Arc::new(Counters::default());
        let detector = Arc::new(std::sync::OnceLock::new());
        tokio::spawn(write_loop(
            store,
            rx,
            counters.clone(),
            detector.clone(),
            report_every,
        ));
        Audit {
            flood: Arc::new(portcullis_guard::limiter::MemoryLimiter::new(
                portcullis_guard::limiter::Limit {
                    max: 1,
                    window_secs: FLOOD_WINDOW,
                },
                100_000,
            )),
            flood_total: Arc::new(portcullis_guard::limiter::MemoryLimiter::new(
                portcullis_guard::limiter::Limit {
                    max: FLOOD_CAP,
                    window_secs: FLOOD_WINDOW,
                },
                1_000,
            )),
            flood_user: Arc::new(portcullis_guard::limiter::MemoryLimiter::new(
                portcullis_guard::limiter::Limit {
                    max: FLOOD_CAP_PER_USER,
                    window_secs: FLOOD_WINDOW,
                },
                100_000,
            )),
            flood_all: Arc::new(portcullis_guard::limiter::MemoryLimiter::new(
                portcullis_guard::limiter::Limit {
                    max: FLOOD_CAP_ALL,
                    window_secs: FLOOD_WINDOW,
                },
                4,
            )),
            flood_all_users: Arc::new(portcullis_guard::limiter::MemoryLimiter::new(
                portcullis_guard::limiter::Limit {
                    max: FLOOD_CAP_ALL_USERS,
                    window_secs: FLOOD_WINDOW,
                },
                4,
            )),
            v6_prefix: 64,
            direct: Arc::new(std::sync::OnceLock::new()),
            tx: Some(tx),
            counters,
            metrics,
            detector,
        }
    }

    /// From now on every stored batch goes to `detector`, which runs in a task of its own (set
    /// once; later calls are ignored): a slow or failing detection never holds up storage, and
    /// batches it cannot take are counted (`detector_dropped`).
    pub fn set_detector(&self, detector: Arc<crate::detect::Detector>) {
        let _ = self.direct.set(detector.clone());
        let (tx, mut rx) = mpsc::channel::<Vec<Event>>(256);
        if self.detector.set(tx).is_ok() {
            tokio::spawn(async move {
                while let Some(batch) = rx.recv().await {
                    detector.observe(&batch).await;
                }
            });
        }
    }

    /// The IPv6 prefix length that makes one network for [`Audit::record_floodable`] (the
    /// limiters' own; 64 unless set).
    pub fn with_network_prefix(mut self, v6_prefix: u8) -> Self {
        self.v6_prefix = v6_prefix;
        self
    }

    /// Like [`Audit::record`], for events anyone can cause at will (a refused cross-site
    /// form, a made-up or dead token, a refusal while blocked or throttled): per
    /// [`FLOOD_WINDOW`], one per kind, reason, client and network, and at most [`FLOOD_CAP`]
    /// of one kind and reason in all, are logged and stored, so a flood cannot fill the log
    /// and the store. The rest are counted (`suppressed`, and in the metrics) and counted by
    /// the detections at once, so a burst is detected whether or not its events were stored.
    pub async fn record_floodable(&self, event: Event) {
        use portcullis_guard::limiter::AttemptLimiter;
        let network = event
            .address
            .as_deref()
            .and_then(|a| a.parse::<std::net::IpAddr>().ok())
            .map(|ip| portcullis_guard::client_addr::bucket(ip, self.v6_prefix).to_string());
        let kind = format!("{}|{}", event.kind, event.reason.as_deref().unwrap_or("-"));
        let user = event.user_id.as_deref();
        let key = format!(
            "{kind}|{}|{}|{}",
            event.client_id.as_deref().unwrap_or("-"),
            network.as_deref().unwrap_or("-"),
            user.unwrap_or("-")
        );
        // Events that name a user are capped per user (and by a high ceiling for all users),
        // not with the events that name none: naming a user takes their tokens, so a flood
        // of anonymous events cannot crowd a victim's events out.
        let allowed = self.flood.reserve(&key, event.at).await.is_allowed()
            && match user {
                Some(u) => {
                    self.flood_user
                        .reserve(&format!("{kind}|{u}"), event.at)
                        .await
                        .is_allowed()
                        && self
                            .flood_all_users
                            .reserve("users", event.at)
                            .await
                            .is_allowed()
                }
                None => {
                    self.flood_total.reserve(&kind, event.at).await.is_allowed()
                        && self.flood_all.reserve("all", event.at).await.is_allowed()
                }
            };
        if allowed {
            self.record(event);
            return;
        }
        self.suppress(&event);
        if let Some(d) = self.direct.get() {
            d.count(&event);
        }
    }

    /// Counts an event that is deliberately not recorded (one of a flood) in `suppressed`
    /// and in the metrics.
    pub fn suppress(&self, event: &Event) {
        self.counters.suppressed.fetch_add(1, Ordering::AcqRel);
        self.metrics.observe_event(event);
    }

    /// Logs the event, counts it in the metrics and queues it for storage. Never blocks,
    /// never fails.
    pub fn record(&self, event: Event) {
        log_line(&event);
        self.metrics.observe_event(&event);
        let Some(tx) = &self.tx else { return };
        self.counters.recorded.fetch_add(1, Ordering::AcqRel);
        if tx.try_send(event).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::AcqRel);
            self.counters.unreported.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Waits (at most `limit`) until every recorded event is stored or dropped.
    pub async fn flush(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while self.counters.pending() > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }
}

async fn write_loop(
    store: Arc<dyn Storage>,
    mut rx: mpsc::Receiver<Event>,
    counters: Arc<Counters>,
    detector: Arc<std::sync::OnceLock<mpsc::Sender<Vec<Event>>>>,
    report_every: Duration,
) {
    let mut batch: Vec<Event> = Vec::with_capacity(BATCH + 2);
    let mut last_report = tokio::time::Instant::now();
    let mut reported_suppressed = 0u64;
    let mut backoff = Duration::from_millis(50);
    let mut failing = false;
    loop {
        if batch.is_empty() {
            // Waking at least once per report interval: the summary of suppressed events is
            // written even when nothing else is recorded.
            let wake = (last_report + report_every).max(tokio::time::Instant::now());
            match tokio::time::timeout_at(wake, rx.recv()).await {
                Ok(Some(e)) => batch.push(e),
                Ok(None) => return,
                Err(_) => {}
            }
        }
        // Gather for a moment before committing: under load one transaction carries hundreds
        // of events instead of each commit (and its sync to disk) carrying a few.
        let deadline = tokio::time::Instant::now() + LINGER;
        while !batch.is_empty() && batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(e)) => batch.push(e),
                Ok(None) | Err(_) => break,
            }
        }
        // Suppressed events are summed up once a minute: a flood is visible in the store, not
        // only in the metrics.
        if last_report.elapsed() >= report_every {
            last_report = tokio::time::Instant::now();
            let total = counters.suppressed.load(Ordering::Acquire);
            if total > reported_suppressed {
                batch.push(
                    Event::new(EventKind::EventsSuppressed, crate::state::now()).detail(&format!(
                        "suppressed={} window_seconds={}",
                        total - reported_suppressed,
                        report_every.as_secs()
                    )),
                );
                counters.recorded.fetch_add(1, Ordering::AcqRel);
                reported_suppressed = total;
            }
        }
        // Nothing to store, unless losses wait to be reported (an idle server reports them too).
        if batch.is_empty() && counters.unreported.load(Ordering::Acquire) == 0 {
            continue;
        }
        // Losses are reported in the next batch that reaches storage.
        let lost = counters.unreported.swap(0, Ordering::AcqRel);
        let report = lost > 0;
        if report {
            batch.push(
                Event::new(EventKind::EventsLost, crate::state::now())
                    .detail(&format!("dropped={lost}")),
            );
        }
        match store.append_events(&batch).await {
            Ok(()) => {
                let real = batch.len() - usize::from(report);
                counters.stored.fetch_add(real as u64, Ordering::AcqRel);
                if failing {
                    tracing::info!(event = "audit.store_recovered");
                    failing = false;
                }
                // Detection sees events once they are stored, in order: the history a sign-in
                // is compared with is in the database already.
                // Handed over, not copied.
                let stored = std::mem::replace(&mut batch, Vec::with_capacity(BATCH + 1));
                if let Some(d) = detector.get() {
                    let n = stored.len() as u64;
                    if d.try_send(stored).is_err() {
                        counters.detector_dropped.fetch_add(n, Ordering::AcqRel);
                    }
                }
                backoff = Duration::from_millis(50);
            }
            Err(e) => {
                if report {
                    batch.pop();
                    counters.unreported.fetch_add(lost, Ordering::AcqRel);
                }
                counters.store_failures.fetch_add(1, Ordering::AcqRel);
                if !failing {
                    tracing::error!(event = "audit.store_failed", error = %e, pending = counters.pending(), "audit events are buffered until storage works again");
                    failing = true;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// The event's log line: every field is already cleaned, and the JSON log escapes the rest.
pub fn log_line(e: &Event) {
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                target: "portcullis::audit",
                event = %e.kind,
                outcome = e.outcome.as_str(),
                reason = e.reason.as_deref(),
                user_id = e.user_id.as_deref(),
                client_id = e.client_id.as_deref(),
                client = e.address.as_deref(),
                user_agent = e.user_agent.as_deref(),
                session_id = e.session_id.as_deref(),
                request_id = e.request_id.as_deref(),
                detail = e.detail.as_deref(),
                at = e.at,
            )
        };
    }
    match e.outcome {
        Outcome::Success => line!(info),
        Outcome::Failure => line!(warn),
    }
}

/// A request's id, made by the request log layer.
#[derive(Clone, Debug)]
pub struct RequestId(pub Arc<str>);

/// The audit [`Origin`] of a request: its resolved client address, user agent and id.
pub struct RequestOrigin(pub Origin);

impl<S: Send + Sync> FromRequestParts<S> for RequestOrigin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestOrigin(origin_of(parts)))
    }
}

fn origin_of(parts: &Parts) -> Origin {
    Origin {
        address: parts
            .extensions
            .get::<ClientAddr>()
            .map(|c| c.0.to_string()),
        user_agent: parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        request_id: parts.extensions.get::<RequestId>().map(|r| r.0.to_string()),
    }
}
