//! Audit events (PRACTICES §9): one typed vocabulary for everything that happens to an
//! account, a session, a token or the configuration. Each event carries the time, its kind,
//! the outcome, a reason code and whatever is known of who and where (user, client, address,
//! user agent, session, request). Never a password, token or secret: the fields are ids and
//! codes, and the free-text ones (user agent, detail) are cleaned and bounded here, so no
//! value can forge a log line, carry a terminal escape or grow without limit.

use serde::{Deserialize, Serialize};

/// Every kind of event. The wire name (`as_str`) is what logs, storage and the CLI use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    LoginSucceeded,
    LoginFailed,
    LoginThrottled,
    LoginCredentialStuffing,
    Logout,
    SessionCreated,
    SessionRevoked,
    TokenIssued,
    TokenRefreshed,
    TokenRefreshFailed,
    TokenRequestFailed,
    TokenReuseDetected,
    TokenRevoked,
    TokenCodeReplayed,
    ClientAuthFailed,
    PasswordChanged,
    PasswordChangeFailed,
    CsrfRefused,
    ClientCreated,
    ClientDisabled,
    ClientEnabled,
    ClientSecretRotated,
    ApiCreated,
    ApiSecretRotated,
    UserCreated,
    UserDisabled,
    UserEnabled,
    UserDeleted,
    UserPasswordSet,
    UserEmailVerified,
    UserDevicesRevoked,
    KeyGenerated,
    KeyRotated,
    KeyRevoked,
    AlertRaised,
    /// A call to the admin HTTP API (every one, refused or not).
    AdminApiCall,
    AdminTokenRotated,
    AdminTokensRevoked,
    /// Events that could not be stored (the buffer was full); `detail` says how many.
    EventsLost,
    EventsSuppressed,
    NetworkDistrusted,
}

