//! Key maintenance against a real SQLite store, with the time passed in: when keys of an
//! access-token-only algorithm (EdDSA) sign, and what stands in meanwhile.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use portcullis_core::crypto::{Encrypter, KeyBytes};
use portcullis_core::keys::{self, RotationPolicy};
use portcullis_core::model::SigningAlg;
use portcullis_core::store::SigningKeyStore;
use portcullis_server::keyring::{self, KeyPolicy};

const T0: i64 = 1_800_000_000;
const LEAD: i64 = 3600;

fn policy(access: Option<SigningAlg>, emergency: Option<SigningAlg>) -> KeyPolicy {
    KeyPolicy {
        rotation: RotationPolicy {
            period: 90 * 86_400,
            lead: LEAD,
        },
        access_token_alg: access,
        emergency,
        token_lifetime: 300,
        hint_lifetime: 86_400,
    }
}

fn of(
    keys: &[portcullis_core::model::StoredSigningKey],
    alg: SigningAlg,
) -> Vec<(i64, Option<i64>)> {
    keys.iter()
        .filter(|k| k.alg == alg)
        .map(|k| (k.activates_at, k.retired_at))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eddsa_turned_on_again_after_its_keys_were_revoked_waits_its_lead() {
    let (_dir, store) = common::temp_store().await;
    let enc = Encrypter::new(
        &KeyBytes::from_hex(&KeyBytes::generate_hex()).unwrap(),
        None,
    )
    .unwrap();
    // A fresh deployment: every key signs at once, EdDSA included.
    let first = keyring::maintain(&store, &enc, &policy(None, None), T0, None)
        .await
        .unwrap();
    assert_eq!(of(&first, SigningAlg::EdDSA), [(T0, None)]);
    // EdDSA rotates once (its old key stays listed, retired).
    let next = keys::generate(SigningAlg::EdDSA, &enc, T0 + 10, T0 + 10 + LEAD).unwrap();
    assert!(store.rotate_signing_key(&next, T0 + 10).await.unwrap());
    let later = T0 + 10 + LEAD + 1;
    // Back to ES256, and the live Ed25519 key revoked: EdDSA is no longer kept.
    assert!(store.revoke_signing_key(&next.kid, later).await.unwrap());
    let after = keyring::maintain(
        &store,
        &enc,
        &policy(Some(SigningAlg::ES256), None),
        later,
        None,
    )
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
    let keys_now = keyring::maintain(
        &store,
        &enc,
        &policy(Some(SigningAlg::EdDSA), None),
        again,
        None,
    )
    .await
    .unwrap();
    let ed = of(&keys_now, SigningAlg::EdDSA);
    assert_eq!(ed.len(), 2, "{ed:?}");
    assert_eq!(ed[1], (again + LEAD, None));
    // Maintenance during the wait makes no other key.
    let during = keyring::maintain(
        &store,
        &enc,
        &policy(Some(SigningAlg::EdDSA), None),
        again + 5,
        None,
    )
    .await
    .unwrap();
    assert_eq!(of(&during, SigningAlg::EdDSA).len(), 2);
    // Meanwhile the stand-in signs access tokens; from the activation, EdDSA.
    let state = keyring::build(
        &during,
        &enc,
        &policy(Some(SigningAlg::EdDSA), None),
        again + 5,
    )
    .unwrap();
    let signer = |now| {
        state
            .set
            .access_token_key(SigningAlg::EdDSA, SigningAlg::RS256, now)
            .unwrap()
            .alg
    };
    assert_eq!(signer(again + 5), SigningAlg::RS256);
    assert_eq!(signer(again + LEAD), SigningAlg::EdDSA);
    // An emergency of EdDSA's own (its signing key revoked by `keys revoke`): a replacement
    // signs at once.
    let signing = keys_now
        .iter()
        .find(|k| k.alg == SigningAlg::EdDSA && k.activates_at == again + LEAD)
        .unwrap()
        .kid
        .clone();
    let t = again + LEAD + 1;
    assert!(store.revoke_signing_key(&signing, t).await.unwrap());
    let replaced = keyring::maintain(
        &store,
        &enc,
        &policy(Some(SigningAlg::EdDSA), Some(SigningAlg::EdDSA)),
        t,
        None,
    )
    .await
    .unwrap();
    assert!(of(&replaced, SigningAlg::EdDSA).contains(&(t, None)));
}
