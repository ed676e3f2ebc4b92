//! The signing keys a running server uses, reloaded from the store every few seconds (and at
//! `SIGHUP`), so that `portcullis keys rotate` / `keys revoke` in another process take effect
//! without a restart. Each reload also applies the rotation schedule and re-wraps keys still
//! sealed under `PORTCULLIS_ENCRYPTION_KEY_PREVIOUS`.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use portcullis_core::audit::{Event, EventKind};
use portcullis_core::crypto::Encrypter;
use portcullis_core::keys::{self, KeySet, RotationPolicy};
use portcullis_core::model::{SigningAlg, StoredSigningKey};
use portcullis_core::store::{AuditStore, RecordedAlg, ServingKeys, SignerChange, SigningKeyStore};

use crate::config::Config;

/// How long clients may cache the JWKS document (its `Cache-Control: max-age`).
pub const JWKS_MAX_AGE: i64 = 300;

/// How often a running server re-reads its keys.
pub const RELOAD_EVERY: Duration = Duration::from_secs(5);

/// One consistent view: the key set and the JWKS document published from it.
pub struct KeyState {
    pub set: Arc<KeySet>,
    pub jwks: Arc<[u8]>,
    /// What the set was built from (to skip rebuilding when nothing changed).
    stamp: Vec<(String, i64, Option<i64>)>,
}

/// The current [`KeyState`], swapped whole on reload.
pub struct Keyring {
    current: RwLock<Arc<KeyState>>,
}

impl Keyring {
    pub fn new(state: KeyState) -> Self {
        Self {
            current: RwLock::new(Arc::new(state)),
        }
    }

    /// The current keys (cheap: one read lock and an `Arc` clone).
    pub fn snapshot(&self) -> Arc<KeyState> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn replace(&self, state: KeyState) {
        let state = Arc::new(state);
        match self.current.write() {
            Ok(mut g) => *g = state,
            Err(poisoned) => *poisoned.into_inner() = state,
        }
    }
}

/// What the key lifecycle needs from the configuration.
#[derive(Clone, Copy, Debug)]
pub struct KeyPolicy {
    pub rotation: RotationPolicy,
    /// `PORTCULLIS_ACCESS_TOKEN_ALG`, when set (see [`access_token_alg`]).
    pub access_token_alg: Option<SigningAlg>,
    /// Retired keys stay published this long after retirement (the longest token lifetime).
    pub token_lifetime: i64,
    /// Retired keys stay in the set this long after retirement, for `id_token_hint` checks
    /// (the absolute session lifetime).
    pub hint_lifetime: i64,
}

impl KeyPolicy {
    pub fn from_config(config: &Config) -> Self {
        Self {
            rotation: config.key_rotation,
            access_token_alg: config.access_token_alg,
            token_lifetime: config.lifetimes.access_token.max(config.lifetimes.id_token),
            hint_lifetime: config.lifetimes.session_absolute,
        }
    }
}

/// Records what a server that has started listening keeps its keys by, for `portcullis keys`
/// in another process (whose environment may not be the server's). Written whatever was
/// recorded before (an unreadable older value never stops a start).
pub async fn record_serving<S: SigningKeyStore + ?Sized>(
    store: &S,
    access_token_alg: SigningAlg,
    rotation: RotationPolicy,
    enc: &Encrypter,
) -> anyhow::Result<()> {
    store
        .record_serving_keys(&ServingKeys {
            access_token_alg,
            rotation,
            encryption_key_id: enc.current_key_id().to_owned(),
        })
        .await?;
    Ok(())
}

/// The encrypter of the configured encryption keys.
pub fn encrypter(config: &Config) -> anyhow::Result<Encrypter> {
    Encrypter::new(
        &config.encryption_key,
        config.encryption_key_previous.as_ref(),
    )
    .context("PORTCULLIS_ENCRYPTION_KEY")
}

