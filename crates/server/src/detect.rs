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

use portcullis_core::audit::{Event, EventFilter, EventKind, StoredEvent};
use portcullis_core::detect::{self, Counting, Detection, Finding, Response, Rules, SignIn};
use portcullis_core::ids::UserId;
use portcullis_core::store::{Storage, StoreError};

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
/// A distrusted network of a user, as this process knows it.
#[derive(Clone, Copy)]
struct Distrust {
    /// Sign-ins from the network at or after this time are no history.
    since: i64,
    /// The id of its newest marker read back from the store, if one was (then it may be
    /// forgotten here: the smallest ids first, as they are the first to fall out of what is
    /// read back).
    marker: Option<i64>,
    /// When its marker was recorded (by this process, or as stored).
    noted: i64,
}

/// Users whose distrusted networks are kept in memory (the stored markers are the truth; this
/// only saves recording one twice), networks kept per user (as many as are read back, so a
/// network read back is still known when its response runs and is never recorded twice), and
/// networks kept in all.
const DISTRUST_USERS: usize = 10_000;
const DISTRUST_NETWORKS: usize = HISTORY_PAGES * HISTORY_SCAN as usize;
const DISTRUST_ENTRIES: usize = 100_000;
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
        // Only in-memory bookkeeping: a panic elsewhere while it was held leaves it usable.
        let mut m = map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if m.len() >= MAX_RESPONSES {
            m.retain(|_, u| *u > now);
            if m.len() >= MAX_RESPONSES {
                if let Some(oldest) = m.iter().min_by_key(|(_, u)| **u).map(|(k, _)| k.clone()) {
                    m.remove(&oldest);
                }
            }
        }
        let slot = m.entry(key).or_insert(until);
        *slot = (*slot).max(until);
    }

    fn left(map: &Mutex<HashMap<String, i64>>, key: &str, now: i64) -> Option<i64> {
        let m = map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
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
    distrusted: Mutex<HashMap<String, HashMap<String, Distrust>>>,
}

/// Keeps one user's distrusted networks to `DISTRUST_NETWORKS` with room for `adding` more
/// by forgetting ones whose markers are stored (read back at the next sign-in), the oldest
/// markers first; those not stored yet always stay.
fn forget_stored(mine: &mut HashMap<String, Distrust>, adding: usize) {
    let over = (mine.len() + adding).saturating_sub(DISTRUST_NETWORKS);
    if over == 0 {
        return;
    }
    let mut stored: Vec<(i64, String)> = mine
        .iter()
        .filter_map(|(n, d)| d.marker.map(|id| (id, n.clone())))
        .collect();
    stored.sort_unstable();
    for (_, n) in stored.into_iter().take(over) {
        mine.remove(&n);
    }
}

