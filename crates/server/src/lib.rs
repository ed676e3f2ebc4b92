//! Portcullis server: the axum layer. Handlers extract, call core, and map errors; TLS,
//! configuration and startup live here too.
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod audit;
pub mod backchannel;
pub mod cache;
pub mod client_request;
pub mod config;
pub mod cookies;
pub mod cors;
pub mod detect;
pub mod dev;
pub mod flow;
pub mod geoip;
pub mod keyring;
pub mod logging;
pub mod metrics;
pub mod quota;
pub mod respond;
pub mod routes;
pub mod state;
pub mod templates;
pub mod throttle;
pub mod tls;
pub mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use portcullis_core::crypto::HashKey;
use portcullis_core::password::PasswordHasher;
use portcullis_store::SqliteStore;

use crate::config::Config;
use crate::state::{now, AppState};

/// Opens the database named by the configuration and applies migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<SqliteStore> {
    let store = SqliteStore::connect_with(&config.database_url, config.durability)
        .await
        .context("opening the database")?;
    store
        .migrate()
        .await
        .context("applying database migrations")?;
    Ok(store)
}

/// Builds the shared state from a configuration and an open store.
pub async fn build_state(config: &Config, store: SqliteStore) -> anyhow::Result<AppState> {
    let metrics = Arc::new(metrics::Metrics::new());
    let keys = keyring::load(
        &store,
        &keyring::encrypter(config)?,
        &keyring::KeyPolicy::from_config(config),
        now(),
        &metrics,
    )
    .await?;
    use portcullis_core::store::{RecordedAlg, SigningKeyStore as _};
    let recorded = store.recorded_alg(RecordedAlg::AccessTokenDefault).await?;
    let access_token_alg = keyring::access_token_alg(config.access_token_alg, recorded);
    match (config.access_token_alg, recorded) {
        (None, Some(alg)) => tracing::info!(
            alg = alg.as_str(),
            "access tokens keep this deployment's algorithm (it had signing keys before EdDSA became the default); set PORTCULLIS_ACCESS_TOKEN_ALG=EdDSA to move, once every API accepts EdDSA"
        ),
        _ => tracing::info!(alg = access_token_alg.as_str(), "access token signing algorithm"),
    }
    // What stands in while a new access-token algorithm's key waits to sign: the last RS256 or
    // ES256 that signed access tokens (recorded whenever one of them does at start, so a
    // deployment moving from RS256 to EdDSA keeps RS256 meanwhile), else ES256.
    let access_token_stand_in = {
        let in_use = store.recorded_alg(RecordedAlg::StandIn).await?;
        let signs_now = keys.set.active(access_token_alg, now()).is_ok();
        if signs_now && access_token_alg.signs_id_tokens() && in_use != Some(access_token_alg) {
            store
                .record_alg(RecordedAlg::StandIn, access_token_alg)
                .await?;
        }
        let stand_in = if access_token_alg.signs_id_tokens() {
            access_token_alg
        } else {
            in_use
                .filter(|a| a.signs_id_tokens())
                .unwrap_or(portcullis_core::model::SigningAlg::ES256)
        };
        if !signs_now {
            tracing::info!(
                alg = access_token_alg.as_str(),
                stand_in = stand_in.as_str(),
                "the access-token algorithm's key is published and waits for its activation; the previous algorithm signs until then"
            );
        }
        stand_in
    };
    let metadata = serde_json::to_vec(&portcullis_core::discovery::metadata(&config.issuer))?;
    let store: Arc<dyn portcullis_core::store::Storage> =
        Arc::new(cache::CachedStore::new(Arc::new(store)));
    let audit = audit::Audit::start(store.clone(), config.event_buffer, metrics.clone())
        .with_network_prefix(config.ipv6_prefix);
    let responses = Arc::new(detect::Responses::new(
        config.detect_block_secs,
        config.detect_delay,
        config.ipv6_prefix,
    ));
    let geo = match &config.geoip_db {
        None => {
            tracing::info!(
                event = "detect.geo",
                "geographic detection: off (no PORTCULLIS_GEOIP_DB)"
            );
            None
        }
        Some(path) => {
            let db = geoip::GeoIp::open(path).context("PORTCULLIS_GEOIP_DB")?;
            tracing::info!(event = "detect.geo", "{}", db.describe());
            Some(db)
        }
    };
    // A response configured for a detection that cannot run is said at start.
    let travel = geo.as_ref().map(geoip::GeoIp::mode) == Some(geoip::GeoMode::City);
    if !travel
        && config
            .detect_rules
            .response(portcullis_core::detect::Detection::ImpossibleTravel)
            != portcullis_core::detect::Response::Alert
    {
        tracing::warn!(
            event = "detect.geo",
            "PORTCULLIS_DETECT_RESPONSES names impossible_travel, which needs a city-level PORTCULLIS_GEOIP_DB: it will not run"
        );
    }
    let webhook = match &config.alert_webhook {
        None => None,
        Some((url, secret)) => Some(webhook::Webhook::start(
            url.clone(),
            secret.clone(),
            backchannel::outbound_client(
                config.outbound_ca_file.as_deref(),
                "Portcullis alert webhook",
            )?,
            config.dev,
        )),
    };
    audit.set_detector(Arc::new(detect::Detector::new(
        config.detect_rules.clone(),
        store.clone(),
        geo,
        responses.clone(),
        audit.clone(),
        webhook,
    )));
    Ok(AppState::new(state::AppStateInner {
        audit,
        metrics,
        responses,
        cors_origins: Arc::new(cors::CorsOrigins::new(store.clone())),
        client_quota: Arc::new(quota::GovernorQuota::per_second(config.client_quota)),
        client_auth_limits: Arc::new(portcullis_guard::limiter::MemoryLimiter::new(
            portcullis_guard::limiter::Limit {
                max: config.client_auth_max_failures,
                window_secs: config::CLIENT_AUTH_WINDOW,
            },
            config.limiter_capacity,
        )),
        ipv6_prefix: config.ipv6_prefix,
        login_limits: Arc::new(
            throttle::LoginLimits::in_memory(
                portcullis_guard::limiter::Limit {
                    max: config.login_max_failures,
                    window_secs: config.login_window,
                },
                portcullis_guard::limiter::Limit {
                    max: config.stuffing_accounts,
                    window_secs: config.stuffing_window,
                },
                config.limiter_capacity,
            )
            .with_ipv6_prefix(config.ipv6_prefix),
        ),
        trusted_proxies: Arc::new(portcullis_guard::client_addr::TrustedProxies::new(
            config.trusted_proxies.clone(),
        )),
        store,
        keys: Arc::new(keyring::Keyring::new(keys)),
        session_csrf: Arc::new(state::session_csrf_tokens(&HashKey::new(&config.hash_key))),
        hash_key: Arc::new(HashKey::new(&config.hash_key)),
        hasher: PasswordHasher::new(config.hashing_concurrency)?
            .with_queue_limit(config.hashing_queue),
        password_policy: portcullis_core::password::PasswordPolicy {
            min_chars: config.password_min_length,
            ..Default::default()
        },
        lifetimes: config.lifetimes.clone(),
        access_token_alg,
        access_token_stand_in,
        issuer: config.issuer.clone().into(),
        issuer_origin: config.issuer_origin.clone().into(),
        issuer_hosts: config.issuer_hosts.clone().into(),
        templates: Arc::new(templates::Templates::new()?),
        metadata: metadata.into(),
    }))
}

