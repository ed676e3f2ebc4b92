//! # Portcullis SDK
//!
//! The client side of [Portcullis](https://github.com/) for Rust applications: sign users in
//! with the authorization code flow and PKCE, validate access tokens locally against the
//! JWKS, refresh and revoke tokens, get client-credentials tokens, build logout URLs and
//! verify back-channel logout tokens. Every check an app must make is made here, and each
//! refusal is a typed [`Error`].
//!
//! ```no_run
//! # async fn demo() -> portcullis_client::Result<()> {
//! use portcullis_client::{AuthorizationOptions, Portcullis};
//!
//! // PORTCULLIS_ENVIRONMENT_URL, PORTCULLIS_CLIENT_ID, PORTCULLIS_CLIENT_SECRET.
//! let portcullis = Portcullis::from_env()?;
//! let (url, pending) = portcullis
//!     .authorization_url("https://app.example.com/callback", &AuthorizationOptions::default())
//!     .await?;
//! // Keep `pending` server-side, send the browser to `url`; at the callback:
//! # let callback = String::new();
//! let signed_in = portcullis.authenticate_with_code(&callback, &pending).await?;
//! println!("hello {}", signed_in.claims.sub);
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod authorize;
mod config;
mod error;
mod http;
mod jwks;
mod pkce;
mod secret;
mod tokens;
mod validate;

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::OnceCell;

pub use authorize::{AuthorizationOptions, PendingAuthorization, Prompt, PENDING_LIFETIME};
pub use config::{EnvironmentUrl, ENV_CA_FILE, ENV_CLIENT_ID, ENV_CLIENT_SECRET, ENV_URL};
pub use error::{Error, InvalidToken, OAuthError, Result};
pub use jsonwebtoken::Algorithm;
pub use jwks::MAX_STALENESS;
pub use secret::Secret;
pub use tokens::{ClientToken, SignedIn, TokenTypeHint, Tokens};
pub use validate::{
    AccessTokenClaims, Audience, IdTokenClaims, LogoutRequest, BACKCHANNEL_LOGOUT_EVENT,
};

use config::Config;

/// Where the SDK reads the time: the system clock, unless a test gives another.
pub trait Clock: Send + Sync {
    /// Seconds since the Unix epoch.
    fn now(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }
}

/// The endpoints from Portcullis's discovery document.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub end_session_endpoint: Option<String>,
    pub revocation_endpoint: Option<String>,
}

/// A Portcullis client for one app. Cheap to clone; share one per process (it holds the JWKS
/// and client-credentials caches).
#[derive(Clone)]
pub struct Portcullis {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    metadata: OnceCell<Metadata>,
    jwks: jwks::Jwks,
    client_tokens: tokens::ClientTokenCache,
}

impl std::fmt::Debug for Portcullis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Portcullis")
            .field("issuer", &self.inner.config.issuer.as_str())
            .field("client_id", &self.inner.config.client_id)
            .finish_non_exhaustive()
    }
}

impl Portcullis {
    /// Reads `PORTCULLIS_ENVIRONMENT_URL`, `PORTCULLIS_CLIENT_ID`, `PORTCULLIS_CLIENT_SECRET`
    /// (absent for a public client) and, optionally, `PORTCULLIS_CA_FILE` (extra CA
    /// certificates in PEM, for a development server's own CA).
    ///
    /// ```no_run
    /// let portcullis = portcullis_client::Portcullis::from_env()?;
    /// # Ok::<(), portcullis_client::Error>(())
    /// ```
    pub fn from_env() -> Result<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let url = var(ENV_URL).ok_or_else(|| Error::Config(format!("{ENV_URL} is not set")))?;
        let id = var(ENV_CLIENT_ID)
            .ok_or_else(|| Error::Config(format!("{ENV_CLIENT_ID} is not set")))?;
        let mut builder = Portcullis::builder(&url, id.trim())?;
        if let Some(secret) = var(ENV_CLIENT_SECRET) {
            builder = builder.client_secret(Secret::new(secret.trim()));
        }
        if let Some(path) = var(ENV_CA_FILE) {
            let pem = std::fs::read(path.trim())
                .map_err(|_| Error::Config(format!("{ENV_CA_FILE} could not be read")))?;
            builder = builder.root_certificates_pem(&pem)?;
        }
        builder.build()
    }

    /// Starts an explicit configuration: Portcullis's URL (`https`, or `http` on loopback)
    /// and the app's client id.
    ///
    /// ```
    /// use portcullis_client::{Portcullis, Secret};
    /// let portcullis = Portcullis::builder("https://auth.example.com", "pcc_example")?
    ///     .client_secret(Secret::new("pcs_example"))
    ///     .build()?;
    /// assert!(Portcullis::builder("http://auth.example.com", "pcc_example").is_err());
    /// # Ok::<(), portcullis_client::Error>(())
    /// ```
    pub fn builder(environment_url: &str, client_id: &str) -> Result<Builder> {
        let issuer = EnvironmentUrl::parse(environment_url)?;
        if client_id.is_empty() || client_id.len() > 256 {
            return Err(Error::Config(format!(
                "{ENV_CLIENT_ID} is empty or too long"
            )));
        }
        Ok(Builder {
            config: Config::new(issuer, client_id.to_owned(), None),
            roots: Vec::new(),
            http: None,
            clock: Arc::new(SystemClock),
        })
    }

    /// The issuer every token must name.
    pub fn issuer(&self) -> &str {
        self.inner.config.issuer.as_str()
    }

    /// The app's client id.
    pub fn client_id(&self) -> &str {
        &self.inner.config.client_id
    }

    /// How many times the JWKS has been fetched (for monitoring the cache).
    pub fn jwks_fetches(&self) -> u64 {
        self.inner.jwks.fetches()
    }

    fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    /// The discovery document, fetched once; its issuer must be the configured one.
    async fn metadata(&self) -> Result<&Metadata> {
        self.inner
            .metadata
            .get_or_try_init(|| async {
                let uri = format!(
                    "{}/.well-known/openid-configuration",
                    self.inner.config.issuer.as_str()
                );
                let m: Metadata = http::get_json(&self.inner.http, &uri).await?;
                // Exactly the configured issuer (OpenID Connect Discovery §4.3).
                if m.issuer != self.inner.config.issuer.as_str() {
                    return Err(Error::Protocol(
                        "the discovery document names another issuer".into(),
                    ));
                }
                // Every endpoint as safe as the issuer: https (or the issuer's own loopback
                // http), never an endpoint that would carry the client secret in the clear.
                let scheme = self.inner.config.issuer.scheme();
                let endpoints = [
                    Some(&m.authorization_endpoint),
                    Some(&m.token_endpoint),
                    Some(&m.jwks_uri),
                    m.end_session_endpoint.as_ref(),
                    m.revocation_endpoint.as_ref(),
                ];
                for e in endpoints.into_iter().flatten() {
                    let ok = url::Url::parse(e)
                        .is_ok_and(|u| u.scheme() == "https" || u.scheme() == scheme);
                    if !ok {
                        return Err(Error::Protocol(
                            "the discovery document names an endpoint that is not https".into(),
                        ));
                    }
                }
                Ok(m)
            })
            .await
    }
}