/// Records a key event of the schedule (or first start) straight in the store, and logs it:
/// this runs before and beside the server's event queue. A failure to store it is logged.
async fn key_event<S: SigningKeyStore + AuditStore + ?Sized>(
    store: &S,
    metrics: Option<&crate::metrics::Metrics>,
    kind: EventKind,
    kid: &portcullis_core::ids::KeyId,
    alg: SigningAlg,
    now: i64,
    reason: &str,
) {
    let e = Event::new(kind, now)
        .reason(reason)
        .detail(&format!("kid={kid} alg={}", alg.as_str()));
    tracing::info!(target: "portcullis::audit", event = %e.kind, outcome = "success", reason, detail = e.detail.as_deref());
    // Stored at once (not through the event writer): a key change must be on record before
    // the key is used. Counted in the server's metrics like every recorded event.
    if let Some(m) = metrics {
        m.observe_event(&e);
    }
    if let Err(err) = store.append_events(&[e]).await {
        tracing::warn!(event = "audit.store_failed", error = %err);
    }
}

/// The algorithm access tokens are signed with: the configured one; else the one recorded for
/// the deployment (ES256 for one that had keys before EdDSA keys existed: its APIs may not
/// accept EdDSA); else EdDSA.
pub fn access_token_alg(
    configured: Option<SigningAlg>,
    recorded: Option<SigningAlg>,
) -> SigningAlg {
    configured.or(recorded).unwrap_or(SigningAlg::EdDSA)
}

/// The algorithms keys are kept and rotated for at `now`: RS256 and ES256 (ID tokens; ES256
/// also stands in while an access-token algorithm's key waits to sign), the access-token
/// algorithm, and any other that still has a live (not retired) key: it goes on rotating,
/// never left signing-capable unrotated, until its key is revoked.
pub fn kept_algorithms(
    access: SigningAlg,
    stored: &[StoredSigningKey],
    now: i64,
) -> Vec<SigningAlg> {
    SigningAlg::ALL
        .into_iter()
        .filter(|a| {
            a.signs_id_tokens()
                || *a == access
                || stored
                    .iter()
                    .any(|k| k.alg == *a && k.retired_at.is_none_or(|r| now < r))
        })
        .collect()
}

/// Makes sure each algorithm has a key (first start), rotates the ones due, re-wraps blobs
/// sealed under the previous encryption key; returns the stored keys afterwards. Its events
/// are counted in `metrics` (the server's; the CLI has none).
pub async fn maintain<S: SigningKeyStore + AuditStore + ?Sized>(
    store: &S,
    enc: &Encrypter,
    policy: &KeyPolicy,
    now: i64,
    metrics: Option<&crate::metrics::Metrics>,
) -> anyhow::Result<Vec<StoredSigningKey>> {
    let mut stored = store.list_signing_keys().await?;
    // Nothing is written by a process that cannot open every key in use (the wrong
    // PORTCULLIS_ENCRYPTION_KEY, or keys re-wrapped under one it was not given). Keys retired
    // longer than the hint lifetime are never loaded again, so they do not count.
    for k in stored.iter().filter(|k| in_use(k, policy, now)) {
        keys::check_open(k, enc).context(
            "decrypting signing keys (is PORTCULLIS_ENCRYPTION_KEY the one they were stored with?)",
        )?;
    }
    let access = access_token_alg(
        policy.access_token_alg,
        store.recorded_alg(RecordedAlg::AccessTokenDefault).await?,
    );
    // New only when no key was ever stored: a store whose keys were all revoked is not.
    let fresh = !store.any_signing_key_stored().await?;
    let mut changed = false;
    for alg in kept_algorithms(access, &stored, now) {
        // A key that signs *now*, and one published that waits for its activation.
        let signing = stored.iter().any(|k| k.alg == alg && k.signs_at(now));
        let waiting = stored.iter().any(|k| k.alg == alg && k.waits_at(now));
        if signing {
            if keys::rotation_due(&stored, alg, now, &policy.rotation) {
                let next = keys::generate(alg, enc, now, now + policy.rotation.lead)?;
                if store.rotate_signing_key(&next, now).await? {
                    key_event(
                        store,
                        metrics,
                        EventKind::KeyRotated,
                        &next.kid,
                        alg,
                        now,
                        "schedule",
                    )
                    .await;
                    changed = true;
                }
            }
            continue;
        }
        // No key of `alg` signs: its signing key was revoked (`keys revoke`), or the algorithm
        // is new to the deployment. A key signs only once it has been published, except where
        // nothing else can sign:
        // - an algorithm only access tokens use (EdDSA) has a stand-in (the last RS256 or
        //   ES256, `KeySet::access_token_key`), so its key always waits out the publish lead: a
        //   waiting one is left to its activation, else a new one is published now;
        // - an ID-token algorithm must sign now: a successor published at its rotation signs
        //   from now on (it is in apps' JWKS caches already), else a new key signs at once;
        // - on a fresh store every key signs at once (there are no apps' caches yet).
        // The store decides in one transaction, so that two processes here agree.
        if waiting && !alg.signs_id_tokens() {
            continue;
        }
        let activates = if fresh || alg.signs_id_tokens() {
            now
        } else {
            now + policy.rotation.lead
        };
        let key = keys::generate(alg, enc, now, activates)?;
        let reason = if fresh { "schedule" } else { "no_signer" };
        match store.ensure_signing_key(&key, now).await? {
            SignerChange::Unchanged => {}
            SignerChange::Inserted => {
                key_event(
                    store,
                    metrics,
                    EventKind::KeyGenerated,
                    &key.kid,
                    alg,
                    now,
                    reason,
                )
                .await;
                changed = true;
            }
            SignerChange::Activated(kid) => {
                key_event(
                    store,
                    metrics,
                    EventKind::KeyRotated,
                    &kid,
                    alg,
                    now,
                    reason,
                )
                .await;
                changed = true;
            }
        }
    }
    if changed {
        stored = store.list_signing_keys().await?;
    }
    Ok(stored)
}

