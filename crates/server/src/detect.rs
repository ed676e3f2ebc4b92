//! Running the detections (`portcullis_core::detect`) on the audit stream, and answering them.
//!
//! The audit writer hands every batch it has stored to [`Detector::observe`], in order, so the
//! history a sign-in is compared with is already in the database. A finding becomes an
//! `alert.raised` event (stored and logged like every event, counted in the metrics), is
//! POSTed to the alert webhook if one is configured, and gets its configured response:
//! `delay` or `block` for the address (see [`Responses`]), or `revoke_sessions` for the user.
//! The default is the alert alone; refresh-token theft has already been answered by the token
//! endpoint (family and session revoked in the transaction that saw the reuse).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portcullis_core::audit::{Event, EventFilter, EventKind};
use portcullis_core::detect::{self, Counting, Detection, Finding, Response, Rules, SignIn};
use portcullis_core::ids::UserId;
use portcullis_core::store::Storage;

use crate::audit::Audit;
use crate::geoip::GeoIp;
use crate::state::now;
use crate::webhook::Webhook;

/// Earlier sign-ins a new one is compared with.
const HISTORY: u32 = 50;
/// Earlier sign-ins read to find them (distrusted ones are left out first), per page.
const HISTORY_SCAN: u32 = 1_000;
/// Pages read back at most, of sign-ins or of distrust markers.
const HISTORY_PAGES: usize = 5;
/// Users whose distrusted networks are kept in memory (the stored markers are the truth; this
/// only saves recording one twice), and networks kept per user.
const DISTRUST_USERS: usize = 10_000;
const DISTRUST_NETWORKS: usize = 256;
/// Alerts of one detection stored and logged per minute; past that (a flood from many
/// networks or made-up accounts) they are counted, their responses still applied, and the next
/// alert stored says how many were held back (`suppressed=N`).
pub const ALERTS_PER_MINUTE: u32 = 300;
/// Alerts of one detection POSTed to the webhook per minute, so a flood of one kind cannot
/// fill its queue ahead of the others (all of them stay in the store and the log).
pub const WEBHOOK_ALERTS_PER_MINUTE: u32 = 30;

/// Addresses slowed down or refused by a detection's response, each until a time. Shared by
/// the detector (which adds) and the sign-in and token endpoints (which ask). Keys are the
/// address buckets of the limiters (IPv4 address, IPv6 /64). Bounded: at capacity the expired
/// entries go, then the oldest.
pub struct Responses {
    /// Refused at sign-in (and the password-change form): for guessing passwords.
    blocked: Mutex<HashMap<String, i64>>,
    /// Refused at the token endpoints: for guessing client secrets.
    blocked_tokens: Mutex<HashMap<String, i64>>,
    delayed: Mutex<HashMap<String, i64>>,
    /// How long a block or delay lasts, seconds.
    pub period: i64,
    /// The extra wait of a delayed sign-in.
    pub delay: Duration,
    ipv6_prefix: u8,
}

const MAX_RESPONSES: usize = 100_000;

impl Responses {
    pub fn new(period: i64, delay: Duration, ipv6_prefix: u8) -> Self {
        Responses {
            blocked: Mutex::new(HashMap::new()),
            blocked_tokens: Mutex::new(HashMap::new()),
            delayed: Mutex::new(HashMap::new()),
            period,
            delay,
            ipv6_prefix,
        }
    }

    fn key(&self, ip: IpAddr) -> String {
        portcullis_guard::client_addr::bucket(ip, self.ipv6_prefix).to_string()
    }

    fn put(map: &Mutex<HashMap<String, i64>>, key: String, until: i64, now: i64) {
        if let Ok(mut m) = map.lock() {
            if m.len() >= MAX_RESPONSES {
                m.retain(|_, u| *u > now);
                if m.len() >= MAX_RESPONSES {
                    if let Some(oldest) = m.iter().min_by_key(|(_, u)| **u).map(|(k, _)| k.clone())
                    {
                        m.remove(&oldest);
                    }
                }
            }
            let slot = m.entry(key).or_insert(until);
            *slot = (*slot).max(until);
        }
    }