/// Builds a [`Portcullis`]; see [`Portcullis::builder`].
pub struct Builder {
    config: Config,
    roots: Vec<reqwest::Certificate>,
    http: Option<reqwest::Client>,
    clock: Arc<dyn Clock>,
}

impl Builder {
    /// The app's client secret (confidential clients; omit for a public client).
    pub fn client_secret(mut self, secret: Secret) -> Self {
        self.config.client_secret = Some(secret);
        self
    }

    /// Trusts these CA certificates (PEM) besides the system's: a development server's CA.
    pub fn root_certificates_pem(mut self, pem: &[u8]) -> Result<Self> {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|_| Error::Config("the CA certificates are not valid PEM".into()))?;
        if certs.is_empty() {
            return Err(Error::Config("no CA certificate in the PEM".into()));
        }
        self.roots.extend(certs);
        Ok(self)
    }

    /// The signature algorithms accepted (default EdDSA, ES256 and RS256, the ones Portcullis
    /// signs with). A token whose header names another is refused, whatever its key.
    ///
    /// ```
    /// use portcullis_client::{Algorithm, Portcullis};
    /// let portcullis = Portcullis::builder("https://auth.example.com", "pcc_example")?
    ///     .algorithms(&[Algorithm::ES256])
    ///     .leeway(10)
    ///     .build()?;
    /// # let _ = portcullis;
    /// # Ok::<(), portcullis_client::Error>(())
    /// ```
    pub fn algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        self.config.algorithms = algorithms.to_vec();
        self
    }

    /// Clock skew tolerated on token times, seconds (default 30, at most 300).
    pub fn leeway(mut self, seconds: u32) -> Self {
        self.config.leeway = i64::from(seconds.min(300));
        self
    }

    /// Least time between two JWKS fetch attempts, failed or not (default 30 s): an unknown
    /// `kid` or an unreachable Portcullis causes at most one per interval.
    pub fn jwks_min_refresh(mut self, interval: Duration) -> Self {
        self.config.jwks_min_refresh = interval;
        self
    }

    /// The longest a fetched JWKS is used before it is fetched again (default 300 s, and
    /// never longer than the JWKS answer's `Cache-Control: max-age`): how soon a key revoked
    /// at Portcullis stops verifying here.
    pub fn jwks_max_age(mut self, age: Duration) -> Self {
        self.config.jwks_max_age = age.max(Duration::from_secs(1));
        self
    }

    /// The clock token times are checked against (tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses this HTTP client instead of the SDK's own (which has a 10 s timeout, no
    /// redirects and TLS 1.2+).
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// The finished client.
    pub fn build(self) -> Result<Portcullis> {
        if self.config.algorithms.is_empty() {
            return Err(Error::Config("no signature algorithm allowed".into()));
        }
        // Shared-secret algorithms have no place in verifying a provider's tokens.
        if self
            .config
            .algorithms
            .iter()
            .any(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
        {
            return Err(Error::Config(
                "HMAC algorithms cannot verify Portcullis's tokens".into(),
            ));
        }
        let http = match self.http {
            Some(h) => h,
            None => {
                let mut b = reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(Duration::from_secs(10))
                    .tls_version_min(reqwest::tls::Version::TLS_1_2)
                    .user_agent(concat!("portcullis-client/", env!("CARGO_PKG_VERSION")));
                if !self.roots.is_empty() {
                    b = b.tls_certs_merge(self.roots);
                }
                b.build()
                    .map_err(|_| Error::Config("the HTTP client could not be built".into()))?
            }
        };
        Ok(Portcullis {
            inner: Arc::new(Inner {
                config: self.config,
                http,
                clock: self.clock,
                metadata: OnceCell::new(),
                jwks: jwks::Jwks::default(),
                client_tokens: tokens::ClientTokenCache::default(),
            }),
        })
    }
}
