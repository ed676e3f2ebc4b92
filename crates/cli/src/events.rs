//! `portcullis events`: the stored audit trail, filtered, as text or one JSON object per line,
//! and `--follow` to keep printing new events as they are stored.

use std::time::Duration;

use clap::Args;
use portcullis_core::audit::{parse_filter, EventFilter, EventKind, FilterText, StoredEvent};
use portcullis_core::email::Email;
use portcullis_core::ids::UserId;
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
    /// From this time on: RFC 3339 (`2026-12-01T00:00:00Z`), unix seconds, or an age (`30m`,
    /// `12h`, `7d`).
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
    let limit = args.limit.to_string();
    let mut filter = parse_filter(
        &FilterText {
            client_id: args.client.as_deref(),
            kind: args.kind.as_deref(),
            outcome: args.outcome.as_deref(),
            address: args.address.as_deref(),
            since: args.since.as_deref(),
            until: args.until.as_deref(),
            after_id: None,
            limit: Some(&limit),
        },
        now,
        10_000,
    )
    .map_err(|e| anyhow::anyhow!("--{e}"))?;
    filter.user_id = user_id;
    Ok(filter)
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
            // Quoted when a value could read as more than one field.
            if v.contains([' ', '=', '"']) {
                out.push_str(&format!(" {name}={v:?}"));
            } else {
                out.push_str(&format!(" {name}={v}"));
            }
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