/// Whether a stored key is still loaded: live, or retired within the hint lifetime.
fn in_use(k: &StoredSigningKey, policy: &KeyPolicy, now: i64) -> bool {
    k.retired_at
        .is_none_or(|r| now < r.saturating_add(policy.hint_lifetime))
}

/// Re-seals the keys in use that are sealed under `PORTCULLIS_ENCRYPTION_KEY_PREVIOUS` with
/// the current key. Only the server does this (at start and at each reload), after
/// `maintain` succeeded: a key command in a shell with another key never re-wraps.
async fn rewrap<S: SigningKeyStore + ?Sized>(
    store: &S,
    enc: &Encrypter,
    policy: &KeyPolicy,
    now: i64,
    stored: &[StoredSigningKey],
) -> anyhow::Result<()> {
    for k in stored.iter().filter(|k| in_use(k, policy, now)) {
        if let Some(blob) = keys::rewrap(k, enc).context(
            "decrypting signing keys (is PORTCULLIS_ENCRYPTION_KEY the one they were stored with?)",
        )? {
            store.rewrap_signing_key(&k.kid, &blob).await?;
            tracing::info!(event = "key.rewrapped", kid = %k.kid);
        }
    }
    Ok(())
}

/// Builds the key state from stored keys at `now` (at start: every key must open).
pub fn build(
    stored: &[StoredSigningKey],
    enc: &Encrypter,
    policy: &KeyPolicy,
    now: i64,
) -> anyhow::Result<KeyState> {
    let (state, unopened) = assemble(stored, enc, policy, now, None)?;
    match unopened {
        None => Ok(state),
        Some(e) => Err(e),
    }
}

