//! Threat detections on the audit event stream (PRACTICES §10). Pure logic: the caller feeds
//! events in the order they were stored, with `now`, and for a successful sign-in the user's
//! earlier sign-ins (and, with a geolocation database, their places). Each detection that
//! fires is a [`Finding`]; what to do about it is the configured [`Response`].
//!
//! - bursts of failed sign-ins per account (the keyed account hash of the typed e-mail) and per
//!   address; credential stuffing is the brute-force limiter's own signal
//!   (`login.credential_stuffing`), not a second detector;
//! - refresh failures per client and per user, and refresh-token reuse (theft: the token
//!   endpoint has already revoked the family and the session);
//! - bursts at the token endpoints: failed client authentications per address, refused token
//!   requests per client;
//! - unusual access: a sign-in without a valid device cookie (a new device, never just a new
//!   user agent), or from a network (IPv4 /24, IPv6 /48) the user has not signed in from;
//! - geography: a country the user has not signed in from, and impossible travel.
//!
//! A user's first sign-in sets the baseline and raises nothing.

use std::collections::HashMap;

use crate::audit::{Event, EventKind};
use crate::geo::{self, Place, Sighting};

/// Every detection, by its configuration and alert name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Detection {
    LoginFailuresAccount,
    LoginFailuresAddress,
    CredentialStuffing,
    RefreshFailuresClient,
    RefreshFailuresUser,
    RefreshTokenReuse,
    ClientAuthFailuresAddress,
    TokenFailuresClient,
    NewDevice,
    NewNetwork,
    NewCountry,
    ImpossibleTravel,
}

impl Detection {
    pub const ALL: &'static [Detection] = &[
        Detection::LoginFailuresAccount,
        Detection::LoginFailuresAddress,
        Detection::CredentialStuffing,
        Detection::RefreshFailuresClient,
        Detection::RefreshFailuresUser,
        Detection::RefreshTokenReuse,
        Detection::ClientAuthFailuresAddress,
        Detection::TokenFailuresClient,
        Detection::NewDevice,
        Detection::NewNetwork,
        Detection::NewCountry,
        Detection::ImpossibleTravel,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Detection::LoginFailuresAccount => "login_failures_account",
            Detection::LoginFailuresAddress => "login_failures_address",
            Detection::CredentialStuffing => "credential_stuffing",
            Detection::RefreshFailuresClient => "refresh_failures_client",
            Detection::RefreshFailuresUser => "refresh_failures_user",
            Detection::RefreshTokenReuse => "refresh_token_reuse",
            Detection::ClientAuthFailuresAddress => "client_auth_failures_address",
            Detection::TokenFailuresClient => "token_failures_client",
            Detection::NewDevice => "new_device",
            Detection::NewNetwork => "new_network",
            Detection::NewCountry => "new_country",
            Detection::ImpossibleTravel => "impossible_travel",
        }
    }

    pub fn parse(s: &str) -> Option<Detection> {
        Detection::ALL.iter().copied().find(|d| d.as_str() == s)
    }

    /// Whether `response` may answer this detection. A response must land on the actor the
    /// evidence is about, must work, and must not lock the owner out:
    /// - counted failures can be steered by anyone (the failure that crosses the threshold
    ///   may be the victim's own), so they never end sessions; only the address that did the
    ///   failing may be blocked, and slowed only where the slowing applies (sign-in);
    /// - blocking the address of a sign-in that succeeded would hit whoever signs in there
    ///   next (often the owner), so the sign-in detections never block;
    /// - ending the sessions works only for `impossible_travel`: its evidence expires (once the
    ///   journey has become possible, a sign-in from the new place is accepted). For
    ///   `new_network` and `new_country` it would end every sign-in of the owner's from a new
    ///   place for ever, and `new_device` is undone by the device cookie the flagged browser
    ///   already holds.
    pub fn allows(self, response: Response) -> bool {
        match response {
            Response::Alert => true,
            Response::Delay => matches!(
                self,
                Detection::LoginFailuresAddress | Detection::CredentialStuffing
            ),
            Response::Block => matches!(
                self,
                Detection::LoginFailuresAddress
                    | Detection::CredentialStuffing
                    | Detection::ClientAuthFailuresAddress
            ),
            Response::RevokeSessions => self == Detection::ImpossibleTravel,
        }
    }
}