    fn left(map: &Mutex<HashMap<String, i64>>, key: &str, now: i64) -> Option<i64> {
        let m = map.lock().ok()?;
        m.get(key).copied().filter(|u| *u > now).map(|u| u - now)
    }

    /// Blocks sign-ins from the address (a browser with a valid device cookie for the
    /// account still gets through: its owner is not locked out by a neighbour's guessing).
    pub fn block(&self, ip: IpAddr, now: i64) {
        Self::put(&self.blocked, self.key(ip), now + self.period, now);
    }

    /// Blocks the token endpoints for the address.
    pub fn block_tokens(&self, ip: IpAddr, now: i64) {
        Self::put(&self.blocked_tokens, self.key(ip), now + self.period, now);
    }

    /// Seconds the address stays blocked at the token endpoints, if it is.
    pub fn tokens_blocked_for(&self, ip: IpAddr, now: i64) -> Option<i64> {
        Self::left(&self.blocked_tokens, &self.key(ip), now)
    }

    pub fn slow_down(&self, ip: IpAddr, now: i64) {
        Self::put(&self.delayed, self.key(ip), now + self.period, now);
    }

    /// Seconds the address stays blocked at sign-in, if it is.
    pub fn blocked_for(&self, ip: IpAddr, now: i64) -> Option<i64> {
        Self::left(&self.blocked, &self.key(ip), now)
    }

    /// The extra wait for a sign-in from the address, if it is slowed down.
    pub fn delay_for(&self, ip: IpAddr, now: i64) -> Option<Duration> {
        Self::left(&self.delayed, &self.key(ip), now).map(|_| self.delay)
    }
}

/// The detector: rules, counters, optional geolocation, and what it answers with.
pub struct Detector {
    rules: Rules,
    counting: Mutex<Counting>,
    store: Arc<dyn Storage>,
    geo: Option<GeoIp>,
    responses: Arc<Responses>,
    audit: Audit,
    webhook: Option<Webhook>,
    alert_limit: portcullis_guard::limiter::MemoryLimiter,
    webhook_limit: portcullis_guard::limiter::MemoryLimiter,
    held_back: Mutex<HashMap<Detection, u64>>,
    /// Per user, the networks (and since when) whose sign-ins a response of this process
    /// distrusted: read with the stored alerts, for sign-ins detected before those are stored.
    distrusted: Mutex<HashMap<String, HashMap<String, i64>>>,
}

impl Detector {
    pub fn new(
        rules: Rules,
        store: Arc<dyn Storage>,
        geo: Option<GeoIp>,
        responses: Arc<Responses>,
        audit: Audit,
        webhook: Option<Webhook>,
    ) -> Self {
        Detector {
            rules,
            counting: Mutex::new(Counting::new(100_000)),
            store,
            geo,
            responses,
            audit,
            webhook,
            alert_limit: portcullis_guard::limiter::MemoryLimiter::new(
                portcullis_guard::limiter::Limit {
                    max: ALERTS_PER_MINUTE,
                    window_secs: 60,
                },
                64,
            ),
            webhook_limit: portcullis_guard::limiter::MemoryLimiter::new(
                portcullis_guard::limiter::Limit {
                    max: WEBHOOK_ALERTS_PER_MINUTE,
                    window_secs: 60,
                },
                64,
            ),
            held_back: Mutex::new(HashMap::new()),
            distrusted: Mutex::new(HashMap::new()),
        }
    }

    fn place(&self, e: &Event) -> Option<portcullis_core::geo::Place> {
        let geo = self.geo.as_ref()?;
        let ip: IpAddr = e.address.as_deref()?.parse().ok()?;
        Some(geo.lookup(ip))
    }

    /// Runs the counting detections on an event that was not stored (a suppressed one of a
    /// flood): in memory, at once; an alert it raises is handled in a task of its own.
    pub fn count(self: &Arc<Self>, e: &Event) {
        if e.kind == EventKind::AlertRaised.as_str() || e.reason.as_deref() == Some("detection") {
            return;
        }
        let found = match self.counting.lock() {
            Ok(mut c) => c.observe(e, &self.rules),
            Err(_) => Vec::new(),
        };
        if !found.is_empty() {
            let me = self.clone();
            tokio::spawn(async move {
                for f in found {
                    me.raise(f).await;
                }
            });
        }
    }

