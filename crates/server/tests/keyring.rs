//! Key maintenance against a real SQLite store, with the time passed in: when keys sign
//! (never before they were published, except where nothing else can sign), what stands in
//! meanwhile, and what a reload that cannot open a key still removes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use portcullis_core::crypto::{Encrypter, KeyBytes};
use portcullis_core::keys::{self, RotationPolicy};
use portcullis_core::model::{SigningAlg, StoredSigningKey};
use portcullis_core::store::SigningKeyStore;
use portcullis_server::keyring::{self, KeyPolicy, Keyring};

const T0: i64 = 1_800_000_000;
const LEAD: i64 = 3600;

fn policy(access: Option<SigningAlg>) -> KeyPolicy {
    KeyPolicy {
        rotation: RotationPolicy {
            period: 90 * 86_400,
            lead: LEAD,
        },
        access_token_alg: access,
        token_lifetime: 300,
        hint_lifetime: 86_400,
    }
}

fn encrypter(previous: Option<&KeyBytes>) -> (KeyBytes, Encrypter) {
    let key = KeyBytes::from_hex(&KeyBytes::generate_hex()).unwrap();
    let enc = Encrypter::new(&key, previous).unwrap();
    (key, enc)
}

fn of(keys: &[StoredSigningKey], alg: SigningAlg) -> Vec<(i64, Option<i64>)> {
    keys.iter()
        .filter(|k| k.alg == alg)
        .map(|k| (k.activates_at, k.retired_at))
        .collect()
}