/// What the server does when a detection fires, besides raising the alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Response {
    /// The alert only (the default).
    Alert,
    /// Slow down sign-ins from the address for the block period.
    Delay,
    /// Refuse sign-ins and token requests from the address for the block period.
    Block,
    /// End every session of the user.
    RevokeSessions,
}

impl Response {
    pub fn as_str(self) -> &'static str {
        match self {
            Response::Alert => "alert",
            Response::Delay => "delay",
            Response::Block => "block",
            Response::RevokeSessions => "revoke_sessions",
        }
    }

    pub fn parse(s: &str) -> Option<Response> {
        [
            Response::Alert,
            Response::Delay,
            Response::Block,
            Response::RevokeSessions,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// `count` events within `window` seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Threshold {
    pub count: u32,
    pub window: i64,
}

impl Threshold {
    /// `"10/300"`: 10 events in 300 seconds (count 1–100000, window 1–86400).
    pub fn parse(s: &str) -> Option<Threshold> {
        let (c, w) = s.split_once('/')?;
        let count = c
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|c| (1..=100_000).contains(c))?;
        let window = w
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|w| (1..=86_400).contains(w))?;
        Some(Threshold { count, window })
    }
}

/// The detections' settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Rules {
    pub login_failures_account: Threshold,
    pub login_failures_address: Threshold,
    pub refresh_failures_client: Threshold,
    pub refresh_failures_user: Threshold,
    /// Failed client authentications at the token endpoints from one address.
    pub client_auth_failures_address: Threshold,
    /// Refused token requests (other than refreshes) of one client.
    pub token_failures_client: Threshold,
    /// Impossible travel: faster than this, km/h.
    pub travel_kmh: f64,
    /// Responses other than [`Response::Alert`].
    pub responses: Vec<(Detection, Response)>,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            login_failures_account: Threshold {
                count: 10,
                window: 300,
            },
            login_failures_address: Threshold {
                count: 20,
                window: 300,
            },
            refresh_failures_client: Threshold {
                count: 20,
                window: 300,
            },
            refresh_failures_user: Threshold {
                count: 5,
                window: 300,
            },
            client_auth_failures_address: Threshold {
                count: 100,
                window: 300,
            },
            token_failures_client: Threshold {
                count: 20,
                window: 300,
            },
            travel_kmh: 1000.0,
            responses: Vec::new(),
        }
    }
}

impl Rules {
    pub fn response(&self, d: Detection) -> Response {
        self.responses
            .iter()
            .find(|(x, _)| *x == d)
            .map_or(Response::Alert, |(_, r)| *r)
    }