/// Runs the server until SIGINT/SIGTERM.
/// `log_dropped`: the log writer's count of dropped lines, for the metrics.
pub async fn serve(
    config: Config,
    log_dropped: Option<tracing_appender::non_blocking::ErrorCounter>,
) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let store = open_store(&config).await?;
    let state = build_state(&config, store).await?;
    if let Some(counter) = log_dropped {
        state.metrics.count_log_drops(counter);
    }
    let dispatcher = backchannel::Dispatcher {
        store: state.store.clone(),
        keys: state.keys.clone(),
        issuer: state.issuer.clone(),
        http: backchannel::http_client(config.outbound_ca_file.as_deref())?,
        dev: config.dev,
        poll: config.backchannel_poll,
        retry_base: config.backchannel_retry_base,
    };
    tokio::spawn(dispatcher.run());
    let purge_store = state.store.clone();
    let retention_days = config.event_retention_days;
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            if let Err(e) = purge_store.purge_expired_flows(now()).await {
                tracing::warn!(event = "store.purge_failed", error = %e);
            }
            match purge_store.purge_expired(now()).await {
                Ok(n) if n > 0 => tracing::debug!(event = "store.purged", rows = n),
                Ok(_) => {}
                Err(e) => tracing::warn!(event = "store.purge_failed", error = %e),
            }
            match purge_store
                .purge_events(now() - retention_days * 86_400)
                .await
            {
                Ok(n) if n > 0 => tracing::debug!(event = "audit.purged", rows = n),
                Ok(_) => {}
                Err(e) => tracing::warn!(event = "store.purge_failed", error = %e),
            }
        }
    });
    // Keys: reloaded every few seconds and at SIGHUP, so a rotation or an emergency revocation
    // made with the CLI takes effect without a restart; the schedule rotates them too.
    let ring = state.keys.clone();
    let key_store = state.store.clone();
    let key_enc = keyring::encrypter(&config)?;
    let key_policy = keyring::KeyPolicy::from_config(&config);
    let key_metrics = state.metrics.clone();
    let access_alg = state.access_token_alg;
    tokio::spawn(async move {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut last_failure: Option<String> = None;
        loop {
            match hup.as_mut() {
                Some(h) => {
                    tokio::select! {
                        _ = tokio::time::sleep(keyring::RELOAD_EVERY) => {}
                        _ = h.recv() => {}
                    }
                }
                None => tokio::time::sleep(keyring::RELOAD_EVERY).await,
            }
            // A failure that goes on (a key this server cannot open until it is restarted
            // with the right encryption key) is logged when it starts, changes or ends, not
            // every few seconds.
            let at = now();
            let reloaded =
                keyring::reload(&ring, &*key_store, &key_enc, &key_policy, at, &key_metrics).await;
            key_metrics.set_key_reload_failing(reloaded.is_err());
            key_metrics.set_access_token_stand_in(
                !access_alg.signs_id_tokens()
                    && ring.snapshot().set.active(access_alg, at).is_err(),
            );
            match reloaded {
                Ok(()) => {
                    if last_failure.take().is_some() {
                        tracing::info!(event = "key.reload_recovered");
                    }
                }
                Err(e) => {
                    let text = format!("{e:#}");
                    if last_failure.as_deref() != Some(text.as_str()) {
                        tracing::warn!(event = "key.reload_failed", error = %text);
                        last_failure = Some(text);
                    }
                }
            }
        }
    });
    let audit = state.audit.clone();
    // Recorded once the server listens (a start that fails before does not change it).
    let serving_store = state.store.clone();
    let serving = (state.access_token_alg, config.key_rotation);
    let serving_enc = keyring::encrypter(&config)?;
    let record_serving = || async {
        keyring::record_serving(&*serving_store, serving.0, serving.1, &serving_enc).await
    };
    let admin_state = admin::AdminState::new(state.clone());
    let app = app::router(state);
    let handle = axum_server::Handle::new();
    let shutdown = handle.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        shutdown.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    if let Some(addr) = config.http_redirect_listen {
        spawn_http_redirect(addr, config.issuer.clone()).await?;
    }
    match &config.tls {
        Some(files) => {
            let tls =
                axum_server::tls_rustls::RustlsConfig::from_config(tls::server_config(files)?);
            tls::spawn_reloader(files.clone(), tls.clone());
            let listener = std::net::TcpListener::bind(config.listen)
                .with_context(|| format!("binding {}", config.listen))?;
            listener.set_nonblocking(true)?;
            let local = listener.local_addr()?;
            record_serving().await?;
            tracing::info!(issuer = %config.issuer, "listening on https://{local}");
            println!(
                "Portcullis is listening on https://{local} (issuer {})",
                config.issuer
            );
            if let Some(addr) = config.admin_listen {
                spawn_admin(addr, tls.clone(), admin_state, handle.clone())?;
            }
            let mut server = axum_server::from_tcp_rustls(listener, tls).handle(handle);
            limit_slow_clients(&mut server);
            server
                .serve(app.into_make_service_with_connect_info::<SocketAddr>())
                .await?;
        }
        None => {
            if config.admin_listen.is_some() {
                tracing::warn!(
                    event = "admin.off",
                    "the admin API (events, alerts, metrics) needs TLS: it is off in plain-HTTP proxy mode"
                );
            }
            let proxies = Arc::new(portcullis_guard::client_addr::TrustedProxies::new(
                config.trusted_proxies.clone(),
            ));
            let app = app.layer(axum::middleware::from_fn(
                move |req: Request, next: Next| {
                    let proxies = proxies.clone();
                    async move { only_from_proxies(&proxies, req, next).await }
                },
            ));
            let listener = std::net::TcpListener::bind(config.listen)
                .with_context(|| format!("binding {}", config.listen))?;
            listener.set_nonblocking(true)?;
            let local = listener.local_addr()?;
            record_serving().await?;
            tracing::warn!(issuer = %config.issuer, "listening on plain http://{local} behind a trusted proxy");
            println!(
                "Portcullis is listening on http://{local} behind a trusted proxy (issuer {})",
                config.issuer
            );
            let mut server = axum_server::from_tcp(listener).handle(handle);
            limit_slow_clients(&mut server);
            server
                .serve(app.into_make_service_with_connect_info::<SocketAddr>())
                .await?;
        }
    }
    // The events of the last requests reach storage before the process ends.
    let flushed = audit.flush(Duration::from_secs(5)).await;
    let c = &audit.counters;
    use std::sync::atomic::Ordering::Acquire;
    tracing::info!(
        event = "audit.shutdown",
        flushed,
        recorded = c.recorded.load(Acquire),
        stored = c.stored.load(Acquire),
        dropped = c.dropped.load(Acquire),
        pending = c.pending()
    );
    Ok(())
}

