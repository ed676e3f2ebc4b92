//! The JWKS cache: keys by `kid`, fetched at first use, again when older than the maximum age,
//! and again on an unknown `kid` (at most once per minimum interval, so tokens with made-up
//! key ids cannot make the app hammer Portcullis).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use jsonwebtoken::jwk::{Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::config::Config;
use crate::error::{Error, InvalidToken, Result};

/// One verification key and the algorithm it is published for.
pub(crate) struct Key {
    pub alg: Algorithm,
    pub key: DecodingKey,
}

#[derive(Default)]
struct Snapshot {
    keys: HashMap<String, Arc<Key>>,
    fetched: Option<Instant>,
}

#[derive(Default)]
pub(crate) struct Jwks {
    current: RwLock<Arc<Snapshot>>,
    /// Held while fetching: concurrent misses wait for one fetch instead of each making one.
    fetching: Mutex<()>,
    fetches: std::sync::atomic::AtomicU64,
}

impl Jwks {
    fn snapshot(&self) -> Arc<Snapshot> {
        match self.current.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// How many times the JWKS was fetched.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The key `kid`, fetching the JWKS if it is unknown or stale (within the limits).
    pub async fn key(
        &self,
        kid: &str,
        uri: &str,
        http: &reqwest::Client,
        config: &Config,
    ) -> Result<Arc<Key>> {
        let fresh = |s: &Snapshot| {
            s.fetched
                .is_some_and(|at| at.elapsed() < config.jwks_max_age)
        };
        let snap = self.snapshot();
        if fresh(&snap) {
            if let Some(k) = snap.keys.get(kid) {
                return Ok(k.clone());
            }
        }
        let _one = self.fetching.lock().await;
        // Someone else may have fetched while we waited.
        let snap = self.snapshot();
        if let Some(k) = snap.keys.get(kid).filter(|_| fresh(&snap)) {
            return Ok(k.clone());
        }
        let recently = snap
            .fetched
            .is_some_and(|at| at.elapsed() < config.jwks_min_refresh);
        if recently && fresh(&snap) {
            return Err(InvalidToken::UnknownKey.into());
        }
        match self.fetch(uri, http, config).await {
            Ok(keys) => {
                let next = Arc::new(Snapshot {
                    keys,
                    fetched: Some(Instant::now()),
                });
                if let Ok(mut cur) = self.current.write() {
                    *cur = next.clone();
                }
                next.keys
                    .get(kid)
                    .cloned()
                    .ok_or(Error::InvalidToken(InvalidToken::UnknownKey))
            }
            // A stale set still verifies the keys it has while Portcullis is unreachable.
            Err(e) => snap.keys.get(kid).cloned().ok_or(e),
        }
    }

    async fn fetch(
        &self,
        uri: &str,
        http: &reqwest::Client,
        config: &Config,
    ) -> Result<HashMap<String, Arc<Key>>> {
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let body: serde_json::Value = crate::http::get_json(http, uri).await?;
        let list = body
            .get("keys")
            .and_then(|k| k.as_array())
            .ok_or_else(|| Error::Protocol("the JWKS has no keys array".into()))?;
        let mut keys = HashMap::new();
        for raw in list {
            // A key we cannot use (another algorithm, encryption) is skipped, not fatal.
            let Ok(jwk) = serde_json::from_value::<Jwk>(raw.clone()) else {
                continue;
            };
            if let Some((kid, key)) = usable(&jwk, config) {
                keys.insert(kid, Arc::new(key));
            }
        }
        Ok(keys)
    }
}

/// The key, if it names its `kid` and an allowed signature algorithm.
fn usable(jwk: &Jwk, config: &Config) -> Option<(String, Key)> {
    if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    let kid = jwk.common.key_id.clone()?;
    let alg = match jwk.common.key_algorithm? {
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    };
    if !config.algorithms.contains(&alg) {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some((kid, Key { alg, key }))
}