    /// `"impossible_travel=revoke_sessions,login_failures_address=block"`.
    pub fn parse_responses(s: &str) -> Result<Vec<(Detection, Response)>, String> {
        let mut out = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (d, r) = item
                .split_once('=')
                .ok_or_else(|| format!("{item:?} is not detection=response"))?;
            let d = Detection::parse(d.trim()).ok_or_else(|| {
                format!(
                    "{d:?} is not a detection; they are: {}",
                    Detection::ALL
                        .iter()
                        .map(|d| d.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            let r = Response::parse(r.trim()).ok_or_else(|| {
                format!("{r:?} is not a response (alert, delay, block, revoke_sessions)")
            })?;
            if out.iter().any(|(x, _)| *x == d) {
                return Err(format!("{} is given twice", d.as_str()));
            }
            if !d.allows(r) {
                let allowed: Vec<&str> =
                    [Response::Delay, Response::Block, Response::RevokeSessions]
                        .into_iter()
                        .filter(|x| d.allows(*x))
                        .map(|x| x.as_str())
                        .collect();
                return Err(format!(
                    "{} cannot answer {} (it would land on the wrong party, lock the owner out, \
                     or not work; see the README's responses): {} takes alert{}",
                    r.as_str(),
                    d.as_str(),
                    d.as_str(),
                    allowed.iter().map(|a| format!(", {a}")).collect::<String>()
                ));
            }
            out.push((d, r));
        }
        Ok(out)
    }
}

/// A detection that fired.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub detection: Detection,
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    pub address: Option<String>,
    pub session_id: Option<String>,
    /// When the event that raised it happened (it may be detected much later).
    pub at: i64,
    /// Short `key=value` facts for the alert's detail.
    pub facts: String,
}

impl Finding {
    fn of(detection: Detection, e: &Event, facts: String) -> Finding {
        Finding {
            detection,
            user_id: e.user_id.clone(),
            client_id: e.client_id.clone(),
            address: e.address.clone(),
            session_id: e.session_id.clone(),
            at: e.at,
            facts,
        }
    }
}

/// An address as the counting detections key it: IPv4 as is, IPv6 by its /64 (one customer
/// network, as the limiters count), IPv4-mapped IPv6 as IPv4.
pub fn address_key(address: &str) -> String {
    match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Ok(v4) => v4.to_string(),
        Err(_) => address.to_owned(),
    }
}

/// The value of `key` in a `key=value key=value` detail.
pub fn detail_value<'a>(detail: Option<&'a str>, key: &str) -> Option<&'a str> {
    detail?
        .split(' ')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

#[derive(Clone, Copy, Debug)]
struct Window {
    start: i64,
    count: u32,
    fired: bool,
}

/// Fixed-window counters of the counting detections, bounded in memory: at `capacity` keys the
/// windows that have ended are forgotten, and if that is not enough, all of them (detection
/// restarts counting rather than grow without bound).
pub struct Counting {
    windows: HashMap<(Detection, String), Window>,
    capacity: usize,
}

impl Counting {
    pub fn new(capacity: usize) -> Self {
        Counting {
            windows: HashMap::new(),
            capacity: capacity.max(16),
        }
    }

    /// Counts one event for `key`; true exactly once per window, when the count reaches the
    /// threshold.
    fn hit(&mut self, d: Detection, key: &str, t: Threshold, now: i64) -> bool {
        if self.windows.len() >= self.capacity && !self.windows.contains_key(&(d, key.to_owned())) {
            // Windows that have ended go first (no window is longer than a day); then the
            // oldest half, so a flood of new keys cannot wipe a counter in progress at will.
            self.windows
                .retain(|_, w| now < w.start + 86_400 && !(w.fired && now >= w.start + 3600));
            if self.windows.len() >= self.capacity {
                let mut starts: Vec<i64> = self.windows.values().map(|w| w.start).collect();
                starts.sort_unstable();
                let cut = starts[starts.len() / 2];
                self.windows.retain(|_, w| w.start > cut);
            }
        }
        let w = self.windows.entry((d, key.to_owned())).or_insert(Window {
            start: now,
            count: 0,
            fired: false,
        });
        if now >= w.start + t.window {
            *w = Window {
                start: now,
                count: 0,
                fired: false,
            };
        }
        w.count = w.count.saturating_add(1);
        if w.count >= t.count && !w.fired {
            w.fired = true;
            return true;
        }
        false
    }

    /// One counted event for `key`: the finding when it crosses the threshold, its facts the
    /// count, the window and `extra`.
    fn count(
        &mut self,
        d: Detection,
        key: &str,
        t: Threshold,
        e: &Event,
        extra: &str,
    ) -> Option<Finding> {
        self.hit(d, key, t, e.at).then(|| {
            Finding::of(
                d,
                e,
                format!("failures={} window={}s{extra}", t.count, t.window),
            )
        })
    }