/// A client must send its request headers within this time (slow-loris defense); the TLS
/// handshake has its own 10 s limit (axum-server's default).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

fn limit_slow_clients<A>(server: &mut axum_server::Server<A>) {
    server
        .http_builder()
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        // Far above our own limits (`app::MAX_HEADERS`), so that the router, not hyper, refuses
        // a large request head, with the full security header set.
        .max_headers(1_000)
        // The same for HTTP/2, whose default header-list limit (16 KiB) would answer a long
        // target or a large header with a bare 431 before any layer runs.
        .http2()
        .max_header_list_size(256 * 1024);
}

async fn only_from_proxies(
    proxies: &portcullis_guard::client_addr::TrustedProxies,
    req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    match peer {
        // `contains` treats an IPv4-mapped peer (dual-stack listeners) as its IPv4 address.
        Some(ip) if proxies.contains(ip) => next.run(req).await,
        _ => {
            // Outside the router's layers: give the refusal the same header set.
            let mut res = (StatusCode::FORBIDDEN, "Forbidden\n").into_response();
            portcullis_guard::headers::apply(
                &mut res,
                &portcullis_guard::csp::CspNonce::generate(),
            );
            res
        }
    }
}

/// The optional plain-HTTP listener: it only redirects GET and HEAD to the issuer (308, no
/// body, no cookies) and refuses every other method (405).
/// The admin API on its own TLS listener (the server's certificate), stopped with the server.
fn spawn_admin(
    addr: SocketAddr,
    tls: axum_server::tls_rustls::RustlsConfig,
    state: admin::AdminState,
    handle: axum_server::Handle,
) -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("binding the admin listener {addr} (PORTCULLIS_ADMIN_LISTEN)"))?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    tracing::info!("admin API on https://{local}");
    let app = admin::router(state);
    tokio::spawn(async move {
        let mut server = axum_server::from_tcp_rustls(listener, tls).handle(handle);
        limit_slow_clients(&mut server);
        if let Err(e) = server
            .serve(app.into_make_service_with_connect_info::<SocketAddr>())
            .await
        {
            tracing::error!(error = %e, "the admin listener stopped");
        }
    });
    Ok(())
}

async fn spawn_http_redirect(addr: SocketAddr, issuer: String) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let issuer: Arc<str> = issuer.into();
    let app = axum::Router::new().fallback(move |method: axum::http::Method, uri: Uri| {
        let issuer = issuer.clone();
        async move {
            // Only GET and HEAD are redirected. A 308 would make the client re-send a POST
            // (a password, a client secret) to https and hide that it went out in clear text
            // first; a 405 makes the mistake visible instead.
            if method != axum::http::Method::GET && method != axum::http::Method::HEAD {
                let mut res = StatusCode::METHOD_NOT_ALLOWED.into_response();
                res.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                return res;
            }
            let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            let mut res = StatusCode::PERMANENT_REDIRECT.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("{issuer}{path}")) {
                res.headers_mut().insert(header::LOCATION, v);
            }
            res
        }
    });
    tracing::info!("redirecting plain http://{addr} to https");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "http redirect listener stopped");
        }
    });
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
