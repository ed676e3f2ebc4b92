//! The JWKS cache: keys by `kid`, fetched at first use; again once older than its lifetime
//! (the JWKS answer's `Cache-Control: max-age`, at most the configured maximum, 300 s by
//! default: a revoked key stops verifying within minutes); and again on an unknown `kid`. At
//! most one fetch is attempted per minimum interval, failed or not, so tokens with made-up key
//! ids or an unreachable Portcullis cannot make the app hammer it or queue behind it. While
//! Portcullis is unreachable the last keys go on verifying, for at most
//! [`MAX_STALENESS`]; after that validation fails closed.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::config::Config;
use crate::error::{Error, InvalidToken, Result};

/// The longest a fetched key set is used while no newer one can be fetched.
pub const MAX_STALENESS: Duration = Duration::from_secs(24 * 3600);
/// The largest JWKS body read.
const MAX_BODY: usize = 1024 * 1024;

/// One verification key and the algorithm it is published for.
pub(crate) struct Key {
    pub alg: Algorithm,
    pub key: DecodingKey,
}

#[derive(Default)]
struct Snapshot {
    keys: HashMap<String, Arc<Key>>,
    /// When fetched, and how long it is fresh.
    fetched: Option<(Instant, Duration)>,
}

impl Snapshot {
    fn fresh(&self) -> bool {
        self.fetched.is_some_and(|(at, life)| at.elapsed() < life)
    }

    fn usable(&self) -> bool {
        self.fetched
            .is_some_and(|(at, _)| at.elapsed() < MAX_STALENESS)
    }
}

#[derive(Default)]
pub(crate) struct Jwks {
    current: RwLock<Arc<Snapshot>>,
    /// Held while fetching: concurrent misses wait for one fetch instead of each making one.
    fetching: Mutex<Option<Instant>>,
    fetches: std::sync::atomic::AtomicU64,
}

impl Jwks {
    fn snapshot(&self) -> Arc<Snapshot> {
        match self.current.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// How many times a JWKS fetch was attempted.
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
        let snap = self.snapshot();
        if snap.fresh() {
            if let Some(k) = snap.keys.get(kid) {
                return Ok(k.clone());
            }
        }
        // A stale but usable key while someone else is fetching: no waiting behind them.
        let mut last_attempt = match self.fetching.try_lock() {
            Ok(guard) => guard,
            Err(_) => match snap.keys.get(kid).filter(|_| snap.usable()) {
                Some(k) => return Ok(k.clone()),
                None => self.fetching.lock().await,
            },
        };
        // Someone else may have fetched while we waited.
        let snap = self.snapshot();
        if snap.fresh() {
            if let Some(k) = snap.keys.get(kid) {
                return Ok(k.clone());
            }
        }
        let known = || {
            snap.keys
                .get(kid)
                .filter(|_| snap.usable())
                .cloned()
                .ok_or(Error::InvalidToken(InvalidToken::UnknownKey))
        };
        if last_attempt.is_some_and(|at| at.elapsed() < config.jwks_min_refresh) {
            return known();
        }
        *last_attempt = Some(Instant::now());
        match self.fetch(uri, http, config).await {
            Ok((keys, life)) => {
                let next = Arc::new(Snapshot {
                    keys,
                    fetched: Some((Instant::now(), life)),
                });
                if let Ok(mut cur) = self.current.write() {
                    *cur = next.clone();
                }
                next.keys
                    .get(kid)
                    .cloned()
                    .ok_or(Error::InvalidToken(InvalidToken::UnknownKey))
            }
            // The last keys go on verifying while Portcullis is unreachable (for a while).
            Err(e) => known().map_err(|_| e),
        }
    }

    async fn fetch(
        &self,
        uri: &str,
        http: &reqwest::Client,
        config: &Config,
    ) -> Result<(HashMap<String, Arc<Key>>, Duration)> {
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (body, max_age) = crate::http::get_json_cached(http, uri, MAX_BODY).await?;
        let body: serde_json::Value = body;
        let life = max_age
            .map_or(config.jwks_max_age, |m| m.min(config.jwks_max_age))
            .max(Duration::from_secs(1));
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
        Ok((keys, life))
    }
}

/// The key, if it names its `kid` and an allowed signature algorithm.
fn usable(jwk: &Jwk, config: &Config) -> Option<(String, Key)> {
    if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    if jwk
        .common
        .key_operations
        .as_ref()
        .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
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
    // The key must be of the algorithm's own type (and curve): jsonwebtoken reads an octet
    // key pair's `x` without looking at its curve, and an EC key without matching it to the
    // algorithm's.
    let fits = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDSA) => {
            p.curve == EllipticCurve::Ed25519
        }
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => p.curve == EllipticCurve::P256,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES384) => p.curve == EllipticCurve::P384,
        (
            AlgorithmParameters::RSA(_),
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::PS256,
        ) => true,
        _ => false,
    };
    if !fits {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some((kid, Key { alg, key }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::EnvironmentUrl;

    #[test]
    fn a_key_must_be_of_its_algorithms_type_and_curve() {
        let config = Config::new(
            EnvironmentUrl::parse("https://auth.example.com").unwrap(),
            "pcc_app".into(),
            None,
        );
        // Public keys of the right shapes (the values need not be real points: the Ed25519 and
        // RSA decoding keys are built without checks, the EC ones only need a valid point).
        let ed_x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        let ec_x = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
        let ec_y = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
        let jwk = |v: serde_json::Value| serde_json::from_value::<Jwk>(v).unwrap();
        let ok = [
            jwk(
                serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": ed_x, "kid": "a", "alg": "EdDSA"}),
            ),
            jwk(
                serde_json::json!({"kty": "EC", "crv": "P-256", "x": ec_x, "y": ec_y, "kid": "b", "alg": "ES256"}),
            ),
        ];
        for k in &ok {
            assert!(usable(k, &config).is_some(), "{k:?}");
        }
        let wrong = [
            // An octet key pair of another curve named EdDSA.
            jwk(
                serde_json::json!({"kty": "OKP", "crv": "X25519", "x": ed_x, "kid": "c", "alg": "EdDSA"}),
            ),
            // An EC key named EdDSA, an OKP key named ES256, a P-384 key named ES256.
            jwk(
                serde_json::json!({"kty": "EC", "crv": "P-256", "x": ec_x, "y": ec_y, "kid": "d", "alg": "EdDSA"}),
            ),
            jwk(
                serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": ed_x, "kid": "e", "alg": "ES256"}),
            ),
            jwk(
                serde_json::json!({"kty": "EC", "crv": "P-384", "x": ec_x, "y": ec_y, "kid": "f", "alg": "ES256"}),
            ),
            // A key that names no algorithm: never taken from the token's header (RFC 8725).
            jwk(serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": ed_x, "kid": "g"})),
            jwk(serde_json::json!({"kty": "EC", "crv": "P-256", "x": ec_x, "y": ec_y, "kid": "h"})),
        ];
        for k in &wrong {
            assert!(usable(k, &config).is_none(), "{k:?}");
        }
    }
}
