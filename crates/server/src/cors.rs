//! Which browser origins may call `/token`, `/userinfo` (and later `/revoke`) from a page: the
//! origins of the registered redirect URIs of enabled public clients (browser apps). An app
//! registered with a loopback IP redirect (`http://127.0.0.1/cb`) may use any port, as its
//! redirects may (RFC 8252). Confidential clients call from their servers and need no CORS.
//!
//! The set is rebuilt from the store at most every [`TTL`], only when a request carries an
//! `Origin` header, so a client registered or disabled by the CLI is seen within that time.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::HeaderValue;
use portcullis_core::model::ClientKind;
use portcullis_core::store::Storage;
use portcullis_guard::cors::origin_of;

/// Longest time a computed origin set is used.
pub const TTL: Duration = Duration::from_millis(500);

const LOOPBACK_HOSTS: [&str; 2] = ["http://127.0.0.1", "http://[::1]"];

#[derive(Default)]
struct Origins {
    exact: HashSet<String>,
    /// Loopback IP origins (`http://127.0.0.1`) on which any port is allowed.
    any_port: HashSet<&'static str>,
}

impl Origins {
    fn allows(&self, origin: &str) -> bool {
        if self.exact.contains(origin) {
            return true;
        }
        self.any_port.iter().any(|host| {
            origin
                .strip_prefix(host)
                .and_then(|r| r.strip_prefix(':'))
                .is_some_and(|port| {
                    !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
                })
        })
    }
}

/// The cached origin set.
pub struct CorsOrigins {
    store: Arc<dyn Storage>,
    cached: Mutex<Option<(Instant, Arc<Origins>)>>,
}

impl CorsOrigins {
    pub fn new(store: Arc<dyn Storage>) -> Self {
        Self {
            store,
            cached: Mutex::new(None),
        }
    }

    async fn current(&self) -> Option<Arc<Origins>> {
        if let Ok(guard) = self.cached.lock() {
            if let Some((at, set)) = guard.as_ref() {
                if at.elapsed() < TTL {
                    return Some(set.clone());
                }
            }
        }
        let clients = match self.store.list_clients().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "could not load client origins for CORS");
                return None;
            }
        };
        let mut set = Origins::default();
        for c in clients
            .iter()
            .filter(|c| c.kind == ClientKind::Public && !c.disabled)
        {
            for uri in &c.redirect_uris {
                if let Some(host) = LOOPBACK_HOSTS.iter().find(|h| {
                    uri.strip_prefix(**h)
                        .is_some_and(|r| r.is_empty() || r.starts_with([':', '/', '?']))
                }) {
                    set.any_port.insert(host);
                }
                if let Some(o) = origin_of(uri) {
                    set.exact.insert(o);
                }
            }
        }
        let set = Arc::new(set);
        if let Ok(mut guard) = self.cached.lock() {
            *guard = Some((Instant::now(), set.clone()));
        }
        Some(set)
    }

    /// May a page of `origin` call the token endpoints? Fails closed on a storage error.
    pub async fn allows(&self, origin: &HeaderValue) -> bool {
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        match self.current().await {
            Some(set) => set.allows(origin),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_any_port_and_exact_otherwise() {
        let mut o = Origins::default();
        o.exact.insert("https://spa.example.com".into());
        o.any_port.insert("http://127.0.0.1");
        assert!(o.allows("https://spa.example.com"));
        assert!(!o.allows("https://spa.example.com:8443"));
        assert!(!o.allows("https://spa.example.com.evil.example"));
        assert!(o.allows("http://127.0.0.1:5173"));
        assert!(!o.allows("http://127.0.0.1:5173.evil.example"));
        assert!(!o.allows("http://127.0.0.1:"));
        assert!(!o.allows("http://127.0.0.10:5173"));
        assert!(!o.allows("http://[::1]:5173"));
        assert!(!o.allows("null"));
    }
}
