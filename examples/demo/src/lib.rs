//! # The Portcullis demo app
//!
//! A small axum app that signs users in through Portcullis with the SDK
//! (`portcullis-client`) and protects itself with the guard crate (`portcullis-guard`):
//!
//! - `GET /` a sign-in link; `GET /login` starts the code flow with PKCE (the pending
//!   authorization stays server-side, the browser gets a `__Secure-` transaction cookie
//!   scoped to `/callback`);
//! - `GET /callback` finishes it (`authenticate_with_code`) and starts an app session: the
//!   tokens stay in this process, the browser holds an opaque `__Host-` session id;
//! - `GET /me` shows the ID token's claims, refreshing the access token silently when it
//!   expires soon (rotation: the new refresh token replaces the old one);
//! - `POST /logout` (CSRF token + same-origin check) ends the app session, revokes the refresh
//!   token and sends the browser to Portcullis's logout;
//! - `POST /backchannel-logout` ends app sessions on Portcullis's word (a verified logout
//!   token, never twice the same `jti`);
//! - `GET /api/things` an API route for `Bearer` access tokens (401/403 per RFC 6750).
//!
//! Every response carries the guard's security headers (HSTS, a nonce'd CSP without inline
//! script, nosniff, COOP, frame denial, `no-store`).
#![forbid(unsafe_code)]

pub mod config;
mod pages;
mod routes;
pub mod store;
pub mod tls;

use std::sync::Arc;

use axum::Router;
use portcullis_client::{Clock, Portcullis, SystemClock};
use portcullis_guard::cookies::{HostCookie, PathCookie, SameSite};
use portcullis_guard::csrf::SessionBoundTokens;

pub use config::{ConfigError, DemoConfig};

/// The session cookie: an opaque random id. `SameSite=Strict`, so no other site can make the
/// browser send it; the browser withholds it on the redirect chain that comes back from
/// Portcullis, which is why the callback answers with a same-site hop to `/me`.
pub const SESSION_COOKIE: HostCookie = HostCookie::new("__Host-demo-session", SameSite::Strict);
/// The transaction cookie: the id of the pending sign-in, sent only to the callback. `Lax`,
/// since the callback is a top-level navigation from Portcullis, another site.
pub const TX_COOKIE: PathCookie =
    PathCookie::new("__Secure-demo-tx", config::CALLBACK_PATH, SameSite::Lax);
/// The transaction's browser binding: a second random value the pending sign-in needs. A
/// `__Secure-` cookie can be set for this host by a sibling domain (`Domain=`, cookie
/// tossing), which would sign the victim in as the attacker (login CSRF); a `__Host-` cookie
/// cannot be.
pub const TX_BINDING_COOKIE: HostCookie = HostCookie::new("__Host-demo-txb", SameSite::Lax);

/// The app: configuration, the SDK client, the in-memory store and the CSRF key.
pub struct Demo {
    pub config: DemoConfig,
    pub portcullis: Portcullis,
    pub store: store::Store,
    clock: Arc<dyn Clock>,
    csrf: SessionBoundTokens,
    pages: pages::Pages,
    /// Sign-ins started per network (each stores a pending authorization until it expires).
    logins: portcullis_guard::limiter::MemoryLimiter,
}

/// Sign-ins one network (an IPv4 address, an IPv6 /64) may start per minute.
pub const LOGINS_PER_MINUTE: u32 = 30;

impl Demo {
    /// The app with the system clock.
    pub fn new(config: DemoConfig, portcullis: Portcullis) -> Result<Arc<Self>, ConfigError> {
        Self::with_clock(config, portcullis, Arc::new(SystemClock))
    }

    /// The app reading the time from `clock` (tests: give the SDK the same clock).
    pub fn with_clock(
        config: DemoConfig,
        portcullis: Portcullis,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, ConfigError> {
        Ok(Arc::new(Demo {
            config,
            portcullis,
            store: store::Store::default(),
            clock,
            csrf: SessionBoundTokens::random(),
            pages: pages::Pages::new()?,
            logins: portcullis_guard::limiter::MemoryLimiter::new(
                portcullis_guard::limiter::Limit {
                    max: LOGINS_PER_MINUTE,
                    window_secs: 60,
                },
                10_000,
            ),
        }))
    }

    fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The router with every route and the security layers.
    pub fn router(self: &Arc<Self>) -> Router {
        routes::router(self.clone())
    }
}

/// Serves `app` over TLS on `listener` until the process ends.
pub async fn serve(
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let tls = axum_server::tls_rustls::RustlsConfig::from_config(tls);
    axum_server::from_tcp_rustls(listener, tls)
        .serve(app.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .await
}
