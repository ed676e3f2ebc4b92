//! The signing-key lifecycle against the real server: `portcullis keys rotate` publishes the
//! next key before it signs, retired keys stay published while their tokens live, and
//! `keys revoke` removes a key at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use serde_json::Value;

async fn jwks_kids(srv: &TestServer, http: &reqwest::Client, alg: &str) -> Vec<String> {
    let jwks: Value = get_json(http, &srv.url("/jwks")).await;
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["alg"] == alg)
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn kid_of(jwt: &str) -> String {
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jwt.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// Asks the server to reload its keys now (it also does every 5 s).
/// Waits (a few seconds at most, polling) until `cond` holds.
async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !cond().await {
        assert!(start.elapsed() < Duration::from_secs(8), "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn machine_token(srv: &TestServer, http: &reqwest::Client, seed: &Seed) -> String {
    let (st, t, _) = token_request(
        srv,
        http,
        (&seed.machine_id, &seed.machine_secret),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(st, 200, "{t}");
    t["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_publishes_the_next_key_an_hour_before_it_signs() {
    let srv = TestServer::start();
    let seed = srv.seed();
    let http = srv.http();
    let before = jwks_kids(&srv, &http, "EdDSA").await;
    assert_eq!(before.len(), 1);
    let out = srv.cli_json(&["keys", "rotate", "--alg", "EdDSA"], None);
    let new_kid = out[0]["kid"].as_str().unwrap().to_owned();
    let activates = out[0]["activates_at"].as_i64().unwrap();
    let listed = srv.cli_json(&["keys", "list"], None);
    let now = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == new_kid.as_str())
        .unwrap()["created_at"]
        .as_i64()
        .unwrap();
    assert_eq!(
        activates - now,
        3600,
        "published one JWKS cache lifetime ahead"
    );
    // A second rotation while one is pending does nothing.
    let again = srv.cli_json(&["keys", "rotate", "--alg", "EdDSA"], None);
    assert_eq!(again[0]["rotated"], false);
    hup(&srv);
    eventually("the new key is published", || async {
        jwks_kids(&srv, &http, "EdDSA").await.contains(&new_kid)
    })
    .await;
    assert!(jwks_kids(&srv, &http, "EdDSA").await.contains(&before[0]));
    // It does not sign yet: the old key does, until the new one activates.
    let at = machine_token(&srv, &http, &seed).await;
    assert_eq!(kid_of(&at), before[0]);
    let states: Vec<(String, String)> = srv
        .cli_json(&["keys", "list"], None)
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["alg"] == "EdDSA")
        .map(|k| {
            (
                k["kid"].as_str().unwrap().to_owned(),
                k["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![
            (before[0].clone(), "signing".to_owned()),
            (new_kid.clone(), "pending".to_owned())
        ]
    );
    // An emergency revocation of the signing key while its successor still waits: the
    // algorithm is not left without a signer until the successor activates.
    srv.cli(&["keys", "revoke", &before[0]], None);
    hup(&srv);
    eventually("a key signs again", || async {
        let k = kid_of(&machine_token(&srv, &http, &seed).await);
        k != before[0] && k != new_kid
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retired_keys_stay_published_and_a_revoked_key_goes_at_once() {
    // No publish lead, so the new key signs right away (the server warns about the setting).
    let srv = TestServer::start_with(&[("PORTCULLIS_KEY_PUBLISH_LEAD", "0")]);
    let seed = srv.seed();
    let http = srv.http();
    let old_at = machine_token(&srv, &http, &seed).await;
    let old_kid = kid_of(&old_at);
    let (_, user) = {
        let mut jar = Jar::default();
        let t = sign_in_for_tokens(
            &srv,
            &http,
            &mut jar,
            (&seed.web_id, &seed.web_secret),
            CB,
            "alice@example.com",
        )
        .await;
        (jar, t)
    };
    let old_user_at = user["access_token"].as_str().unwrap().to_owned();
    let out = srv.cli_json(&["keys", "rotate"], None);
    let new_kid = out
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["alg"] == "EdDSA")
        .unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    hup(&srv);
    eventually("the new key signs", || async {
        kid_of(&machine_token(&srv, &http, &seed).await) == new_kid
    })
    .await;
    // The retired key stays published while the tokens it signed live, and they still work.
    let kids = jwks_kids(&srv, &http, "EdDSA").await;
    assert!(
        kids.contains(&old_kid) && kids.contains(&new_kid),
        "{kids:?}"
    );
    let userinfo = |at: String| {
        let http = http.clone();
        let url = srv.url("/userinfo");
        async move {
            http.get(url)
                .bearer_auth(at)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(userinfo(old_user_at.clone()).await, 200);

    // Emergency revocation: gone from JWKS at once, and its tokens no longer verify here.
    let out = srv.cli(&["keys", "revoke", &old_kid], None);
    assert!(out.contains("revoked"), "{out}");
    hup(&srv);
    eventually("the revoked key leaves JWKS", || async {
        !jwks_kids(&srv, &http, "EdDSA").await.contains(&old_kid)
    })
    .await;
    assert_eq!(userinfo(old_user_at).await, 401);
    let (_, v, _) = post_form(
        &srv,
        &http,
        "/introspect",
        Some((&seed.machine_id, &seed.machine_secret)),
        &[("token", &old_at)],
    )
    .await;
    assert_eq!(v["active"], false, "nor at introspection");
    assert!(!srv.cli(&["keys", "list"], None).contains(old_kid.as_str()));
    // Revoking the key that signs now makes a replacement that signs at once.
    srv.cli(&["keys", "revoke", &new_kid], None);
    hup(&srv);
    eventually("a replacement signs", || async {
        let k = kid_of(&machine_token(&srv, &http, &seed).await);
        k != new_kid && k != old_kid
    })
    .await;
    let bad = srv.cli_raw(&["keys", "revoke", "k_nope"], None);
    assert_ne!(bad.status.code(), Some(0));
}