/// Makes room for `user`'s networks (one user more, or `adding` networks more): forgets other
/// users, first those whose networks are all stored, then those noted longest ago (whose
/// markers have long been written by the audit writer). The users are ranked once.
fn make_room(mem: &mut HashMap<String, HashMap<String, Distrust>>, user: &str, adding: usize) {
    let mut total: usize = mem.values().map(HashMap::len).sum();
    let mut users = mem.len() + usize::from(!mem.contains_key(user));
    if users <= DISTRUST_USERS && total + adding <= DISTRUST_ENTRIES {
        return;
    }
    let mut ranked: Vec<((bool, i64), String)> = mem
        .iter()
        .filter(|(u, _)| u.as_str() != user)
        .map(|(u, nets)| {
            let unstored = nets.values().any(|d| d.marker.is_none());
            let newest = nets.values().map(|d| d.noted).max().unwrap_or(i64::MIN);
            ((unstored, newest), u.clone())
        })
        .collect();
    ranked.sort_unstable();
    for (_, victim) in ranked {
        if users <= DISTRUST_USERS && total + adding <= DISTRUST_ENTRIES {
            return;
        }
        total -= mem.remove(&victim).map_or(0, |n| n.len());
        users -= 1;
    }
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
        let found = self
            .counting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .observe(e, &self.rules);
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
            let mut found = self
                .counting
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .observe(e, &self.rules);
            if e.kind == EventKind::LoginSucceeded.as_str() {
                found.extend(self.sign_in(e).await);
            }
            for f in found {
                self.raise(f).await;
            }
        }
    }

    /// One page (1,000) of a user's stored events of `kind`: the newest, or the newest before
    /// the time `until` or before the event `before_id`; oldest first.
    async fn read_page(
        &self,
        user: &str,
        kind: EventKind,
        until: Option<i64>,
        before_id: Option<i64>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.store
            .query_events(&EventFilter {
                user_id: Some(user.to_owned()),
                kind: Some(kind.as_str().to_owned()),
                until,
                before_id,
                limit: HISTORY_SCAN,
                ..EventFilter::default()
            })
            .await
    }

    /// From `first` (a page just read) on back, page by page in storage order (at most
    /// `HISTORY_PAGES` pages), until `enough` events pass `keep`: the kept ones, oldest first.
    async fn page_back(
        &self,
        user: &str,
        kind: EventKind,
        first: Vec<StoredEvent>,
        enough: usize,
        keep: impl Fn(&StoredEvent) -> bool,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut kept = Vec::new();
        let mut page = first;
        for read in 1..=HISTORY_PAGES {
            let full = page.len() >= HISTORY_SCAN as usize;
            let oldest = page.iter().map(|s| s.id).min();
            kept.extend(page.into_iter().filter(|s| keep(s)));
            let Some(oldest) = oldest else { break };
            if !full || kept.len() >= enough || read == HISTORY_PAGES {
                break;
            }
            page = self.read_page(user, kind, None, Some(oldest)).await?;
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
        let markers = match async {
            let first = self
                .read_page(user, EventKind::NetworkDistrusted, None, None)
                .await?;
            self.page_back(
                user,
                EventKind::NetworkDistrusted,
                first,
                usize::MAX,
                |_| true,
            )
            .await
        }
        .await
        {
            Ok(list) => list,
            Err(err) => {
                tracing::warn!(event = "detect.history_failed", error = %err);
                return Vec::new();
            }
        };
        let first_marker = markers.iter().map(|m| m.id).min();
        let distrusted: HashMap<String, i64> = {
            // Only a cache: a panic elsewhere while it was held leaves it usable.
            let mut mem = self
                .distrusted
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Taken out while it is updated (its old size is not counted when room is made).
            let mut mine = mem.remove(user.as_str()).unwrap_or_default();
            for m in &markers {
                let d = m.event.detail.as_deref().unwrap_or("");
                let net = detect::detail_value(Some(d), "network");
                let since = detect::detail_value(Some(d), "since").and_then(|v| v.parse().ok());
                if let (Some(net), Some(since)) = (net, since) {
                    let slot = mine.entry(net.to_owned()).or_insert(Distrust {
                        since,
                        marker: Some(m.id),
                        noted: m.event.at,
                    });
                    slot.since = slot.since.min(since);
                    slot.marker = Some(slot.marker.map_or(m.id, |id| id.max(m.id)));
                }
            }
            let view = mine.iter().map(|(n, d)| (n.clone(), d.since)).collect();
            // Kept in memory only for users with something distrusted, so a response knows
            // what is recorded already; bounded (what is stored may be forgotten here).
            if !mine.is_empty() {
                forget_stored(&mut mine, 0);
                make_room(&mut mem, user, mine.len());
                mem.insert(user.clone(), mine);
            }
            view
        };
        let trusted = |s: &portcullis_core::audit::StoredEvent| {
            let net = network(&s.event);
            net.is_none_or(|n| distrusted.get(&n).is_none_or(|since| s.event.at < *since))
        };
        // This sign-in is stored already (and later ones of the same batch may be): the earlier
        // ones are those stored before it, found by its session (new at every sign-in). Read
        // back, page by page, until 50 trusted ones are found, so distrusted sign-ins (a
        // flood from the intruder's network) cannot push the history out of reach.
        let history = async {
            let find = |page: &[StoredEvent]| {
                page.iter()
                    .find(|s| s.event.session_id == e.session_id && s.event.at == e.at)
                    .map(|s| s.id)
            };
            let mut first = self
                .read_page(user, EventKind::LoginSucceeded, None, None)
                .await?;
            let mut this = find(&first);
            if this.is_none() {
                // Many sign-ins stored since this one: look where its time puts it.
                first = self
                    .read_page(user, EventKind::LoginSucceeded, Some(e.at + 1), None)
                    .await?;
                this = find(&first);
            }
            Ok::<_, StoreError>((first, this))
        };
        let (first, this) = match history.await {
            Ok(x) => x,
            Err(err) => {
                tracing::warn!(event = "detect.history_failed", error = %err);
                return Vec::new();
            }
        };
        let before_this = |s: &StoredEvent| match this {
            Some(id) => s.id < id,
            None => s.event.at < e.at,
        };
        let mut earlier = match self
            .page_back(
                user,
                EventKind::LoginSucceeded,
                first,
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
                        // Stored before the first marker too: read as an id range from there
                        // back, not by filtering every sign-in since the first distrust. (One
                        // writer stores events in order, so a sign-in a minute older than the
                        // first flagged one was stored before its marker, even one held back
                        // by an outage; a store written by several processes, or a clock
                        // stepped back, may leave such a sign-in out of this read.)
                        before_id: first_marker,
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
        let held = {
            let mut h = self
                .held_back
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let n = h.entry(f.detection).or_insert(0);
            if sent {
                std::mem::take(n)
            } else {
                *n += 1;
                0
            }
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
                // first sign-in so answered on (recorded, so it survives a restart). From the
                // sign-in's own time, not the detection's: a batch held back by a store outage
                // is detected late, and the flagged sign-in must not become history.
                let since = f.at.min(now) - 60;
                if let Some(net) = ip.map(portcullis_core::geo::network_of) {
                    // Recorded once per network (what this process knows of, read back at
                    // each sign-in), so repeated responses cannot bury the older markers.
                    let fresh = {
                        let mut d = self
                            .distrusted
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        if d.get(user).is_some_and(|mine| mine.contains_key(&net)) {
                            false
                        } else {
                            make_room(&mut d, user, 1);
                            let mine = d.entry(user.to_owned()).or_default();
                            // Always kept (not stored yet); room is made from stored ones.
                            forget_stored(mine, 1);
                            mine.insert(
                                net.clone(),
                                Distrust {
                                    since,
                                    marker: None,
                                    noted: now,
                                },
                            );
                            true
                        }
                    };
                    if fresh {
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

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::audit::Origin;

    fn sign_in_from(user: &str, address: &str, at: i64, session: &str) -> Event {
        Event::new(EventKind::LoginSucceeded, at)
            .user(user)
            .session(session)
            .from(&Origin {
                address: Some(address.to_owned()),
                user_agent: None,
                request_id: None,
            })
    }

    /// A user whose three trusted sign-ins (from `trusted`) were followed, in the same second,
    /// by 2,500 sign-ins from a distrusted network, then one from 203.0.113.0/24; then a
    /// sign-in from 192.0.2.0/24. Only paging by id gets past that second: by time, the next
    /// page either starts at the same second again or skips what is left of it.
    async fn flooded(store: &dyn Storage, user: &str, trusted: &str) -> Event {
        let t0 = 1_000_000;
        let mut batch = vec![Event::new(EventKind::NetworkDistrusted, t0)
            .user(user)
            .detail(&format!("network=198.51.100.0/24 since={t0}"))];
        for i in 0..3 {
            batch.push(sign_in_from(user, trusted, t0 + 10, &format!("a{i}")));
        }
        for i in 0..2_500 {
            batch.push(sign_in_from(
                user,
                "198.51.100.9",
                t0 + 10,
                &format!("b{i}"),
            ));
        }
        batch.push(sign_in_from(user, "203.0.113.50", t0 + 4_000, "late"));
        let e = sign_in_from(user, "192.0.2.8", t0 + 5_000, "final");
        batch.push(e.clone());
        store.append_events(&batch).await.unwrap();
        e
    }

    async fn detector() -> (Detector, Arc<dyn Storage>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("portcullis.db");
        let store = portcullis_store::connect(path.to_str().unwrap())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let store: Arc<dyn Storage> = Arc::new(store);
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let det = Detector::new(
            Rules::default(),
            store.clone(),
            None,
            Arc::new(Responses::new(900, Duration::ZERO, 64)),
            Audit::start(store.clone(), 1_000, metrics),
            None,
        );
        (det, store, dir)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn trusted_history_is_found_behind_a_flood_of_distrusted_sign_ins() {
        let (det, store, _dir) = detector().await;
        let new_network =
            |found: &[Finding]| found.iter().any(|f| f.detection == Detection::NewNetwork);
        // The trusted sign-ins came after the first distrust and lie 2,500 distrusted ones
        // deep: read back page by page, they are found and the network is known.
        let e = flooded(&*store, "usr_paged", "192.0.2.7").await;
        let found = det.sign_in(&e).await;
        assert!(
            !new_network(&found),
            "{:?}",
            found.iter().map(|f| f.detection).collect::<Vec<_>>()
        );
        // With the trusted ones from elsewhere, the same sign-in is from a new network (so
        // the history read is what decides).
        let e = flooded(&*store, "usr_control", "203.0.113.7").await;
        assert!(new_network(&det.sign_in(&e).await));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_network_is_distrusted_from_the_flagged_sign_in_even_when_detected_late() {
        let (det, store, _dir) = detector().await;
        let flagged_at = 1_000_000;
        let f = Finding {
            detection: Detection::ImpossibleTravel,
            user_id: Some("usr_late".into()),
            client_id: None,
            address: Some("198.51.100.9".into()),
            session_id: None,
            at: flagged_at,
            facts: String::new(),
        };
        // Detected an hour after it happened (a batch held back by a store outage).
        let applied = det
            .respond(&f, Response::RevokeSessions, flagged_at + 3_600)
            .await;
        assert_eq!(applied, Response::RevokeSessions);
        {
            let mem = det.distrusted.lock().unwrap();
            let d = mem["usr_late"]["198.51.100.0/24"];
            assert_eq!(d.since, flagged_at - 60);
            assert!(d.marker.is_none());
        }
        // The stored marker says the same, so it holds after a restart too.
        let stored_markers = || async {
            assert!(det.audit.flush(Duration::from_secs(10)).await);
            store
                .query_events(&EventFilter {
                    user_id: Some("usr_late".into()),
                    kind: Some(EventKind::NetworkDistrusted.as_str().to_owned()),
                    limit: 10,
                    ..EventFilter::default()
                })
                .await
                .unwrap()
        };
        let markers = stored_markers().await;
        assert_eq!(markers.len(), 1);
        let detail = markers[0].event.detail.as_deref();
        assert_eq!(
            detect::detail_value(detail, "since"),
            Some((flagged_at - 60).to_string().as_str())
        );
        // A second response for the same network records nothing more.
        det.respond(&f, Response::RevokeSessions, flagged_at + 3_700)
            .await;
        let again = stored_markers().await;
        assert_eq!(again.len(), 1);
    }

    fn nets(list: &[(i64, bool)]) -> HashMap<String, Distrust> {
        list.iter()
            .enumerate()
            .map(|(i, &(since, stored))| {
                let marker = stored.then_some(since);
                let d = Distrust {
                    since,
                    marker,
                    noted: since,
                };
                (format!("net{i}"), d)
            })
            .collect()
    }

    #[test]
    fn only_the_oldest_stored_networks_are_forgotten() {
        let mut mine = nets(&[(5, false)]);
        for i in 1..DISTRUST_NETWORKS {
            // Read back: marker ids the reverse of the times (a late detection's marker is
            // newer than its time says); the smallest ids go first.
            let d = Distrust {
                since: 10 + i as i64,
                marker: Some(100_000 - i as i64),
                noted: 10 + i as i64,
            };
            mine.insert(format!("stored{i}"), d);
        }
        assert_eq!(mine.len(), DISTRUST_NETWORKS);
        // As many as are read back stay.
        forget_stored(&mut mine, 0);
        assert_eq!(mine.len(), DISTRUST_NETWORKS);
        // Room for one more: the stored one with the oldest marker went, the unstored one
        // (older still) stayed.
        forget_stored(&mut mine, 1);
        assert_eq!(mine.len(), DISTRUST_NETWORKS - 1);
        assert!(mine.contains_key("net0"));
        let last = format!("stored{}", DISTRUST_NETWORKS - 1);
        assert!(!mine.contains_key(&last));
        assert!(mine.contains_key("stored1"));
        // Under the bound nothing goes.
        let mut few = nets(&[(1, true), (2, true)]);
        forget_stored(&mut few, 1);
        assert_eq!(few.len(), 2);
    }

    #[test]
    fn room_is_made_from_other_users_all_stored_first() {
        let mut mem: HashMap<String, HashMap<String, Distrust>> = HashMap::new();
        for i in 0..DISTRUST_USERS - 2 {
            mem.insert(format!("usr_{i}"), nets(&[(100 + i as i64, true)]));
        }
        // Distrusted long ago but not read back yet, and the user being added to.
        mem.insert("usr_unstored".into(), nets(&[(1, false)]));
        mem.insert("usr_me".into(), nets(&[(0, true)]));
        assert_eq!(mem.len(), DISTRUST_USERS);
        make_room(&mut mem, "usr_new", 1);
        assert_eq!(mem.len(), DISTRUST_USERS - 1);
        // The all-stored user distrusted longest ago went (not the older unstored one).
        assert!(!mem.contains_key("usr_me"));
        assert!(mem.contains_key("usr_unstored"));
        // Adding to a user already there needs no user's room; the user itself never goes.
        make_room(&mut mem, "usr_0", 1);
        assert_eq!(mem.len(), DISTRUST_USERS - 1);
        // Past the entry budget, others go until the new networks fit.
        let mut mem: HashMap<String, HashMap<String, Distrust>> = HashMap::new();
        mem.insert("usr_big".into(), nets(&[(1, true)]));
        let big: HashMap<String, Distrust> = (0..DISTRUST_ENTRIES - 1)
            .map(|i| {
                let d = Distrust {
                    since: 2,
                    marker: Some(i as i64),
                    noted: 2,
                };
                (format!("n{i}"), d)
            })
            .collect();
        mem.insert("usr_huge".into(), big);
        make_room(&mut mem, "usr_huge", 1);
        assert!(!mem.contains_key("usr_big"));
        assert!(mem.contains_key("usr_huge"));
    }

    #[test]
    fn a_poisoned_response_map_still_answers() {
        let r = Arc::new(Responses::new(900, Duration::from_secs(1), 64));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let poisoner = r.clone();
        let _ = std::thread::spawn(move || {
            let _guard = poisoner.blocked.lock().unwrap();
            panic!("poison the map");
        })
        .join();
        assert!(r.blocked.is_poisoned());
        r.block(ip, 1_000);
        assert_eq!(r.blocked_for(ip, 1_000), Some(900));
    }
}
