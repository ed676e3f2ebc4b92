//! The JSON log (one object per line on stderr), written by a thread of its own: a request
//! hands its line over and goes on, so a stalled reader of the log (a full pipe, a stuck
//! collector) never holds up a sign-in. Lines the writer cannot take while it is stalled
//! (past [`BUFFERED_LINES`]) are dropped and counted (`portcullis_log_lines_dropped_total`);
//! the events themselves are stored regardless. Built on `tracing-appender`.

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};

/// Lines waiting for the writer before new ones are dropped (`PORTCULLIS_LOG_BUFFER`,
/// 100–1,000,000).
pub const BUFFERED_LINES: usize = 100_000;

/// Keeps the writer running; dropping it writes what is still queued.
pub struct Logging {
    _guard: WorkerGuard,
    /// Lines dropped because the writer was behind.
    pub dropped: ErrorCounter,
}

/// Installs the JSON log at `PORTCULLIS_LOG_LEVEL` (default `info`).
pub fn init() -> Logging {
    let filter = std::env::var("PORTCULLIS_LOG_LEVEL").unwrap_or_else(|_| "info".to_owned());
    let env_filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Read here, before the configuration (which logs): out of range means the default.
    let asked = std::env::var("PORTCULLIS_LOG_BUFFER").ok();
    let parsed = asked
        .as_deref()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| (100..=1_000_000).contains(n));
    let buffered = parsed.unwrap_or(BUFFERED_LINES);
    let level_ok = tracing_subscriber::EnvFilter::try_new(&filter).is_ok();
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(buffered)
        .thread_name("portcullis-log")
        .finish(std::io::stderr());
    let dropped = writer.error_counter();
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(env_filter)
        .with_writer(writer)
        .with_current_span(false)
        .init();
    // Said once the log exists: a setting out of range is not silently replaced.
    if asked.is_some() && parsed.is_none() {
        tracing::warn!(
            "PORTCULLIS_LOG_BUFFER must be a number of lines from 100 to 1000000; using {BUFFERED_LINES}"
        );
    }
    if !level_ok {
        tracing::warn!("PORTCULLIS_LOG_LEVEL {filter:?} is not a log filter; using info");
    }
    Logging {
        _guard: guard,
        dropped,
    }
}