impl EventKind {
    pub const ALL: &'static [EventKind] = &[
        EventKind::LoginSucceeded,
        EventKind::LoginFailed,
        EventKind::LoginThrottled,
        EventKind::LoginCredentialStuffing,
        EventKind::Logout,
        EventKind::SessionCreated,
        EventKind::SessionRevoked,
        EventKind::TokenIssued,
        EventKind::TokenRefreshed,
        EventKind::TokenRefreshFailed,
        EventKind::TokenRequestFailed,
        EventKind::TokenReuseDetected,
        EventKind::TokenRevoked,
        EventKind::TokenCodeReplayed,
        EventKind::ClientAuthFailed,
        EventKind::PasswordChanged,
        EventKind::PasswordChangeFailed,
        EventKind::CsrfRefused,
        EventKind::ClientCreated,
        EventKind::ClientDisabled,
        EventKind::ClientEnabled,
        EventKind::ClientSecretRotated,
        EventKind::ApiCreated,
        EventKind::ApiSecretRotated,
        EventKind::UserCreated,
        EventKind::UserDisabled,
        EventKind::UserEnabled,
        EventKind::UserDeleted,
        EventKind::UserPasswordSet,
        EventKind::UserEmailVerified,
        EventKind::UserDevicesRevoked,
        EventKind::KeyGenerated,
        EventKind::KeyRotated,
        EventKind::KeyRevoked,
        EventKind::AlertRaised,
        EventKind::AdminApiCall,
        EventKind::AdminTokenRotated,
        EventKind::AdminTokensRevoked,
        EventKind::EventsLost,
        EventKind::EventsSuppressed,
        EventKind::NetworkDistrusted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::LoginSucceeded => "login.succeeded",
            EventKind::LoginFailed => "login.failed",
            EventKind::LoginThrottled => "login.throttled",
            EventKind::LoginCredentialStuffing => "login.credential_stuffing",
            EventKind::Logout => "logout",
            EventKind::SessionCreated => "session.created",
            EventKind::SessionRevoked => "session.revoked",
            EventKind::TokenIssued => "token.issued",
            EventKind::TokenRefreshed => "token.refreshed",
            EventKind::TokenRefreshFailed => "token.refresh_failed",
            EventKind::TokenRequestFailed => "token.request_failed",
            EventKind::TokenReuseDetected => "token.reuse_detected",
            EventKind::TokenRevoked => "token.revoked",
            EventKind::TokenCodeReplayed => "token.code_replayed",
            EventKind::ClientAuthFailed => "client_auth.failed",
            EventKind::PasswordChanged => "user.password_changed",
            EventKind::PasswordChangeFailed => "user.password_change_failed",
            EventKind::CsrfRefused => "csrf.refused",
            EventKind::ClientCreated => "client.created",
            EventKind::ClientDisabled => "client.disabled",
            EventKind::ClientEnabled => "client.enabled",
            EventKind::ClientSecretRotated => "client.secret_rotated",
            EventKind::ApiCreated => "api.created",
            EventKind::ApiSecretRotated => "api.secret_rotated",
            EventKind::UserCreated => "user.created",
            EventKind::UserDisabled => "user.disabled",
            EventKind::UserEnabled => "user.enabled",
            EventKind::UserDeleted => "user.deleted",
            EventKind::UserPasswordSet => "user.password_set",
            EventKind::UserEmailVerified => "user.email_verified",
            EventKind::UserDevicesRevoked => "user.devices_revoked",
            EventKind::KeyGenerated => "key.generated",
            EventKind::KeyRotated => "key.rotated",
            EventKind::KeyRevoked => "key.revoked",
            EventKind::AlertRaised => "alert.raised",
            EventKind::AdminApiCall => "admin.api_call",
            EventKind::AdminTokenRotated => "admin.token_rotated",
            EventKind::AdminTokensRevoked => "admin.tokens_revoked",
            EventKind::EventsLost => "audit.events_lost",
            EventKind::EventsSuppressed => "audit.events_suppressed",
            EventKind::NetworkDistrusted => "detect.network_distrusted",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.iter().copied().find(|k| k.as_str() == s)
    }

    /// What an event of this kind means when nothing else is said.
    pub fn default_outcome(self) -> Outcome {
        match self {
            EventKind::LoginFailed
            | EventKind::LoginThrottled
            | EventKind::LoginCredentialStuffing
            | EventKind::TokenRefreshFailed
            | EventKind::TokenRequestFailed
            | EventKind::TokenReuseDetected
            | EventKind::TokenCodeReplayed
            | EventKind::ClientAuthFailed
            | EventKind::PasswordChangeFailed
            | EventKind::CsrfRefused
            | EventKind::AlertRaised
            | EventKind::EventsLost
            | EventKind::EventsSuppressed
            | EventKind::NetworkDistrusted => Outcome::Failure,
            _ => Outcome::Success,
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the attempt the event describes succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        match s {
            "success" => Some(Outcome::Success),
            "failure" => Some(Outcome::Failure),
            _ => None,
        }
    }
}

/// Longest user agent kept, in characters.
pub const MAX_USER_AGENT: usize = 256;
/// Longest value of any other text field, in characters.
pub const MAX_FIELD: usize = 128;
/// Longest `detail`, in characters.
pub const MAX_DETAIL: usize = 512;

/// One event. Build it with [`Event::new`] and the setters, which clean every value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unix seconds.
    pub at: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Short extra facts (`key=value` pairs), never secrets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Where a request came from, as far as events are concerned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    pub address: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

impl Event {
    pub fn new(kind: EventKind, at: i64) -> Self {
        Event {
            at,
            kind: kind.as_str().to_owned(),
            outcome: kind.default_outcome(),
            reason: None,
            user_id: None,
            client_id: None,
            address: None,
            user_agent: None,
            session_id: None,
            request_id: None,
            detail: None,
        }
    }

    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    pub fn reason(mut self, reason: &str) -> Self {
        self.reason = Some(clean(reason, MAX_FIELD));
        self
    }