    /// The detections that need no history, for one stored event.
    pub fn observe(&mut self, e: &Event, rules: &Rules) -> Vec<Finding> {
        let mut found = Vec::new();
        let Some(kind) = EventKind::parse(&e.kind) else {
            return found;
        };
        match kind {
            EventKind::LoginFailed => {
                if let Some(account) = detail_value(e.detail.as_deref(), "account") {
                    let t = rules.login_failures_account;
                    let extra = format!(" account={account}");
                    found.extend(self.count(
                        Detection::LoginFailuresAccount,
                        account,
                        t,
                        e,
                        &extra,
                    ));
                }
                if let Some(address) = &e.address {
                    let key = address_key(address);
                    let t = rules.login_failures_address;
                    let extra = format!(" network={key}");
                    // About the address: which account the last failure named is noise (an
                    // attacker chooses it).
                    found.extend(
                        self.count(Detection::LoginFailuresAddress, &key, t, e, &extra)
                            .map(|mut f| {
                                f.user_id = None;
                                f.session_id = None;
                                f
                            }),
                    );
                }
            }
            EventKind::LoginCredentialStuffing => found.push(Finding::of(
                Detection::CredentialStuffing,
                e,
                e.detail.clone().unwrap_or_default(),
            )),
            EventKind::TokenRefreshFailed => {
                if let Some(client) = &e.client_id {
                    let t = rules.refresh_failures_client;
                    found.extend(self.count(Detection::RefreshFailuresClient, client, t, e, ""));
                }
                if let Some(user) = &e.user_id {
                    let t = rules.refresh_failures_user;
                    found.extend(self.count(Detection::RefreshFailuresUser, user, t, e, ""));
                }
            }
            EventKind::ClientAuthFailed => {
                if let Some(address) = &e.address {
                    let key = address_key(address);
                    let t = rules.client_auth_failures_address;
                    let extra = format!(" network={key}");
                    // About the address, not the client id it happened to claim.
                    found.extend(
                        self.count(Detection::ClientAuthFailuresAddress, &key, t, e, &extra)
                            .map(|mut f| {
                                f.client_id = None;
                                f
                            }),
                    );
                }
            }
            EventKind::TokenRequestFailed => {
                if let Some(client) = &e.client_id {
                    let t = rules.token_failures_client;
                    found.extend(self.count(Detection::TokenFailuresClient, client, t, e, ""));
                }
            }
            EventKind::TokenReuseDetected => found.push(Finding::of(
                Detection::RefreshTokenReuse,
                e,
                "family_and_session_revoked=true".to_owned(),
            )),
            _ => {}
        }
        found
    }
}

/// A sign-in with where it came from, as the history detections see it.
pub struct SignIn<'a> {
    pub event: &'a Event,
    /// Its place, when a geolocation database is configured.
    pub place: Option<Place>,
}

