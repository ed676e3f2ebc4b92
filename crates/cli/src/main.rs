//! The `portcullis` binary: `serve`, `migrate`, and management of APIs, clients and users.
//! Commands act on the same database as the server, configured the same way; a running server
//! sees each change on its next request.
#![forbid(unsafe_code)]

mod commands;
mod events;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "A self-hosted, secure-by-default OpenID Connect provider"
)]
struct Cli {
    /// Development mode: generate missing secrets and a certificate signed by a development CA into the data
    /// directory on first run, and reuse them later. Never for production.
    #[arg(long, global = true)]
    dev: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (applies migrations first).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage the APIs (resource servers) access tokens are issued for.
    Apis {
        #[command(subcommand)]
        command: commands::ApisCommand,
    },
    /// Manage client applications.
    Clients {
        #[command(subcommand)]
        command: commands::ClientsCommand,
    },
    /// Manage users.
    Users {
        #[command(subcommand)]
        command: commands::UsersCommand,
    },
    /// Signing keys: list, rotate, revoke.
    Keys {
        #[command(subcommand)]
        command: commands::KeysCommand,
    },
    /// List and end users' sessions.
    Sessions {
        #[command(subcommand)]
        command: commands::SessionsCommand,
    },
    /// The admin HTTP API's token.
    Admin {
        #[command(subcommand)]
        command: commands::AdminCommand,
    },
    /// Read the audit trail: filter by user, client, type, outcome, address and time;
    /// `--follow` for new events, `--json` for one object per line.
    Events(events::EventsArgs),
}

/// Panics (which should never happen) are logged as one escaped JSON event, never as raw text
/// that could carry attacker-controlled bytes into the log stream.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(event = "panic", %location, "a request handler panicked");
    }));
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Lives until main returns: dropping it writes the lines still queued.
    let logging = portcullis_server::logging::init();
    install_panic_hook();
    let result = run(cli, logging.dropped.clone()).await;
    // Whatever was logged is written before the error line and the exit.
    drop(logging);
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(
    cli: Cli,
    log_dropped: tracing_appender::non_blocking::ErrorCounter,
) -> anyhow::Result<()> {
    portcullis_server::config::load_dotenv(std::path::Path::new(".env"))?;
    let config = portcullis_server::config::load(&portcullis_server::config::ProcessEnv, cli.dev)?;
    match cli.command {
        Command::Serve => portcullis_server::serve(config, Some(log_dropped)).await,
        Command::Migrate => {
            portcullis_server::open_store(&config).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Apis { command } => commands::apis(&config, command).await,
        Command::Clients { command } => commands::clients(&config, command).await,
        Command::Users { command } => commands::users(&config, command).await,
        Command::Sessions { command } => commands::sessions(&config, command).await,
        Command::Keys { command } => commands::keys(&config, command).await,
        Command::Events(args) => events::events(&config, args).await,
        Command::Admin { command } => commands::admin(&config, command).await,
    }
}