    pub fn user(mut self, id: impl std::fmt::Display) -> Self {
        self.user_id = Some(clean(&id.to_string(), MAX_FIELD));
        self
    }

    pub fn client(mut self, id: impl std::fmt::Display) -> Self {
        self.client_id = Some(clean(&id.to_string(), MAX_FIELD));
        self
    }

    pub fn session(mut self, id: impl std::fmt::Display) -> Self {
        self.session_id = Some(clean(&id.to_string(), MAX_FIELD));
        self
    }

    pub fn detail(mut self, detail: &str) -> Self {
        self.detail = Some(clean(detail, MAX_DETAIL));
        self
    }

    /// The request's address, user agent and id.
    pub fn from(mut self, origin: &Origin) -> Self {
        self.address = origin.address.as_deref().map(|a| clean(a, MAX_FIELD));
        self.user_agent = origin
            .user_agent
            .as_deref()
            .map(|u| clean(u, MAX_USER_AGENT));
        self.request_id = origin.request_id.as_deref().map(|r| clean(r, MAX_FIELD));
        self
    }

    /// Unchecked input (a stored row, a deserialised line) made safe as if built by the setters.
    pub fn cleaned(mut self) -> Self {
        let opt = |v: Option<String>, max: usize| v.map(|s| clean(&s, max));
        self.kind = clean(&self.kind, MAX_FIELD);
        self.reason = opt(self.reason, MAX_FIELD);
        self.user_id = opt(self.user_id, MAX_FIELD);
        self.client_id = opt(self.client_id, MAX_FIELD);
        self.address = opt(self.address, MAX_FIELD);
        self.user_agent = opt(self.user_agent, MAX_USER_AGENT);
        self.session_id = opt(self.session_id, MAX_FIELD);
        self.request_id = opt(self.request_id, MAX_FIELD);
        self.detail = opt(self.detail, MAX_DETAIL);
        self
    }
}

/// A value safe for one log line and a terminal: control characters (C0, DEL, C1: newlines,
/// escapes), line and paragraph separators (U+2028, U+2029), bidirectional overrides and
/// invisible format characters (zero-width spaces and joiners, U+FEFF, soft hyphen) become
/// U+FFFD, and anything past `max` characters is cut, marked with "…".
pub fn clean(value: &str, max: usize) -> String {
    let mut out = String::with_capacity(value.len().min(max * 4));
    for (n, c) in value.chars().enumerate() {
        if n == max {
            out.push('…');
            break;
        }
        let unsafe_char = c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
            // Invisible (default-ignorable) characters: two values that print alike must not
            // differ.
            || matches!(c, '\u{00AD}' | '\u{034F}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}' | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200D}' | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFB}' | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}');
        out.push(if unsafe_char { '\u{FFFD}' } else { c });
    }
    out
}

/// What to look for in stored events; every field narrows the result.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    pub kind: Option<String>,
    pub outcome: Option<Outcome>,
    pub address: Option<String>,
    /// At or after (unix seconds).
    pub since: Option<i64>,
    /// Before (unix seconds).
    pub until: Option<i64>,
    /// Only events stored after this one (for following).
    pub after_id: Option<i64>,
    /// Only events stored before this one (for reading back, page by page).
    pub before_id: Option<i64>,
    /// At most this many, oldest first when `after_id` is set, else the newest.
    pub limit: u32,
}

/// An event as stored, with its sequence number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub id: i64,
    #[serde(flatten)]
    pub event: Event,
}

/// The text form of a filter (CLI flags, admin API query parameters), before checking.
#[derive(Clone, Debug, Default)]
pub struct FilterText<'a> {
    pub client_id: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub outcome: Option<&'a str>,
    pub address: Option<&'a str>,
    pub since: Option<&'a str>,
    pub until: Option<&'a str>,
    pub after_id: Option<&'a str>,
    pub limit: Option<&'a str>,
}

