//! Which browser origins may call `/token`, `/userinfo` (and later `/revoke`) from a page: the
//! exact origins of the registered redirect URIs of enabled public clients (browser apps).
//! The any-port rule of loopback redirects (RFC 8252) is for native apps, which do not use
//! CORS, so it does not apply here: a page on another local port gets nothing. Confidential
//! clients call from their servers and need no CORS.
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

/// The exact origins allowed.
#[derive(Default)]
struct Origins {
    exact: HashSet<String>,
}

impl Origins {
    fn allows(&self, origin: &str) -> bool {
        self.exact.contains(origin)
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
    fn only_exact_origins() {
        let mut o = Origins::default();
        o.exact.insert("https://spa.example.com".into());
        o.exact.insert("http://127.0.0.1:5173".into());
        assert!(o.allows("https://spa.example.com"));
        assert!(o.allows("http://127.0.0.1:5173"));
        for bad in [
            "https://spa.example.com:8443",
            "https://spa.example.com.evil.example",
            "http://127.0.0.1:5174",
            "http://127.0.0.1",
            "null",
        ] {
            assert!(!o.allows(bad), "{bad}");
        }
    }
}
