//! `portcullis-demo`: reads its settings from the environment (and from `demo.env` in the
//! working directory when there is one; real environment variables win), then serves HTTPS.

use portcullis_client::Portcullis;
use portcullis_demo::{tls, Demo, DemoConfig};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DEMO_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        // Colours only on a terminal: a log file or a pipe gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portcullis-demo: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    match dotenvy::from_filename("demo.env") {
        Ok(_) => eprintln!("read settings from demo.env"),
        Err(e) if e.not_found() => {}
        Err(_) => return Err("demo.env could not be read".into()),
    }
    let config = DemoConfig::from_env()?;
    // PORTCULLIS_ENVIRONMENT_URL, PORTCULLIS_CLIENT_ID, PORTCULLIS_CLIENT_SECRET and the
    // optional PORTCULLIS_CA_FILE. The secret is held in a type that never prints.
    let portcullis = Portcullis::from_env()?;
    let tls = match &config.tls {
        Some((cert, key)) => tls::from_files(cert, key)?,
        None => {
            eprintln!(
                "DEMO_TLS_CERT/DEMO_TLS_KEY not set: using a self-signed development certificate \
                 for {} (and localhost, 127.0.0.1), made in memory for this run (browsers warn; \
                 Portcullis cannot deliver back-channel logout to it)",
                config.host()
            );
            tls::self_signed(&config.host())?
        }
    };
    let listener = std::net::TcpListener::bind(config.listen)
        .map_err(|e| format!("DEMO_LISTEN {}: {e}", config.listen))?;
    println!(
        "Portcullis demo on {} (listening on {}), signing in through {} as client {}",
        config.url,
        config.listen,
        portcullis.issuer(),
        portcullis.client_id()
    );
    println!(
        "registered URIs must be: redirect {}, post-logout {}, back-channel logout {}",
        config.redirect_uri(),
        config.post_logout_redirect_uri(),
        config.backchannel_logout_uri()
    );
    let demo = Demo::new(config, portcullis)?;
    portcullis_demo::serve(listener, tls, demo.router()).await?;
    Ok(())
}