/// Checks a filter's text (all but the user, whose lookup needs the store). Every error says
/// which field is wrong and what is accepted.
pub fn parse_filter(t: &FilterText<'_>, now: i64, max_limit: u32) -> Result<EventFilter, String> {
    let client_id = match t.client_id {
        None => None,
        Some(c) => Some(
            crate::ids::ClientId::parse(c)
                .ok_or_else(|| format!("client {c:?} is not a client id"))?
                .to_string(),
        ),
    };
    let kind = match t.kind {
        None => None,
        Some(k) => Some(
            EventKind::parse(k)
                .ok_or_else(|| {
                    format!(
                        "type {k:?} is not an event type; the types are: {}",
                        EventKind::ALL
                            .iter()
                            .map(|k| k.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?
                .as_str()
                .to_owned(),
        ),
    };
    let outcome = match t.outcome {
        None => None,
        Some(o) => Some(Outcome::parse(o).ok_or("outcome must be success or failure")?),
    };
    let address = match t.address {
        None => None,
        // Stored addresses are canonical: an IPv4-mapped IPv6 address is its IPv4 address.
        Some(a) => Some(
            a.parse::<std::net::IpAddr>()
                .map_err(|_| format!("address {a:?} is not an IP address"))?
                .to_canonical()
                .to_string(),
        ),
    };
    let time = |name: &str, v: Option<&str>| -> Result<Option<i64>, String> {
        v.map(|s| {
            parse_time(s, now).ok_or_else(|| {
                format!("{name} {s:?} is not a time: use RFC 3339 (2026-12-01T00:00:00Z), unix seconds, or an age (30m, 12h, 7d)")
            })
        })
        .transpose()
    };
    // An empty range (since at or after until) is not an error: it matches nothing.
    let since = time("since", t.since)?;
    let until = time("until", t.until)?;
    let after_id = match t.after_id {
        None => None,
        Some(a) => Some(
            a.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or("after_id must be a non-negative event id")?,
        ),
    };
    let limit = match t.limit {
        None => 100.min(max_limit),
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max_limit).contains(n))
            .ok_or_else(|| format!("limit must be between 1 and {max_limit}"))?,
    };
    Ok(EventFilter {
        user_id: None,
        client_id,
        kind,
        outcome,
        address,
        since,
        until,
        after_id,
        before_id: None,
        limit,
    })
}

/// A time as RFC 3339, unix seconds, or an age before `now` (`90s`, `30m`, `12h`, `7d`).
pub fn parse_time(s: &str, now: i64) -> Option<i64> {
    const MAX: i64 = 100_000_000_000;
    // Digits only: no sign, as the admin API's document says.
    let age = |n: &str, unit: i64| -> Option<i64> {
        if n.is_empty() || n.len() > 9 || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        n.parse::<i64>()
            .ok()
            .filter(|n| (0..=100_000_000).contains(n))
            .map(|n| now - n * unit)
    };
    let aged = match s.char_indices().last() {
        Some((i, 's')) => age(&s[..i], 1),
        Some((i, 'm')) => age(&s[..i], 60),
        Some((i, 'h')) => age(&s[..i], 3600),
        Some((i, 'd')) => age(&s[..i], 86_400),
        _ => None,
    };
    if aged.is_some() {
        return aged;
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return (s.len() <= 11)
            .then(|| s.parse::<i64>().ok())
            .flatten()
            .filter(|n| *n <= MAX);
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_unix_seconds_or_ages() {
        let now = 1_800_000_000;
        assert_eq!(parse_time("30m", now), Some(now - 1800));
        assert_eq!(parse_time("7d", now), Some(now - 7 * 86_400));
        assert_eq!(parse_time("1796083200", now), Some(1_796_083_200));
        assert_eq!(parse_time("2026-12-01T00:00:00Z", now), Some(1_796_083_200));
        for bad in [
            "",
            "m",
            "-5m",
            "+5m",
            "-0m",
            "100000000000",
            "yesterday",
            "12x",
            "2026-13-01T00:00:00Z",
            "99999999999999999999",
        ] {
            assert_eq!(parse_time(bad, now), None, "{bad}");
        }
    }

    #[test]
    fn filters_are_checked_field_by_field() {
        let f = parse_filter(
            &FilterText {
                kind: Some("login.failed"),
                outcome: Some("failure"),
                address: Some("2001:db8::1"),
                since: Some("1h"),
                limit: Some("5"),
                ..Default::default()
            },
            10_000,
            1000,
        )
        .unwrap();
        assert_eq!(f.kind.as_deref(), Some("login.failed"));
        assert_eq!(f.since, Some(10_000 - 3600));
        // An IPv4-mapped address finds the IPv4 address it is (as stored).
        let mapped = parse_filter(
            &FilterText {
                address: Some("::ffff:203.0.113.50"),
                ..Default::default()
            },
            10_000,
            1000,
        )
        .unwrap();
        assert_eq!(mapped.address.as_deref(), Some("203.0.113.50"));
        assert_eq!(f.limit, 5);
        for (t, says) in [
            (
                FilterText {
                    kind: Some("nope"),
                    ..Default::default()
                },
                "not an event type",
            ),
            (
                FilterText {
                    outcome: Some("maybe"),
                    ..Default::default()
                },
                "success or failure",
            ),
            (
                FilterText {
                    address: Some("localhost"),
                    ..Default::default()
                },
                "not an IP",
            ),
            (
                FilterText {
                    limit: Some("0"),
                    ..Default::default()
                },
                "between 1 and",
            ),
            (
                FilterText {
                    limit: Some("1001"),
                    ..Default::default()
                },
                "between 1 and",
            ),
            (
                FilterText {
                    after_id: Some("-1"),
                    ..Default::default()
                },
                "after_id",
            ),
            (
                FilterText {
                    client_id: Some("x y"),
                    ..Default::default()
                },
                "not a client id",
            ),
        ] {
            let e = parse_filter(&t, 10_000, 1000).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn every_kind_has_a_unique_name_that_parses_back() {
        let mut seen = std::collections::HashSet::new();
        for k in EventKind::ALL {
            assert!(seen.insert(k.as_str()), "{k}");
            assert_eq!(EventKind::parse(k.as_str()), Some(*k));
        }
        assert_eq!(EventKind::parse("login.nope"), None);
    }

    #[test]
    fn hostile_values_cannot_break_a_line_or_a_terminal() {
        let ua = format!("Mozilla\r\n{{\"type\":\"login.succeeded\"}}\u{1b}[31mred\u{2028}x\u{202e}y\u{7f}\u{9b}{}", "A".repeat(10 * 1024));
        let e = Event::new(EventKind::LoginFailed, 1).from(&Origin {
            address: Some("203.0.113.9".into()),
            user_agent: Some(ua),
            request_id: None,
        });
        let ua = e.user_agent.as_deref().unwrap();
        assert_eq!(ua.chars().count(), MAX_USER_AGENT + 1);
        assert!(ua.ends_with('…'));
        for bad in [
            '\r', '\n', '\u{1b}', '\u{2028}', '\u{202e}', '\u{7f}', '\u{9b}',
        ] {
            assert!(!ua.contains(bad), "{bad:?}");
        }
        let line = serde_json::to_string(&e).unwrap();
        assert!(!line.contains('\n') && !line.contains('\u{1b}'));
        assert_eq!(e.outcome, Outcome::Failure);
        // Non-ASCII text that is not a control stays; invisible characters do not.
        assert_eq!(clean("Zoë 東京", 10), "Zoë 東京");
        assert_eq!(
            clean(
                "a\u{200b}b\u{200d}c\u{feff}d\u{2060}e\u{ad}f\u{e0041}g\u{fe0f}h\u{3164}i",
                40
            ),
            "a\u{fffd}b\u{fffd}c\u{fffd}d\u{fffd}e\u{fffd}f\u{fffd}g\u{fffd}h\u{fffd}i"
        );
    }
}
