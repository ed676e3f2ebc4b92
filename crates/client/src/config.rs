//! Where Portcullis is and who the app is: from the environment or explicit.

use std::time::Duration;

use jsonwebtoken::Algorithm;
use url::{Host, Url};

use crate::error::{Error, Result};
use crate::secret::Secret;

/// The environment variable holding Portcullis's URL (its issuer).
pub const ENV_URL: &str = "PORTCULLIS_ENVIRONMENT_URL";
/// The environment variable holding the app's client id.
pub const ENV_CLIENT_ID: &str = "PORTCULLIS_CLIENT_ID";
/// The environment variable holding the app's client secret (absent for public clients).
pub const ENV_CLIENT_SECRET: &str = "PORTCULLIS_CLIENT_SECRET";
/// Optional: a PEM file of extra CA certificates to trust (a development server's own CA).
pub const ENV_CA_FILE: &str = "PORTCULLIS_CA_FILE";

/// Portcullis's URL: `https`, or `http` only on a loopback host, with no query, fragment or
/// credentials. It is the issuer every token must name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvironmentUrl(String);

impl EnvironmentUrl {
    /// Parses and checks `value`.
    ///
    /// ```
    /// use portcullis_client::EnvironmentUrl;
    /// assert!(EnvironmentUrl::parse("https://auth.example.com").is_ok());
    /// assert!(EnvironmentUrl::parse("http://127.0.0.1:8443").is_ok());
    /// assert!(EnvironmentUrl::parse("http://auth.example.com").is_err());
    /// ```
    pub fn parse(value: &str) -> Result<Self> {
        let url = Url::parse(value.trim())
            .map_err(|_| Error::Config(format!("{ENV_URL} is not a URL")))?;
        let loopback = match url.host() {
            Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(Host::Ipv4(ip)) => ip.is_loopback(),
            Some(Host::Ipv6(ip)) => ip.is_loopback(),
            None => return Err(Error::Config(format!("{ENV_URL} has no host"))),
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => {
                return Err(Error::Config(format!(
                    "{ENV_URL} must be https (http only on a loopback host)"
                )))
            }
        }
        if url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(Error::Config(format!(
                "{ENV_URL} must not carry a query, fragment or credentials"
            )));
        }
        Ok(EnvironmentUrl(
            url.as_str().trim_end_matches('/').to_owned(),
        ))
    }

    /// The issuer string, without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `https`, or `http` (loopback only).
    pub fn scheme(&self) -> &str {
        if self.0.starts_with("http://") {
            "http"
        } else {
            "https"
        }
    }
}

/// Everything the SDK needs; build it with [`crate::Portcullis::builder`] or
/// [`crate::Portcullis::from_env`].
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub issuer: EnvironmentUrl,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    /// Signature algorithms accepted, whatever a token's header says.
    pub algorithms: Vec<Algorithm>,
    /// Clock skew allowed on `exp`, `nbf`, `iat` and `auth_time`, seconds.
    pub leeway: i64,
    /// Least time between two JWKS fetches caused by an unknown `kid`.
    pub jwks_min_refresh: Duration,
    /// A JWKS older than this (or than its `Cache-Control: max-age`) is fetched again.
    pub jwks_max_age: Duration,
    /// A cached client-credentials token is replaced this long before it expires.
    pub token_renew_before: i64,
}

impl Config {
    pub fn new(issuer: EnvironmentUrl, client_id: String, client_secret: Option<Secret>) -> Self {
        Config {
            issuer,
            client_id,
            client_secret,
            algorithms: vec![Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256],
            leeway: 30,
            jwks_min_refresh: Duration::from_secs(30),
            jwks_max_age: Duration::from_secs(300),
            token_renew_before: 30,
        }
    }
}