/// The history detections for a successful sign-in `now` (with its place, if known), given
/// the user's earlier successful sign-ins, newest first. Nothing for a first sign-in.
pub fn sign_in_anomalies(now: &SignIn<'_>, earlier: &[SignIn<'_>], rules: &Rules) -> Vec<Finding> {
    let mut found = Vec::new();
    let e = now.event;
    if earlier.is_empty() {
        return found;
    }
    if detail_value(e.detail.as_deref(), "device") == Some("new") {
        found.push(Finding::of(
            Detection::NewDevice,
            e,
            "device_cookie=none".into(),
        ));
    }
    let network = |ev: &Event| -> Option<String> {
        ev.address
            .as_deref()
            .and_then(|a| a.parse().ok())
            .map(geo::network_of)
    };
    if let Some(net) = network(e) {
        if !earlier
            .iter()
            .any(|s| network(s.event).as_deref() == Some(net.as_str()))
        {
            found.push(Finding::of(
                Detection::NewNetwork,
                e,
                format!("network={net}"),
            ));
        }
    }
    if let Some(place) = &now.place {
        if let Some(country) = &place.country {
            let seen: Vec<String> = earlier
                .iter()
                .filter_map(|s| s.place.as_ref()?.country.clone())
                .collect();
            // Only against a known baseline: earlier sign-ins the database could place.
            if !seen.is_empty() && geo::is_new_country(&seen, country) {
                found.push(Finding::of(
                    Detection::NewCountry,
                    e,
                    format!("country={country}"),
                ));
            }
        }
        // The latest earlier sign-in the database could place on the map.
        let located = earlier
            .iter()
            .find(|s| s.place.as_ref().is_some_and(|p| p.location.is_some()));
        if let Some(previous) = located {
            if let (Some(prev_place), Some(addr), Some(prev_addr)) = (
                &previous.place,
                e.address.as_deref(),
                previous.event.address.as_deref(),
            ) {
                let prev = Sighting {
                    at: previous.event.at,
                    place: prev_place.clone(),
                    address: prev_addr.to_owned(),
                };
                let next = Sighting {
                    at: e.at,
                    place: place.clone(),
                    address: addr.to_owned(),
                };
                if let Some(t) = geo::impossible_travel(&prev, &next, rules.travel_kmh) {
                    found.push(Finding::of(
                        Detection::ImpossibleTravel,
                        e,
                        format!(
                            "km={:.0} hours={:.2} kmh={:.0} from={} to={}",
                            t.km,
                            t.hours,
                            t.kmh,
                            prev_place.country.as_deref().unwrap_or("?"),
                            place.country.as_deref().unwrap_or("?")
                        ),
                    ));
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Origin;
    use crate::geo::Location;

    fn failed(at: i64, account: &str, address: &str) -> Event {
        Event::new(EventKind::LoginFailed, at)
            .detail(&format!("account={account}"))
            .from(&Origin {
                address: Some(address.into()),
                ..Default::default()
            })
    }

    fn signed_in(at: i64, address: &str, device: &str) -> Event {
        Event::new(EventKind::LoginSucceeded, at)
            .user("usr_a")
            .detail(&format!("device={device}"))
            .from(&Origin {
                address: Some(address.into()),
                ..Default::default()
            })
    }

    #[test]
    fn bursts_fire_once_per_window_and_per_key() {
        let rules = Rules {
            login_failures_account: Threshold {
                count: 3,
                window: 60,
            },
            login_failures_address: Threshold {
                count: 4,
                window: 60,
            },
            ..Rules::default()
        };
        let mut c = Counting::new(1000);
        let mut fired = Vec::new();
        for (i, addr) in ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"]
            .iter()
            .enumerate()
        {
            fired.extend(c.observe(&failed(100 + i as i64, "acct1", addr), &rules));
        }
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(fired[0].detection, Detection::LoginFailuresAccount);
        // Per address: 4 from one address, across accounts.
        let mut fired = Vec::new();
        for i in 0..6 {
            fired.extend(c.observe(&failed(200 + i, &format!("a{i}"), "198.51.100.9"), &rules));
        }
        assert_eq!(
            fired.iter().map(|f| f.detection).collect::<Vec<_>>(),
            vec![Detection::LoginFailuresAddress]
        );
        // A new window counts afresh.
        let mut fired = Vec::new();
        for i in 0..3 {
            fired.extend(c.observe(&failed(1000 + i, "acct1", "192.0.2.1"), &rules));
        }
        assert_eq!(fired.len(), 1);
    }

    #[test]
    fn signals_from_other_parts_become_findings() {
        let mut c = Counting::new(100);
        let rules = Rules::default();
        let stuffing = Event::new(EventKind::LoginCredentialStuffing, 5).detail("accounts=10");
        assert_eq!(
            c.observe(&stuffing, &rules)[0].detection,
            Detection::CredentialStuffing
        );
        let reuse = Event::new(EventKind::TokenReuseDetected, 5).user("usr_x");
        let f = c.observe(&reuse, &rules);
        assert_eq!(f[0].detection, Detection::RefreshTokenReuse);
        assert_eq!(f[0].user_id.as_deref(), Some("usr_x"));
        let rules = Rules {
            refresh_failures_user: Threshold {
                count: 2,
                window: 60,
            },
            ..Rules::default()
        };
        let rf = Event::new(EventKind::TokenRefreshFailed, 9)
            .user("usr_y")
            .client("cl_z");
        assert!(c.observe(&rf, &rules).is_empty());
        assert_eq!(
            c.observe(&rf, &rules)[0].detection,
            Detection::RefreshFailuresUser
        );
    }

    #[test]
    fn ipv6_addresses_count_per_64() {
        let rules = Rules {
            login_failures_address: Threshold {
                count: 3,
                window: 60,
            },
            ..Rules::default()
        };
        let mut c = Counting::new(1000);
        let mut fired = Vec::new();
        for (i, a) in [
            "2001:db8:1:2::1",
            "2001:db8:1:2::ffff",
            "2001:db8:1:2:abcd::9",
        ]
        .iter()
        .enumerate()
        {
            fired.extend(c.observe(&failed(10 + i as i64, &format!("a{i}"), a), &rules));
        }
        assert_eq!(fired.len(), 1);
        assert!(
            fired[0].facts.contains("network=2001:db8:1:2::/64"),
            "{}",
            fired[0].facts
        );
        assert_eq!(
            fired[0].user_id, None,
            "about the address, not the account it named"
        );
        assert_eq!(address_key("::ffff:192.0.2.1"), "192.0.2.1");
    }

    #[test]
    fn token_endpoint_bursts() {
        let rules = Rules {
            client_auth_failures_address: Threshold {
                count: 2,
                window: 60,
            },
            token_failures_client: Threshold {
                count: 2,
                window: 60,
            },
            ..Rules::default()
        };
        let mut c = Counting::new(100);
        let auth = |n: i64| {
            Event::new(EventKind::ClientAuthFailed, n)
                .client("cl_claimed")
                .from(&Origin {
                    address: Some("198.51.100.4".into()),
                    ..Default::default()
                })
        };
        assert!(c.observe(&auth(1), &rules).is_empty());
        let f = c.observe(&auth(2), &rules);
        assert_eq!(f[0].detection, Detection::ClientAuthFailuresAddress);
        assert_eq!(f[0].client_id, None);
        let refused = Event::new(EventKind::TokenRequestFailed, 3).client("cl_x");
        assert!(c.observe(&refused, &rules).is_empty());
        assert_eq!(
            c.observe(&refused, &rules)[0].detection,
            Detection::TokenFailuresClient
        );
        assert!(Rules::parse_responses("client_auth_failures_address=block").is_ok());
        assert!(Rules::parse_responses("token_failures_client=block").is_err());
    }

    #[test]
    fn memory_stays_bounded() {
        let mut c = Counting::new(16);
        let rules = Rules::default();
        for i in 0..1000 {
            c.observe(
                &failed(i, &format!("acct{i}"), &format!("192.0.2.{}", i % 250)),
                &rules,
            );
        }
        assert!(c.windows.len() <= 16);
    }

    #[test]
    fn history_detections_need_a_baseline() {
        let rules = Rules::default();
        let first = signed_in(100, "198.51.100.7", "new");
        assert!(sign_in_anomalies(
            &SignIn {
                event: &first,
                place: None
            },
            &[],
            &rules
        )
        .is_empty());
        let earlier = [SignIn {
            event: &first,
            place: None,
        }];
        // Same network, known device: nothing.
        let again = signed_in(200, "198.51.100.99", "known");
        assert!(sign_in_anomalies(
            &SignIn {
                event: &again,
                place: None
            },
            &earlier,
            &rules
        )
        .is_empty());
        // A new device on a new network.
        let elsewhere = signed_in(300, "203.0.113.5", "new");
        let f = sign_in_anomalies(
            &SignIn {
                event: &elsewhere,
                place: None,
            },
            &earlier,
            &rules,
        );
        let kinds: Vec<Detection> = f.iter().map(|f| f.detection).collect();
        assert_eq!(kinds, vec![Detection::NewDevice, Detection::NewNetwork]);
        assert_eq!(f[1].facts, "network=203.0.113.0/24");
    }

    #[test]
    fn geography_new_country_and_impossible_travel() {
        let rules = Rules::default();
        let paris = Place {
            country: Some("FR".into()),
            location: Some(Location {
                latitude: 48.8566,
                longitude: 2.3522,
                accuracy_km: 20.0,
            }),
            network: Some("192.0.2.0/24".into()),
        };
        let tokyo = Place {
            country: Some("JP".into()),
            location: Some(Location {
                latitude: 35.6762,
                longitude: 139.6503,
                accuracy_km: 50.0,
            }),
            network: Some("203.0.113.0/25".into()),
        };
        let a = signed_in(1_000, "192.0.2.10", "known");
        let b = signed_in(1_000 + 3600, "203.0.113.10", "known");
        let earlier = [SignIn {
            event: &a,
            place: Some(paris.clone()),
        }];
        let f = sign_in_anomalies(
            &SignIn {
                event: &b,
                place: Some(tokyo.clone()),
            },
            &earlier,
            &rules,
        );
        let kinds: Vec<Detection> = f.iter().map(|f| f.detection).collect();
        assert_eq!(
            kinds,
            vec![
                Detection::NewNetwork,
                Detection::NewCountry,
                Detection::ImpossibleTravel
            ]
        );
        assert!(f[2].facts.contains("from=FR to=JP"), "{}", f[2].facts);
        // Twenty hours later the same trip is possible; the country is still new.
        let c = signed_in(1_000 + 20 * 3600, "203.0.113.10", "known");
        let f = sign_in_anomalies(
            &SignIn {
                event: &c,
                place: Some(tokyo.clone()),
            },
            &earlier,
            &rules,
        );
        assert!(!f.iter().any(|f| f.detection == Detection::ImpossibleTravel));
        // The comparison is with the latest sign-in that has coordinates, even when a newer one
        // could not be placed.
        let unplaced = signed_in(1_000 + 60, "2001:db8:ffff::1", "known");
        let both = [
            SignIn {
                event: &unplaced,
                place: Some(Place::default()),
            },
            SignIn {
                event: &a,
                place: Some(paris.clone()),
            },
        ];
        let f = sign_in_anomalies(
            &SignIn {
                event: &b,
                place: Some(tokyo.clone()),
            },
            &both,
            &rules,
        );
        assert!(
            f.iter().any(|f| f.detection == Detection::ImpossibleTravel),
            "{f:?}"
        );
        // Without coordinates (a country database) only the new country.
        let no_coords = Place {
            location: None,
            ..tokyo
        };
        let earlier = [SignIn {
            event: &a,
            place: Some(Place {
                location: None,
                ..paris
            }),
        }];
        let f = sign_in_anomalies(
            &SignIn {
                event: &b,
                place: Some(no_coords),
            },
            &earlier,
            &rules,
        );
        assert!(f.iter().any(|f| f.detection == Detection::NewCountry));
        assert!(!f.iter().any(|f| f.detection == Detection::ImpossibleTravel));
    }

    #[test]
    fn settings_parse_strictly() {
        assert_eq!(
            Threshold::parse("10/300"),
            Some(Threshold {
                count: 10,
                window: 300
            })
        );
        for bad in ["", "10", "0/300", "10/0", "x/300", "10/86401"] {
            assert_eq!(Threshold::parse(bad), None, "{bad}");
        }
        let r = Rules::parse_responses(
            "impossible_travel=revoke_sessions, login_failures_address=block",
        )
        .unwrap();
        assert_eq!(r.len(), 2);
        let rules = Rules {
            responses: r,
            ..Rules::default()
        };
        assert_eq!(
            rules.response(Detection::ImpossibleTravel),
            Response::RevokeSessions
        );
        assert_eq!(rules.response(Detection::NewCountry), Response::Alert);
        for bad in [
            "new_device",
            "nope=block",
            "new_device=explode",
            "new_device=block,new_device=alert",
            "login_failures_address=revoke_sessions",
            "login_failures_account=block",
            "refresh_failures_client=block",
            "credential_stuffing=revoke_sessions",
            // A sign-in detection's block would hit whoever signs in second at the address,
            // and new_device's revocation is undone by the device cookie it already holds.
            "new_country=block",
            "impossible_travel=delay",
            "new_device=revoke_sessions",
            "new_network=revoke_sessions",
            "new_country=revoke_sessions",
            "client_auth_failures_address=delay",
        ] {
            assert!(Rules::parse_responses(bad).is_err(), "{bad}");
        }
    }
}