    /// Runs every detection on a stored batch, in order.
    pub async fn observe(&self, batch: &[Event]) {
        for e in batch {
            // Alerts and the detector's own responses are not evidence of anything.
            if e.kind == EventKind::AlertRaised.as_str() || e.reason.as_deref() == Some("detection")
            {
                continue;
            }
            let mut found = match self.counting.lock() {
                Ok(mut c) => c.observe(e, &self.rules),
                Err(_) => Vec::new(),
            };
            if e.kind == EventKind::LoginSucceeded.as_str() {
                found.extend(self.sign_in(e).await);
            }
            for f in found {
                self.raise(f).await;
            }
        }
    }

    /// A user's stored events of `kind` before `until`, read back from the newest a page of
    /// 1,000 at a time (at most `HISTORY_PAGES` pages) until `enough` of them pass `keep`;
    /// the kept ones, oldest first.
    async fn page_back(
        &self,
        user: &str,
        kind: EventKind,
        until: i64,
        enough: usize,
        keep: impl Fn(&portcullis_core::audit::StoredEvent) -> bool,
    ) -> Result<Vec<portcullis_core::audit::StoredEvent>, portcullis_core::store::StoreError> {
        let mut kept = Vec::new();
        let mut until = until;
        let mut oldest_id = i64::MAX;
        for _ in 0..HISTORY_PAGES {
            let page = self
                .store
                .query_events(&EventFilter {
                    user_id: Some(user.to_owned()),
                    kind: Some(kind.as_str().to_owned()),
                    until: Some(until),
                    limit: HISTORY_SCAN,
                    ..EventFilter::default()
                })
                .await?;
            let full = page.len() >= HISTORY_SCAN as usize;
            // Pages overlap by the second they meet at; ids tell what was read already.
            let fresh: Vec<_> = page.into_iter().filter(|s| s.id < oldest_id).collect();
            let Some(first) = fresh.iter().map(|s| (s.id, s.event.at)).min() else {
                break;
            };
            oldest_id = first.0;
            until = first.1 + 1;
            kept.extend(fresh.into_iter().filter(|s| keep(s)));
            if !full || kept.len() >= enough {
                break;
            }
        }
        kept.sort_by_key(|s| s.id);
        Ok(kept)
    }

