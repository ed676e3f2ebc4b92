//! The back-channel logout dispatcher: delivers the notices that the store queues in the
//! transaction ending a session (and that its sweep queues for sessions that expired).
//!
//! Outbound rules (PRACTICES §12): `https` only (`http` on a loopback host in development
//! mode), no redirects (a 3xx is a failure), 5 s in all per attempt, at most [`CONCURRENCY`]
//! deliveries at once, and never to a link-local or metadata address: host names are resolved
//! here, the addresses checked, and the connection made to those checked addresses (so a DNS
//! answer cannot change between the check and the connection). Loopback and private addresses
//! are allowed: back-channel URIs are registered by the operator (the CLI), not by strangers.
//! Each attempt signs a fresh logout token; [`MAX_ATTEMPTS`] attempts with exponential backoff,
//! then the notice is dropped and `logout.backchannel_failed` is logged.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::backchannel::{self, is_forbidden_address, LogoutSubject};
use portcullis_core::store::{LogoutNotice, Storage};
use tokio::sync::Semaphore;
use url::{Host, Url};

use crate::state::now;

/// Deliveries in flight at once.
pub const CONCURRENCY: usize = 8;
/// Total time of one attempt (connect, TLS, request and answer).
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per notice before it is given up.
pub const MAX_ATTEMPTS: u32 = 5;
/// A claimed notice is not claimed again for this long (seconds): far above [`TIMEOUT`], so
/// only a crashed process's notices come back.
const LEASE: i64 = 60;
/// Longest backoff between two attempts, seconds.
const MAX_BACKOFF: i64 = 3600;

/// Why the outbound client could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    #[error("PORTCULLIS_OUTBOUND_CA_FILE {0}: {1}")]
    CaFile(String, String),
    #[error("building the outbound HTTP client: {0}")]
    Client(String),
}

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The URI or every address it resolves to is not allowed: retrying cannot help.
    #[error("refused: {0}")]
    Refused(String),
    #[error("the receiver answered {0}")]
    Status(u16),
    #[error("request failed: {0}")]
    Request(String),
    #[error("signing the logout token: {0}")]
    Sign(String),
}

/// A host name resolved to no allowed address (carried through reqwest's error chain).
#[derive(Debug, thiserror::Error)]
#[error("{0} resolves only to link-local, metadata or unusable addresses")]
struct RefusedName(String);