/// The key state of `stored` at `now`. A key `previous` holds is taken from it with its
/// stored times (nothing decrypted: a running server keeps working when another process
/// re-wraps the keys under an encryption key it was not given). A key that cannot be opened
/// is left out, and named in the error returned beside the state. Only listed keys are in it:
/// a revoked key is gone from the state whatever else fails.
fn assemble(
    stored: &[StoredSigningKey],
    enc: &Encrypter,
    policy: &KeyPolicy,
    now: i64,
    previous: Option<&KeySet>,
) -> anyhow::Result<(KeyState, Option<anyhow::Error>)> {
    let kept: Vec<&StoredSigningKey> = stored.iter().filter(|k| in_use(k, policy, now)).collect();
    let mut loaded = Vec::with_capacity(kept.len());
    let mut unopened = Vec::new();
    for k in &kept {
        let reused = previous
            .and_then(|set| set.by_kid(k.kid.as_str()))
            .and_then(|have| have.restamped(k));
        match reused.map_or_else(|| keys::load(k, enc), Ok) {
            Ok(key) => loaded.push(key),
            Err(e) => unopened.push(format!("{}: {e}", k.kid)),
        }
    }
    let set = KeySet::new(loaded);
    let jwks = serde_json::to_vec(&set.jwks(now, policy.token_lifetime))?;
    let unopened = (!unopened.is_empty()).then(|| {
        anyhow::anyhow!(
            "decrypting signing keys (is PORTCULLIS_ENCRYPTION_KEY the one they were stored with?): {}",
            unopened.join(", ")
        )
    });
    // A set missing keys is rebuilt at the next reload (an empty stamp never matches).
    let stamp = if unopened.is_some() {
        Vec::new()
    } else {
        stamp(&kept)
    };
    Ok((
        KeyState {
            set: Arc::new(set),
            jwks: jwks.into(),
            stamp,
        },
        unopened,
    ))
}

fn stamp(keys: &[&StoredSigningKey]) -> Vec<(String, i64, Option<i64>)> {
    keys.iter()
        .map(|k| (k.kid.to_string(), k.activates_at, k.retired_at))
        .collect()
}

/// Loads the keys at start.
pub async fn load<S: SigningKeyStore + AuditStore + ?Sized>(
    store: &S,
    enc: &Encrypter,
    policy: &KeyPolicy,
    now: i64,
    metrics: &crate::metrics::Metrics,
) -> anyhow::Result<KeyState> {
    let stored = maintain(store, enc, policy, now, Some(metrics)).await?;
    rewrap(store, enc, policy, now, &stored).await?;
    build(&stored, enc, policy, now)
}

/// One reload: maintain, then rebuild the set if the stored keys changed, or only the JWKS
/// document (which keys are published depends on the time). It fails closed: when
/// maintenance fails the stored keys are still read, and a key revoked meanwhile leaves the
/// set even if others cannot be loaded; only a store that cannot be read leaves the set as
/// it was. Every failure is returned for the log.
pub async fn reload<S: SigningKeyStore + AuditStore + ?Sized>(
    ring: &Keyring,
    store: &S,
    enc: &Encrypter,
    policy: &KeyPolicy,
    now: i64,
    metrics: &crate::metrics::Metrics,
) -> anyhow::Result<()> {
    let maintained = match maintain(store, enc, policy, now, Some(metrics)).await {
        Ok(stored) => rewrap(store, enc, policy, now, &stored)
            .await
            .map(|()| stored),
        Err(e) => Err(e),
    };
    let (stored, maintenance) = match maintained {
        Ok(stored) => (stored, None),
        Err(e) => (store.list_signing_keys().await?, Some(e)),
    };
    let old = ring.snapshot();
    let kept: Vec<&StoredSigningKey> = stored.iter().filter(|k| in_use(k, policy, now)).collect();
    if stamp(&kept) == old.stamp {
        let jwks: Arc<[u8]> = serde_json::to_vec(&old.set.jwks(now, policy.token_lifetime))?.into();
        if jwks != old.jwks {
            ring.replace(KeyState {
                set: old.set.clone(),
                jwks,
                stamp: old.stamp.clone(),
            });
        }
    } else {
        let (state, unopened) = assemble(&stored, enc, policy, now, Some(&old.set))?;
        ring.replace(state);
        tracing::info!(event = "key.reloaded", keys = kept.len());
        if let Some(e) = unopened {
            return Err(e);
        }
    }
    match maintenance {
        None => Ok(()),
        Some(e) => Err(e.context("key maintenance")),
    }
}