    async fn sign_in(&self, e: &Event) -> Vec<Finding> {
        let Some(user) = &e.user_id else {
            return Vec::new();
        };
        let network = |ev: &Event| -> Option<String> {
            ev.address
                .as_deref()
                .and_then(|a| a.parse::<IpAddr>().ok())
                .map(portcullis_core::geo::network_of)
        };
        // Where this user's sessions were ended by a detection's response: sign-ins from that
        // network from a minute before the first such response on (the flagged one, and any
        // made alongside it) are no history, so the intruder's next sign-in does not find its
        // own place known. From the stored `detect.network_distrusted` events (one per network
        // and process, read back through all of them, a bounded number of pages), and this
        // process's own, not stored yet.
        let markers = match self
            .page_back(
                user,
                EventKind::NetworkDistrusted,
                e.at + 1,
                usize::MAX,
                |_| true,
            )
            .await
        {
            Ok(list) => list,
            Err(err) => {
                tracing::warn!(event = "detect.history_failed", error = %err);
                return Vec::new();
            }
        };
        let distrusted: HashMap<String, i64> = {
            let Ok(mut mem) = self.distrusted.lock() else {
                return Vec::new();
            };
            let mut mine = mem.get(user).cloned().unwrap_or_default();
            for m in &markers {
                let d = m.event.detail.as_deref().unwrap_or("");
                let net = detect::detail_value(Some(d), "network");
                let since = detect::detail_value(Some(d), "since").and_then(|v| v.parse().ok());
                if let (Some(net), Some(since)) = (net, since) {
                    let slot = mine.entry(net.to_owned()).or_insert(since);
                    *slot = (*slot).min(since);
                }
            }
            // Kept in memory only for users with something distrusted, so a response knows
            // what is recorded already (bounded: the stored events are the truth).
            if !mine.is_empty() {
                if mem.len() >= DISTRUST_USERS && !mem.contains_key(user) {
                    if let Some(other) = mem.keys().next().cloned() {
                        mem.remove(&other);
                    }
                }
                mem.insert(user.clone(), mine.clone());
            }
            mine
        };
        let trusted = |s: &portcullis_core::audit::StoredEvent| {
            let net = network(&s.event);
            net.is_none_or(|n| distrusted.get(&n).is_none_or(|since| s.event.at < *since))
        };
        // This sign-in is stored already (and later ones of the same batch may be): the earlier
        // ones are those stored before it, found by its session (new at every sign-in). Read
        // back, page by page, until 50 trusted ones are found, so distrusted sign-ins (a
        // flood from the intruder's network) cannot push the history out of reach.
        let this = match self
            .store
            .query_events(&EventFilter {
                user_id: Some(user.clone()),
                kind: Some(EventKind::LoginSucceeded.as_str().to_owned()),
                until: Some(e.at + 1),
                limit: HISTORY_SCAN,
                ..EventFilter::default()
            })
            .await
        {
            Ok(list) => list
                .iter()
                .find(|s| s.event.session_id == e.session_id && s.event.at == e.at)
                .map(|s| s.id),
            Err(err) => {
                tracing::warn!(event = "detect.history_failed", error = %err);
                return Vec::new();
            }
        };
        let before_this = |s: &portcullis_core::audit::StoredEvent| match this {
            Some(id) => s.id < id,
            None => s.event.at < e.at,
        };
        let mut earlier = match self
            .page_back(
                user,
                EventKind::LoginSucceeded,
                e.at + 1,
                HISTORY as usize,
                |s| before_this(s) && trusted(s),
            )
            .await
        {
            Ok(list) => list,
            Err(err) => {
                tracing::warn!(event = "detect.history_failed", error = %err);
                return Vec::new();
            }
        };
        // Past the pages read (a flood longer than that): the history from before the first
        // distrust, which no flood after it can reach.
        if earlier.len() < HISTORY as usize {
            if let Some(first) = distrusted.values().min().map(|f| (*f).min(e.at)) {
                match self
                    .store
                    .query_events(&EventFilter {
                        user_id: Some(user.clone()),
                        kind: Some(EventKind::LoginSucceeded.as_str().to_owned()),
                        until: Some(first),
                        limit: HISTORY,
                        ..EventFilter::default()
                    })
                    .await
                {
                    Ok(before) => {
                        earlier.extend(before.into_iter().filter(|s| before_this(s) && trusted(s)));
                        earlier.sort_by_key(|s| s.id);
                        earlier.dedup_by_key(|s| s.id);
                    }
                    Err(err) => {
                        tracing::warn!(event = "detect.history_failed", error = %err);
                        return Vec::new();
                    }
                }
            }
        }
        earlier.reverse(); // newest first
        earlier.truncate(HISTORY as usize);
        let earlier: Vec<SignIn<'_>> = earlier
            .iter()
            .map(|s| SignIn {
                event: &s.event,
                place: self.place(&s.event),
            })
            .collect();
        let now = SignIn {
            event: e,
            place: self.place(e),
        };
        detect::sign_in_anomalies(&now, &earlier, &self.rules)
    }