/// Resolves host names with the system resolver and keeps only allowed addresses: reqwest
/// connects to exactly what this returns.
struct CheckedResolver;

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let allowed = allowed_addresses(found);
            if allowed.is_empty() {
                return Err(Box::new(RefusedName(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The addresses of `found` that an outbound call may reach.
fn allowed_addresses(found: impl IntoIterator<Item = SocketAddr>) -> Vec<SocketAddr> {
    found
        .into_iter()
        .filter(|a| !is_forbidden_address(a.ip()))
        .collect()
}

/// Checks a stored URI against the outbound rules before any connection.
pub(crate) fn check_target(uri: &str, dev: bool) -> Result<Url, DeliveryError> {
    let url = Url::parse(uri).map_err(|_| DeliveryError::Refused("not a URI".into()))?;
    let host = url
        .host()
        .ok_or_else(|| DeliveryError::Refused("no host".into()))?;
    match url.scheme() {
        "https" => {}
        "http" if dev && backchannel::is_loopback_host(&host) => {}
        _ => {
            return Err(DeliveryError::Refused(
                "not https (http only on loopback in development mode)".into(),
            ))
        }
    }
    let literal = match host {
        Host::Ipv4(ip) => Some(std::net::IpAddr::V4(ip)),
        Host::Ipv6(ip) => Some(std::net::IpAddr::V6(ip)),
        Host::Domain(_) => None,
    };
    if literal.is_some_and(is_forbidden_address) {
        return Err(DeliveryError::Refused(
            "link-local or metadata address".into(),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return Err(DeliveryError::Refused("userinfo or fragment".into()));
    }
    Ok(url)
}

/// The outbound HTTP client: system roots plus the optional extra CA file, no redirects, no
/// proxy, the checked resolver, [`TIMEOUT`].
pub fn http_client(ca_file: Option<&Path>) -> Result<reqwest::Client, SetupError> {
    outbound_client(ca_file, "Portcullis back-channel logout")
}

/// An outbound client under the rules above, announcing itself as `user_agent` (the alert
/// webhook uses one too).
pub fn outbound_client(
    ca_file: Option<&Path>,
    user_agent: &'static str,
) -> Result<reqwest::Client, SetupError> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .dns_resolver(Arc::new(CheckedResolver))
        .user_agent(user_agent);
    if let Some(path) = ca_file {
        let name = path.display().to_string();
        let pem =
            std::fs::read(path).map_err(|e| SetupError::CaFile(name.clone(), e.to_string()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| SetupError::CaFile(name.clone(), e.to_string()))?;
        if certs.is_empty() {
            return Err(SetupError::CaFile(
                name,
                "no certificate in the file".into(),
            ));
        }
        builder = builder.tls_certs_merge(certs);
    }
    builder
        .build()
        .map_err(|e| SetupError::Client(e.to_string()))
}

/// Seconds to wait after failed attempt number `attempts` (1-based): `base`, `2·base`, …
pub fn backoff(base: i64, attempts: u32) -> i64 {
    let doublings = attempts.saturating_sub(1).min(20);
    base.saturating_mul(1_i64 << doublings).min(MAX_BACKOFF)
}

/// Delivers queued logout notices.
pub struct Dispatcher {
    pub store: Arc<dyn Storage>,
    /// The live key set (reloaded while running): each attempt signs with the current keys.
    pub keys: Arc<crate::keyring::Keyring>,
    pub issuer: Arc<str>,
    pub http: reqwest::Client,
    pub dev: bool,
    pub poll: Duration,
    pub retry_base: i64,
}

impl Dispatcher {
    /// Runs forever: every `poll`, queues the notices of sessions that expired, then claims
    /// the due notices (as many as there are free delivery slots) and delivers each in its
    /// own task.
    pub async fn run(self) {
        let this = Arc::new(self);
        let slots = Arc::new(Semaphore::new(CONCURRENCY));
        loop {
            tokio::time::sleep(this.poll).await;
            let t = now();
            match this.store.enqueue_ended_sessions(t).await {
                Ok(n) if n > 0 => tracing::debug!(event = "logout.backchannel_queued", notices = n),
                Ok(_) => {}
                Err(e) => tracing::warn!(event = "logout.backchannel_sweep_failed", error = %e),
            }
            let free = slots.available_permits();
            if free == 0 {
                continue;
            }
            let limit = u32::try_from(free).unwrap_or(1);
            let notices = match this.store.claim_logout_notices(t, t + LEASE, limit).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(event = "logout.backchannel_claim_failed", error = %e);
                    continue;
                }
            };
            for notice in notices {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let this = this.clone();
                tokio::spawn(async move {
                    this.settle(notice).await;
                    drop(permit);
                });
            }
        }
    }

    /// One attempt at a claimed notice, and what follows from it (removal or a retry).
    async fn settle(&self, notice: LogoutNotice) {
        let outcome = self.attempt(&notice).await;
        let done = match &outcome {
            Ok(()) => {
                tracing::info!(
                    event = "logout.backchannel_sent",
                    client_id = %notice.client_id,
                    sid = %notice.session_id,
                    attempt = notice.attempts,
                );
                true
            }
            Err(e @ DeliveryError::Refused(_)) => {
                tracing::warn!(
                    event = "logout.backchannel_refused",
                    client_id = %notice.client_id,
                    sid = %notice.session_id,
                    error = %e,
                );
                tracing::warn!(
                    event = "logout.backchannel_failed",
                    client_id = %notice.client_id,
                    sid = %notice.session_id,
                    attempts = notice.attempts,
                    error = %e,
                );
                true
            }
            Err(e) if notice.attempts >= MAX_ATTEMPTS => {
                tracing::warn!(
                    event = "logout.backchannel_failed",
                    client_id = %notice.client_id,
                    sid = %notice.session_id,
                    attempts = notice.attempts,
                    error = %e,
                );
                true
            }
            Err(e) => {
                let wait = backoff(self.retry_base, notice.attempts);
                tracing::info!(
                    event = "logout.backchannel_retry",
                    client_id = %notice.client_id,
                    sid = %notice.session_id,
                    attempt = notice.attempts,
                    retry_in = wait,
                    error = %e,
                );
                if let Err(e) = self
                    .store
                    .retry_logout_notice(notice.id, now() + wait)
                    .await
                {
                    // The lease brings it back anyway.
                    tracing::warn!(event = "logout.backchannel_store_failed", error = %e);
                }
                false
            }
        };
        if done {
            if let Err(e) = self.store.remove_logout_notice(notice.id).await {
                tracing::warn!(event = "logout.backchannel_store_failed", error = %e);
            }
        }
    }

    async fn attempt(&self, notice: &LogoutNotice) -> Result<(), DeliveryError> {
        let client = self
            .store
            .client_by_id(&notice.client_id)
            .await
            .map_err(|e| DeliveryError::Request(format!("loading the client: {e}")))?;
        let Some(uri) = client
            .as_ref()
            .and_then(|c| c.backchannel_logout_uri.clone())
        else {
            return Err(DeliveryError::Refused(
                "the client no longer has a back-channel logout URI".into(),
            ));
        };
        let Some(client) = client else {
            return Err(DeliveryError::Refused("the client no longer exists".into()));
        };
        let url = check_target(&uri, self.dev)?;
        // Signed now, for this attempt only: a retry carries a new jti, iat and exp.
        let keys = self.keys.snapshot();
        let token = backchannel::logout_token(
            &keys.set,
            &self.issuer,
            &LogoutSubject {
                client_id: &client.id,
                alg: client.id_token_alg,
                user_id: &notice.user_id,
                session_id: &notice.session_id,
            },
            now(),
        )
        .map_err(|e| DeliveryError::Sign(e.to_string()))?;
        let res = self
            .http
            .post(url)
            .form(&[("logout_token", token.as_str())])
            .send()
            .await
            .map_err(|e| {
                if refused_name(&e) {
                    DeliveryError::Refused(chain(&e))
                } else {
                    DeliveryError::Request(chain(&e))
                }
            })?;
        match res.status().as_u16() {
            200 | 204 => Ok(()),
            s => Err(DeliveryError::Status(s)),
        }
    }
}

/// Did the checked resolver refuse the host name?
pub(crate) fn refused_name(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.downcast_ref::<RefusedName>().is_some() {
            return true;
        }
        source = err.source();
    }
    false
}

/// An error with its causes, for the log.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(err) = source {
        out.push_str(": ");
        out.push_str(&err.to_string());
        source = err.source();
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn targets_follow_the_outbound_rules() {
        assert!(check_target("https://rp.example.com/bc", false).is_ok());
        assert!(check_target("https://127.0.0.1:9/bc", false).is_ok());
        assert!(check_target("https://10.0.0.1/bc", false).is_ok());
        assert!(check_target("http://127.0.0.1:9/bc", true).is_ok());
        assert!(check_target("http://localhost:9/bc", true).is_ok());
        for (bad, dev) in [
            ("http://127.0.0.1:9/bc", false),
            ("http://rp.example.com/bc", true),
            ("https://169.254.169.254/latest/meta-data", false),
            ("https://[fe80::1]/bc", true),
            ("https://[fd00:ec2::254]/bc", false),
            ("https://100.100.100.200/bc", false),
            ("https://0.0.0.0/bc", false),
            ("https://u:p@rp.example.com/bc", false),
            ("https://rp.example.com/bc#f", false),
        ] {
            assert!(
                matches!(check_target(bad, dev), Err(DeliveryError::Refused(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn resolved_addresses_are_filtered() {
        let found: Vec<SocketAddr> = [
            "169.254.169.254:0",
            "[fe80::1]:0",
            "100.100.100.200:0",
            "[fd00:ec2::254]:0",
            "[::ffff:169.254.169.254]:0",
            "0.0.0.0:0",
            "10.0.0.7:0",
            "127.0.0.1:0",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        assert_eq!(
            allowed_addresses(found),
            vec![
                "10.0.0.7:0".parse::<SocketAddr>().unwrap(),
                "127.0.0.1:0".parse().unwrap()
            ]
        );
    }

    #[test]
    fn backoff_doubles_and_is_bounded() {
        assert_eq!(backoff(10, 1), 10);
        assert_eq!(backoff(10, 2), 20);
        assert_eq!(backoff(10, 4), 80);
        assert_eq!(backoff(600, 30), MAX_BACKOFF);
    }

    #[tokio::test]
    async fn a_name_of_only_forbidden_addresses_is_refused() {
        use reqwest::dns::Resolve;
        // An IP-literal name resolves to itself without any DNS query.
        let r = CheckedResolver
            .resolve("169.254.169.254".parse().unwrap())
            .await;
        assert!(r.is_err());
        let ok: Vec<SocketAddr> = CheckedResolver
            .resolve("127.0.0.1".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert_eq!(ok, vec!["127.0.0.1:0".parse::<SocketAddr>().unwrap()]);
    }
}
