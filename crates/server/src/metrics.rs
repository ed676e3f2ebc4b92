//! Prometheus metrics for the admin listener's `/metrics`: events by type and outcome (which
//! covers sign-ins by outcome, throttles, refresh failures, reuse detections and every other
//! kind), alerts by detection, the audit pipeline's lag and drops, and request latency per
//! route. Built on `prometheus-client` (the Prometheus project's Rust client).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, RwLock};

use portcullis_core::audit::{Event, Outcome};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::audit::Counters;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabels {
    detection: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: String,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms to about 4 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 15))
}

/// The server's metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    events: Family<EventLabels, Counter>,
    alerts: Family<AlertLabels, Counter>,
    requests: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// The counter of every known event kind, success and failure, made at start (so each
    /// series exists from zero) and found by `&str`: `Family::get_or_create` needs an owned
    /// label set, two allocations on every event.
    event_counters: HashMap<&'static str, [Counter; 2]>,
    /// The histograms of the routes seen so far, by route template and method, for the same
    /// reason.
    route_histograms: RwLock<HashMap<String, HashMap<&'static str, Histogram>>>,
    audit_pending: Gauge,
    key_reload_failing: Gauge,
    access_token_stand_in: Gauge,
    audit_stored: Counter,
    audit_dropped: Counter,
    audit_store_failures: Counter,
    detector_dropped: Counter,
    suppressed: Counter,
    log_dropped: Counter,
    log_dropped_source: std::sync::OnceLock<tracing_appender::non_blocking::ErrorCounter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("portcullis");
        let events = Family::<EventLabels, Counter>::default();
        registry.register(
            "events",
            "Audit events recorded, by type and outcome",
            events.clone(),
        );
        let alerts = Family::<AlertLabels, Counter>::default();
        registry.register("alerts", "Alerts raised, by detection", alerts.clone());
        let requests = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer a request, by route",
            requests.clone(),
        );
        let audit_pending = Gauge::default();
        registry.register(
            "audit_events_pending",
            "Audit events recorded but not yet stored (the writer's lag)",
            audit_pending.clone(),
        );
        let key_reload_failing = Gauge::default();
        registry.register(
            "key_reload_failing",
            "1 while the last key reload failed (key maintenance and rotation stopped, or a key this server cannot open): see key.reload_failed in the log",
            key_reload_failing.clone(),
        );
        let access_token_stand_in = Gauge::default();
        registry.register(
            "access_token_stand_in",
            "1 while access tokens are signed by the stand-in algorithm because the configured one has no key signing",
            access_token_stand_in.clone(),
        );
        let audit_stored = Counter::default();
        registry.register(
            "audit_events_stored",
            "Audit events stored",
            audit_stored.clone(),
        );
        let audit_dropped = Counter::default();
        registry.register(
            "audit_events_dropped",
            "Audit events dropped from storage because the queue was full (still logged)",
            audit_dropped.clone(),
        );
        let audit_store_failures = Counter::default();
        registry.register(
            "audit_store_failures",
            "Failed attempts to store a batch of audit events",
            audit_store_failures.clone(),
        );
        let detector_dropped = Counter::default();
        registry.register(
            "detector_events_dropped",
            "Stored audit events the detections could not look at (they were behind or had stopped)",
            detector_dropped.clone(),
        );
        let suppressed = Counter::default();
        registry.register(
            "audit_events_suppressed",
            "Events of floodable kinds not recorded: one like it was, for the same network and minute, or the cap was reached",
            suppressed.clone(),
        );
        let log_dropped = Counter::default();
        registry.register(
            "log_lines_dropped",
            "Log lines dropped because the log writer was behind (a stalled reader of stderr)",
            log_dropped.clone(),
        );
        let event_counters = portcullis_core::audit::EventKind::ALL
            .iter()
            .map(|kind| {
                let counter = |outcome: &str| {
                    events
                        .get_or_create(&EventLabels {
                            event: kind.as_str().to_owned(),
                            outcome: outcome.to_owned(),
                        })
                        .clone()
                };
                (
                    kind.as_str(),
                    [
                        counter(Outcome::Success.as_str()),
                        counter(Outcome::Failure.as_str()),
                    ],
                )
            })
            .collect();
        Metrics {
            log_dropped,
            log_dropped_source: std::sync::OnceLock::new(),
            event_counters,
            route_histograms: RwLock::default(),
            suppressed,
            detector_dropped,
            registry: Mutex::new(registry),
            events,
            alerts,
            requests,
            audit_pending,
            key_reload_failing,
            access_token_stand_in,
            audit_stored,
            audit_dropped,
            audit_store_failures,
        }
    }

    /// Counts one recorded event (and, for an alert, its detection).
    pub fn observe_event(&self, e: &Event) {
        match self.event_counters.get(e.kind.as_str()) {
            Some([success, failure]) => match e.outcome {
                Outcome::Success => success.inc(),
                Outcome::Failure => failure.inc(),
            },
            None => self
                .events
                .get_or_create(&EventLabels {
                    event: e.kind.clone(),
                    outcome: e.outcome.as_str().to_owned(),
                })
                .inc(),
        };
        if e.kind == portcullis_core::audit::EventKind::AlertRaised.as_str() {
            self.alerts
                .get_or_create(&AlertLabels {
                    detection: e.reason.clone().unwrap_or_default(),
                })
                .inc();
        }
    }

    /// Records how long a request to `route` (the matched route template, never the raw path)
    /// took.
    pub fn observe_request(&self, route: &str, method: &str, seconds: f64) {
        // A fixed set of labels: any token is a valid HTTP method, and each new label value
        // would be a histogram kept forever.
        let method: &'static str = match method {
            "GET" => "GET",
            "HEAD" => "HEAD",
            "POST" => "POST",
            "OPTIONS" => "OPTIONS",
            "PUT" => "PUT",
            "DELETE" => "DELETE",
            "PATCH" => "PATCH",
            _ => "other",
        };
        if let Ok(known) = self.route_histograms.read() {
            if let Some(h) = known.get(route).and_then(|m| m.get(method)) {
                h.observe(seconds);
                return;
            }
        }
        let h = self
            .requests
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
                method: method.to_owned(),
            })
            .clone();
        h.observe(seconds);
        if let Ok(mut known) = self.route_histograms.write() {
            known.entry(route.to_owned()).or_default().insert(method, h);
        }
    }

    /// Reports the log writer's dropped lines from now on (set once).
    pub fn count_log_drops(&self, counter: tracing_appender::non_blocking::ErrorCounter) {
        let _ = self.log_dropped_source.set(counter);
    }

    /// The OpenMetrics text, with the audit pipeline's figures as of now.
    /// Whether the last key reload failed.
    pub fn set_key_reload_failing(&self, failing: bool) {
        self.key_reload_failing.set(i64::from(failing));
    }

    /// Whether the stand-in signs access tokens now.
    pub fn set_access_token_stand_in(&self, standing_in: bool) {
        self.access_token_stand_in.set(i64::from(standing_in));
    }

    pub fn render(&self, audit: &Counters) -> String {
        // One scrape at a time: two would both add the same difference to the synced counters.
        let Ok(registry) = self.registry.lock() else {
            return String::new();
        };
        let sync = |c: &Counter, now: u64| {
            let seen = c.get();
            if now > seen {
                c.inc_by(now - seen);
            }
        };
        sync(&self.audit_stored, audit.stored.load(Ordering::Acquire));
        sync(&self.audit_dropped, audit.dropped.load(Ordering::Acquire));
        sync(
            &self.audit_store_failures,
            audit.store_failures.load(Ordering::Acquire),
        );
        sync(
            &self.detector_dropped,
            audit.detector_dropped.load(Ordering::Acquire),
        );
        sync(&self.suppressed, audit.suppressed.load(Ordering::Acquire));
        if let Some(source) = self.log_dropped_source.get() {
            sync(&self.log_dropped, source.dropped_lines() as u64);
        }
        self.audit_pending
            .set(i64::try_from(audit.pending()).unwrap_or(i64::MAX));
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::audit::EventKind;

    #[test]
    fn renders_events_alerts_latency_and_the_pipeline() {
        let m = Metrics::new();
        m.observe_event(&Event::new(EventKind::LoginFailed, 1));
        m.observe_event(&Event::new(EventKind::LoginFailed, 2));
        m.observe_event(&Event::new(EventKind::AlertRaised, 3).reason("new_country"));
        m.observe_request("/token", "POST", 0.002);
        m.observe_request("unmatched", "FOO1", 0.001);
        m.observe_request("unmatched", "FOO2", 0.001);
        let c = Counters::default();
        c.recorded.store(10, Ordering::Release);
        c.stored.store(7, Ordering::Release);
        c.dropped.store(1, Ordering::Release);
        let text = m.render(&c);
        assert!(
            text.contains("portcullis_events_total{event=\"login.failed\",outcome=\"failure\"} 2"),
            "{text}"
        );
        assert!(text.contains("portcullis_alerts_total{detection=\"new_country\"} 1"));
        assert!(text.contains(
            "portcullis_http_request_duration_seconds_count{route=\"/token\",method=\"POST\"} 1"
        ));
        assert!(text.contains("portcullis_audit_events_pending 2"));
        assert!(text.contains(
            "portcullis_http_request_duration_seconds_count{route=\"unmatched\",method=\"other\"} 2"
        ));
        assert!(!text.contains("FOO1"));
        assert!(text.contains("portcullis_audit_events_stored_total 7"));
        assert!(text.contains("portcullis_audit_events_dropped_total 1"));
        assert!(text.ends_with("# EOF\n"));
        // Rendering again does not count twice, nor do scrapes at the same moment.
        assert!(m
            .render(&c)
            .contains("portcullis_audit_events_stored_total 7"));
        c.stored.store(9, Ordering::Release);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| m.render(&c));
            }
        });
        assert!(m
            .render(&c)
            .contains("portcullis_audit_events_stored_total 9"));
        // Every kind is a series from the start (a rate over it works before its first event).
        for kind in EventKind::ALL {
            assert!(
                text.contains(&format!(
                    "portcullis_events_total{{event=\"{kind}\",outcome=\"success\"}}"
                )),
                "{kind}"
            );
        }
        assert!(text.contains(
            "portcullis_events_total{event=\"token.reuse_detected\",outcome=\"failure\"} 0"
        ));
    }
}