    async fn raise(&self, f: Finding) {
        let now = now();
        let response = self.rules.response(f.detection);
        let applied = self.respond(&f, response, now).await;
        use portcullis_guard::limiter::AttemptLimiter;
        let sent = self
            .alert_limit
            .reserve(f.detection.as_str(), now)
            .await
            .is_allowed();
        let held = match self.held_back.lock() {
            Ok(mut h) => {
                let n = h.entry(f.detection).or_insert(0);
                if sent {
                    std::mem::take(n)
                } else {
                    *n += 1;
                    0
                }
            }
            Err(_) => 0,
        };
        let mut facts = format!("response={} {}", applied.as_str(), f.facts);
        if held > 0 {
            facts.push_str(&format!(" suppressed={held}"));
        }
        let mut alert = Event::new(EventKind::AlertRaised, now)
            .reason(f.detection.as_str())
            .detail(&facts);
        alert.user_id = f.user_id.clone();
        alert.client_id = f.client_id.clone();
        alert.address = f.address.clone();
        alert.session_id = f.session_id.clone();
        let alert = alert.cleaned();
        if !sent {
            self.audit.suppress(&alert);
            return;
        }
        if let Some(w) = &self.webhook {
            if self
                .webhook_limit
                .reserve(f.detection.as_str(), now)
                .await
                .is_allowed()
            {
                w.send(&alert);
            } else {
                tracing::warn!(
                    event = "alert.webhook_held_back",
                    detection = f.detection.as_str(),
                    "more alerts of this detection this minute than the webhook is sent"
                );
            }
        }
        self.audit.record(alert);
    }

    /// Applies the response; returns what was really done (a response that needs an address or
    /// a user the finding lacks falls back to the alert alone).
    async fn respond(&self, f: &Finding, response: Response, now: i64) -> Response {
        let ip: Option<IpAddr> = f.address.as_deref().and_then(|a| a.parse().ok());
        match (response, ip, f.user_id.as_deref()) {
            // Guessed client secrets block the token endpoints; guessed passwords, sign-in.
            (Response::Block, Some(ip), _)
                if f.detection == Detection::ClientAuthFailuresAddress =>
            {
                self.responses.block_tokens(ip, now);
                Response::Block
            }
            (Response::Block, Some(ip), _) => {
                self.responses.block(ip, now);
                Response::Block
            }
            (Response::Delay, Some(ip), _) => {
                self.responses.slow_down(ip, now);
                Response::Delay
            }
            (Response::RevokeSessions, _, Some(user)) => {
                let Some(id) = UserId::parse(user) else {
                    return Response::Alert;
                };
                // The flagged network is distrusted for this user from a minute before the
                // first such response on (recorded, so it survives a restart).
                if let Some(net) = ip.map(portcullis_core::geo::network_of) {
                    // Recorded once per network (what this process knows of, read back at
                    // each sign-in), so repeated responses cannot bury the older markers.
                    let fresh = match self.distrusted.lock() {
                        Ok(mut d) => {
                            if d.len() >= DISTRUST_USERS && !d.contains_key(user) {
                                if let Some(other) = d.keys().next().cloned() {
                                    d.remove(&other);
                                }
                            }
                            let mine = d.entry(user.to_owned()).or_default();
                            if mine.contains_key(&net) {
                                false
                            } else {
                                if mine.len() < DISTRUST_NETWORKS {
                                    mine.insert(net.clone(), now - 60);
                                }
                                true
                            }
                        }
                        Err(_) => true,
                    };
                    if fresh {
                        let since = now - 60;
                        self.audit.record(
                            Event::new(EventKind::NetworkDistrusted, now)
                                .user(user)
                                .from(&portcullis_core::audit::Origin {
                                    address: f.address.clone(),
                                    user_agent: None,
                                    request_id: None,
                                })
                                .reason(f.detection.as_str())
                                .detail(&format!("network={net} since={since}")),
                        );
                    }
                }
                // Sessions first: from then on no code of theirs can start a grant (a first
                // refresh token needs a live session, offline or not); then the offline
                // grants, which outlive sessions, including any issued just before.
                let ended = self.store.revoke_user_sessions(&id, None, now).await;
                if let Err(e) = self.store.revoke_user_offline_tokens(&id, now).await {
                    tracing::error!(event = "detect.response_failed", error = %e);
                    return Response::Alert;
                }
                match ended {
                    Ok(ended) => {
                        for s in ended {
                            self.audit.record(
                                Event::new(EventKind::SessionRevoked, now)
                                    .user(&id)
                                    .session(&s)
                                    .reason("detection")
                                    .detail(&format!("detection={}", f.detection.as_str())),
                            );
                        }
                        Response::RevokeSessions
                    }
                    Err(e) => {
                        tracing::error!(event = "detect.response_failed", error = %e);
                        Response::Alert
                    }
                }
            }
            _ => Response::Alert,
        }
    }
}
