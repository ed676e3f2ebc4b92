//! `portcullis events`: the stored audit trail, filtered, as text or one JSON object per line,
//! and `--follow` to keep printing new events as they are stored.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use portcullis_core::audit::{EventFilter, EventKind, Outcome, StoredEvent};
use portcullis_core::email::Email;
use portcullis_core::ids::{ClientId, UserId};
use portcullis_core::store::{AuditStore, UserStore};
use portcullis_server::config::Config;
use portcullis_server::state::now;

#[derive(Args)]
pub struct EventsArgs {
    /// Only this user (an e-mail address or a user id).
    #[arg(long)]
    user: Option<String>,
    /// Only this client id.
    #[arg(long)]
    client: Option<String>,
    /// Only this event type, e.g. `login.failed` (`--type list` prints them all).
    #[arg(long = "type")]
    kind: Option<String>,
    /// Only `success` or `failure`.
    #[arg(long)]
    outcome: Option<String>,
    /// Only events from this client address.
    #[arg(long)]
    address: Option<String>,
    /// From this time on: RFC 3339 (`2026-12-01T00:00:00Z`) or an age (`30m`, `12h`, `7d`).
    #[arg(long)]
    since: Option<String>,
    /// Before this time (same forms as `--since`).
    #[arg(long)]
    until: Option<String>,
    /// The newest this many (1–10000).
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// After printing, keep printing new events as they are stored (until interrupted).
    #[arg(long)]
    follow: bool,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

/// A time given as RFC 3339 or as an age before `now`.
fn parse_time(s: &str, now: i64) -> anyhow::Result<i64> {
    let age = |n: &str, unit: i64| -> Option<i64> {
        n.parse::<i64>()
            .ok()
            .filter(|n| (0..=100_000_000).contains(n))
            .map(|n| now - n * unit)
    };
    let parsed = match s.char_indices().last() {
        Some((i, 's')) => age(&s[..i], 1),
        Some((i, 'm')) => age(&s[..i], 60),
        Some((i, 'h')) => age(&s[..i], 3600),
        Some((i, 'd')) => age(&s[..i], 86_400),
        _ => None,
    };
    if let Some(t) = parsed {
        return Ok(t);
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|_| {
            anyhow::anyhow!(
                "{s:?} is not a time: use RFC 3339 (2026-12-01T00:00:00Z) or an age (30m, 12h, 7d)"
            )
        })
}

async fn filter_of<S: UserStore + ?Sized>(
    args: &EventsArgs,
    store: &S,
    now: i64,
) -> anyhow::Result<EventFilter> {
    let user_id = match args.user.as_deref() {
        None => None,
        Some(u) if u.contains('@') => {
            let e = Email::parse(u).map_err(|e| anyhow::anyhow!("--user: {e}"))?;
            match store.user_by_email_key(e.key()).await? {
                Some(user) => Some(user.id.to_string()),
                // Events outlive deleted users: an unknown address simply matches nothing.
                None => Some(String::new()),
            }
        }
        Some(u) => Some(
            UserId::parse(u)
                .ok_or_else(|| {
                    anyhow::anyhow!("--user {u:?} is neither an e-mail address nor a user id")
                })?
                .to_string(),
        ),
    };
    let client_id = match args.client.as_deref() {
        None => None,
        Some(c) => Some(
            ClientId::parse(c)
                .ok_or_else(|| anyhow::anyhow!("--client {c:?} is not a client id"))?
                .to_string(),
        ),
    };
    let kind = match args.kind.as_deref() {
        None => None,
        Some(k) => match EventKind::parse(k) {
            Some(k) => Some(k.as_str().to_owned()),
            None => bail!(
                "--type {k:?} is not an event type; the types are: {}",
                EventKind::ALL
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    };
    let outcome = match args.outcome.as_deref() {
        None => None,
        Some(o) => Some(
            Outcome::parse(o)
                .ok_or_else(|| anyhow::anyhow!("--outcome must be success or failure"))?,
        ),
    };
    let address = match args.address.as_deref() {
        None => None,
        Some(a) => Some(
            a.parse::<IpAddr>()
                .map_err(|_| anyhow::anyhow!("--address {a:?} is not an IP address"))?
                .to_string(),
        ),
    };
    if !(1..=10_000).contains(&args.limit) {
        bail!("--limit must be between 1 and 10000");
    }
    let since = args
        .since
        .as_deref()
        .map(|s| parse_time(s, now))
        .transpose()?;
    let until = args
        .until
        .as_deref()
        .map(|s| parse_time(s, now))
        .transpose()?;
    if let (Some(a), Some(b)) = (since, until) {
        if a >= b {
            bail!("--since must be before --until");
        }
    }
    Ok(EventFilter {
        user_id,
        client_id,
        kind,
        outcome,
        address,
        since,
        until,
        after_id: None,
        limit: args.limit,
    })
}

fn when(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

/// One line of text. Every field was cleaned when it was stored and again when it was read,
/// so nothing here can move the cursor or start a new line.
fn line(s: &StoredEvent) -> String {
    let e = &s.event;
    let mut out = format!("{} {} {}", when(e.at), e.kind, e.outcome.as_str());
    for (name, value) in [
        ("reason", &e.reason),
        ("user", &e.user_id),
        ("client", &e.client_id),
        ("address", &e.address),
        ("session", &e.session_id),
        ("request", &e.request_id),
        ("detail", &e.detail),
    ] {
        if let Some(v) = value {
            out.push_str(&format!(" {name}={v}"));
        }
    }
    if let Some(ua) = &e.user_agent {
        out.push_str(&format!(" user_agent={ua:?}"));
    }
    out
}

fn print(events: &[StoredEvent], json: bool) -> anyhow::Result<()> {
    for e in events {
        if json {
            println!("{}", serde_json::to_string(e)?);
        } else {
            println!("{}", line(e));
        }
    }
    Ok(())
}

pub async fn events(config: &Config, args: EventsArgs) -> anyhow::Result<()> {
    if args.kind.as_deref() == Some("list") {
        for k in EventKind::ALL {
            println!("{k}");
        }
        return Ok(());
    }
    let store = portcullis_server::open_store(config).await?;
    let mut filter = filter_of(&args, &store, now()).await?;
    let first = store.query_events(&filter).await?;
    print(&first, args.json)?;
    if !args.follow {
        return Ok(());
    }
    // From the newest event seen (or the newest stored at all), poll for what comes after.
    let mut last = match first.last() {
        Some(e) => e.id,
        None => {
            let newest = store
                .query_events(&EventFilter {
                    limit: 1,
                    ..EventFilter::default()
                })
                .await?;
            newest.last().map_or(0, |e| e.id)
        }
    };
    filter.limit = 1000;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        filter.after_id = Some(last);
        let next = store.query_events(&filter).await?;
        if let Some(e) = next.last() {
            last = e.id;
        }
        print(&next, args.json)?;
        use std::io::Write;
        std::io::stdout().flush()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_ages() {
        let now = 1_800_000_000;
        assert_eq!(parse_time("30m", now).unwrap(), now - 1800);
        assert_eq!(parse_time("7d", now).unwrap(), now - 7 * 86_400);
        assert_eq!(
            parse_time("2026-12-01T00:00:00Z", now).unwrap(),
            1_796_083_200
        );
        for bad in ["", "m", "-5m", "yesterday", "12x", "2026-13-01T00:00:00Z"] {
            assert!(parse_time(bad, now).is_err(), "{bad}");
        }
    }
}