fn kid_of(keys: &[StoredSigningKey], alg: SigningAlg, activates_at: i64) -> String {
    keys.iter()
        .find(|k| k.alg == alg && k.activates_at == activates_at)
        .unwrap()
        .kid
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eddsa_keys_always_wait_their_lead_while_the_stand_in_signs() {
    let (_dir, store) = common::temp_store().await;
    let (_, enc) = encrypter(None);
    // A fresh deployment: every key signs at once, EdDSA included.
    let first = keyring::maintain(&store, &enc, &policy(None), T0, None)
        .await
        .unwrap();
    assert_eq!(of(&first, SigningAlg::EdDSA), [(T0, None)]);
    // EdDSA rotates once (its old key stays listed, retired).
    let next = keys::generate(SigningAlg::EdDSA, &enc, T0 + 10, T0 + 10 + LEAD).unwrap();
    assert!(store.rotate_signing_key(&next, T0 + 10).await.unwrap());
    let later = T0 + 10 + LEAD + 1;
    // Back to ES256, and the live Ed25519 key revoked: EdDSA is no longer kept.
    assert!(store.revoke_signing_key(&next.kid, later).await.unwrap());
    let after = keyring::maintain(&store, &enc, &policy(Some(SigningAlg::ES256)), later, None)
        .await
        .unwrap();
    assert_eq!(
        of(&after, SigningAlg::EdDSA),
        [(T0, Some(T0 + 10 + LEAD))],
        "no new Ed25519 key while EdDSA is not in use"
    );
    // EdDSA again: the new key is published one lead before it signs, like a first key,
    // although an old (retired) Ed25519 key is still on record.
    let again = T0 + 20_000;
    let eddsa = policy(Some(SigningAlg::EdDSA));
    let keys_now = keyring::maintain(&store, &enc, &eddsa, again, None)
        .await
        .unwrap();
    let ed = of(&keys_now, SigningAlg::EdDSA);
    assert_eq!(ed.len(), 2, "{ed:?}");
    assert_eq!(ed[1], (again + LEAD, None));
    // Maintenance during the wait makes no other key.
    let during = keyring::maintain(&store, &enc, &eddsa, again + 5, None)
        .await
        .unwrap();
    assert_eq!(of(&during, SigningAlg::EdDSA).len(), 2);
    // Meanwhile the stand-in signs access tokens; from the activation, EdDSA.
    let state = keyring::build(&during, &enc, &eddsa, again + 5).unwrap();
    let signer = |state: &keyring::KeyState, now| {
        state
            .set
            .access_token_key(SigningAlg::EdDSA, SigningAlg::RS256, now)
            .unwrap()
            .alg
    };
    assert_eq!(signer(&state, again + 5), SigningAlg::RS256);
    assert_eq!(signer(&state, again + LEAD), SigningAlg::EdDSA);

    // The signing Ed25519 key revoked (`keys revoke`) while EdDSA is in use: its replacement
    // too is published a lead before it signs (PRACTICES §11), and the stand-in signs
    // meanwhile: nothing signs with a key no app has seen.
    let signing = kid_of(&keys_now, SigningAlg::EdDSA, again + LEAD);
    let t = again + LEAD + 1;
    assert!(store
        .revoke_signing_key(&portcullis_core::ids::KeyId::from_trusted(signing), t)
        .await
        .unwrap());
    let replaced = keyring::maintain(&store, &enc, &eddsa, t, None)
        .await
        .unwrap();
    let live: Vec<_> = of(&replaced, SigningAlg::EdDSA)
        .into_iter()
        .filter(|(_, retired)| retired.is_none())
        .collect();
    assert_eq!(live, [(t + LEAD, None)], "one new key, waiting");
    let state = keyring::build(&replaced, &enc, &eddsa, t).unwrap();
    assert_eq!(signer(&state, t), SigningAlg::RS256);
    assert!(state.set.active(SigningAlg::EdDSA, t).is_err());
    assert_eq!(signer(&state, t + LEAD), SigningAlg::EdDSA);

    // Every key revoked at once: the store is not new, so EdDSA still waits out its lead
    // (the new ES256 key, which must sign at once, stands in).
    for k in store.list_signing_keys().await.unwrap() {
        assert!(store.revoke_signing_key(&k.kid, t + 1).await.unwrap());
    }
    let renewed = keyring::maintain(&store, &enc, &eddsa, t + 1, None)
        .await
        .unwrap();
    assert_eq!(of(&renewed, SigningAlg::EdDSA), [(t + 1 + LEAD, None)]);
    assert_eq!(of(&renewed, SigningAlg::ES256), [(t + 1, None)]);
    let replaced = renewed;
    let t = t + 1;
    // Revoking it as well, and going back to ES256, leaves no live Ed25519 key: none is made.
    let waiting = kid_of(&replaced, SigningAlg::EdDSA, t + LEAD);
    assert!(store
        .revoke_signing_key(&portcullis_core::ids::KeyId::from_trusted(waiting), t + 2)
        .await
        .unwrap());
    let gone = keyring::maintain(&store, &enc, &policy(Some(SigningAlg::ES256)), t + 3, None)
        .await
        .unwrap();
    assert!(of(&gone, SigningAlg::EdDSA)
        .iter()
        .all(|(_, retired)| retired.is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_algorithm_left_without_a_signer_signs_with_its_published_successor() {
    let (_dir, store) = common::temp_store().await;
    let (_, enc) = encrypter(None);
    let p = policy(None);
    let first = keyring::maintain(&store, &enc, &p, T0, None).await.unwrap();
    let current = kid_of(&first, SigningAlg::RS256, T0);
    // A rotation is pending: its successor is published, to sign in an hour.
    let next = keys::generate(SigningAlg::RS256, &enc, T0 + 10, T0 + 10 + LEAD).unwrap();
    assert!(store.rotate_signing_key(&next, T0 + 10).await.unwrap());
    // The current key is revoked: RS256 cannot wait for a signer (ID tokens have no
    // stand-in). The successor, already published, signs now; no unseen key is made.
    assert!(store
        .revoke_signing_key(&portcullis_core::ids::KeyId::from_trusted(current), T0 + 20)
        .await
        .unwrap());
    let after = keyring::maintain(&store, &enc, &p, T0 + 20, None)
        .await
        .unwrap();
    assert_eq!(of(&after, SigningAlg::RS256), [(T0 + 20, None)]);
    assert_eq!(
        kid_of(&after, SigningAlg::RS256, T0 + 20),
        next.kid.to_string()
    );
    let state = keyring::build(&after, &enc, &p, T0 + 20).unwrap();
    assert_eq!(
        state.set.active(SigningAlg::RS256, T0 + 20).unwrap().kid,
        next.kid
    );
    // With no successor, a new key signs at once (the only way RS256 keeps signing).
    assert!(store.revoke_signing_key(&next.kid, T0 + 30).await.unwrap());
    let replaced = keyring::maintain(&store, &enc, &p, T0 + 30, None)
        .await
        .unwrap();
    assert_eq!(of(&replaced, SigningAlg::RS256), [(T0 + 30, None)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_cannot_open_a_key_still_drops_a_revoked_one() {
    let (_dir, store) = common::temp_store().await;
    let (old_key, old) = encrypter(None);
    let p = policy(None);
    let metrics = portcullis_server::metrics::Metrics::new();
    // A running server, started with the old encryption key.
    let ring = Keyring::new(keyring::load(&store, &old, &p, T0, &metrics).await.unwrap());
    let before = ring.snapshot();
    let eddsa = before
        .set
        .access_token_key(SigningAlg::EdDSA, SigningAlg::ES256, T0)
        .unwrap()
        .kid
        .clone();
    // The operator moves to a new encryption key and restarts another server on the same
    // database with it (the old one as PREVIOUS): every key is re-wrapped under the new key.
    let (_, new) = encrypter(Some(&old_key));
    keyring::load(&store, &new, &p, T0 + 1, &metrics)
        .await
        .unwrap();
    // The running server cannot open them any more: its maintenance stops (reported), and it
    // goes on with the keys it holds (nothing to decrypt).
    assert!(keyring::reload(&ring, &store, &old, &p, T0 + 2, &metrics)
        .await
        .is_err());
    let es256 = ring
        .snapshot()
        .set
        .active(SigningAlg::ES256, T0 + 2)
        .unwrap()
        .kid
        .clone();
    // Then the Ed25519 key is revoked, and the other server publishes its replacement, which
    // this one cannot open.
    assert!(store.revoke_signing_key(&eddsa, T0 + 3).await.unwrap());
    keyring::maintain(&store, &new, &p, T0 + 3, None)
        .await
        .unwrap();
    let failed = keyring::reload(&ring, &store, &old, &p, T0 + 4, &metrics).await;
    assert!(failed.is_err(), "the unopened key is reported");
    // Fail closed: the revoked key is gone from signing, verification and the JWKS...
    let now = ring.snapshot();
    assert!(now.set.by_kid(eddsa.as_str()).is_none());
    assert!(!String::from_utf8_lossy(&now.jwks).contains(eddsa.as_str()));
    // ...access tokens are signed by the stand-in (published), not refused...
    assert_eq!(
        now.set
            .access_token_key(SigningAlg::EdDSA, SigningAlg::ES256, T0 + 4)
            .unwrap()
            .kid,
        es256
    );
    // ...and the keys it holds go on signing ID tokens.
    assert_eq!(
        now.set.active(SigningAlg::ES256, T0 + 4).unwrap().kid,
        es256
    );
    // A restart with the new key opens everything.
    keyring::reload(&ring, &store, &new, &p, T0 + 6, &metrics)
        .await
        .unwrap();
    assert_eq!(
        of(&store.list_signing_keys().await.unwrap(), SigningAlg::EdDSA).len(),
        1
    );
    assert!(ring.snapshot().set.has(SigningAlg::EdDSA));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_with_an_encryption_key_that_opens_nothing_writes_nothing() {
    let (_dir, store) = common::temp_store().await;
    let (_, right) = encrypter(None);
    let p = policy(None);
    let first = keyring::maintain(&store, &right, &p, T0, None)
        .await
        .unwrap();
    let es = kid_of(&first, SigningAlg::ES256, T0);
    assert!(store
        .revoke_signing_key(&portcullis_core::ids::KeyId::from_trusted(es), T0 + 1)
        .await
        .unwrap());
    // A shell with another encryption key: no replacement sealed under it is made.
    let (_, wrong) = encrypter(None);
    let err = keyring::maintain(&store, &wrong, &p, T0 + 2, None)
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("PORTCULLIS_ENCRYPTION_KEY"),
        "{err:#}"
    );
    assert!(of(&store.list_signing_keys().await.unwrap(), SigningAlg::ES256).is_empty());
    // The server's own maintenance (the right key) makes it.
    let after = keyring::maintain(&store, &right, &p, T0 + 3, None)
        .await
        .unwrap();
    assert_eq!(of(&after, SigningAlg::ES256), [(T0 + 3, None)]);
    keyring::build(&after, &right, &p, T0 + 3).unwrap();
}
