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

/// `keys list`: each key of `alg` as (kid, state), oldest first.
fn keys_of(srv: &TestServer, alg: &str) -> Vec<(String, String)> {
    srv.cli_json(&["keys", "list"], None)
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["alg"] == alg)
        .map(|k| {
            (
                k["kid"].as_str().unwrap().to_owned(),
                k["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// `keys list`: the kid of the key of `alg` that signs now.
fn signing_kid(srv: &TestServer, alg: &str) -> String {
    keys_of(srv, alg)
        .into_iter()
        .find(|(_, state)| state == "signing")
        .unwrap_or_else(|| panic!("no signing {alg} key"))
        .0
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
    let states: Vec<(String, String)> = keys_of(&srv, "EdDSA");
    assert_eq!(
        states,
        vec![
            (before[0].clone(), "signing".to_owned()),
            (new_kid.clone(), "pending".to_owned())
        ]
    );
    // The signing key revoked while its successor still waits: access tokens are not left
    // without a signer (the stand-in, ES256, signs), and no key signs before it was
    // published: the successor keeps its activation and no other Ed25519 key is made.
    let said = srv.cli(&["keys", "revoke", &before[0]], None);
    assert!(
        said.contains(&format!(
            "EdDSA access tokens are signed with ES256 (the stand-in) until key {new_kid} signs"
        )),
        "{said}"
    );
    hup(&srv);
    eventually("the stand-in signs", || async {
        let at = machine_token(&srv, &http, &seed).await;
        header_of(&at)["alg"] == "ES256" && kid_of(&at) != before[0]
    })
    .await;
    let eds: Vec<(String, String)> = keys_of(&srv, "EdDSA");
    assert_eq!(eds, vec![(new_kid.clone(), "pending".to_owned())]);
    assert!(!jwks_kids(&srv, &http, "EdDSA").await.contains(&before[0]));
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

fn header_of(jwt: &str) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jwt.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap()
}

/// A deployment whose database was made before EdDSA keys existed (migrations up to 0014, with
/// its ES256 and RS256 keys) keeps signing access tokens ES256 after the upgrade, publishes no
/// Ed25519 key and does not start one on `keys rotate`. Its operator moves with
/// `PORTCULLIS_ACCESS_TOKEN_ALG=EdDSA`: the new key is published one lead before it signs, and
/// the algorithm in use before (here RS256) signs until then; an emergency revocation of another
/// algorithm's key does not cut the lead short. Unsetting the setting goes back to the
/// recorded ES256.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_deployment_keeps_es256_until_its_operator_moves_to_eddsa() {
    use portcullis_core::crypto::{Encrypter, KeyBytes};
    use portcullis_core::model::SigningAlg;
    use portcullis_core::store::SigningKeyStore;

    let mut srv = TestServer::prepare_with(&[]);
    let db = srv.dir.path().join("portcullis.sqlite3");
    let store = portcullis_store::connect(db.to_str().unwrap())
        .await
        .unwrap();
    let all = sqlx::migrate!("../store/migrations/sqlite");
    let old = sqlx::migrate::Migrator {
        migrations: std::borrow::Cow::Owned(
            all.migrations
                .iter()
                .filter(|m| m.version <= 14)
                .cloned()
                .collect(),
        ),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    old.run(store.pool()).await.unwrap();
    let enc = Encrypter::new(
        &KeyBytes::from_hex(&srv.env["PORTCULLIS_ENCRYPTION_KEY"]).unwrap(),
        None,
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let es = portcullis_core::keys::generate(SigningAlg::ES256, &enc, now - 60, now - 60).unwrap();
    let rs = portcullis_core::keys::generate(SigningAlg::RS256, &enc, now - 60, now - 60).unwrap();
    store.insert_signing_key(&es).await.unwrap();
    store.insert_signing_key(&rs).await.unwrap();
    store.pool().close().await;

    srv.restart();
    let seed = srv.seed();
    let http = srv.http();
    let at = machine_token(&srv, &http, &seed).await;
    assert_eq!(header_of(&at)["alg"], "ES256");
    assert_eq!(kid_of(&at), es.kid.as_str());
    assert!(jwks_kids(&srv, &http, "EdDSA").await.is_empty());
    assert!(
        srv.log().contains("keep this deployment's algorithm"),
        "{}",
        srv.log()
    );
    // A rotation rotates what the deployment has; it never starts EdDSA.
    let out = srv.cli_json(&["keys", "rotate"], None);
    let mut rotated: Vec<&str> = out
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["alg"].as_str().unwrap())
        .collect();
    rotated.sort();
    assert_eq!(rotated, ["ES256", "RS256"]);
    let refused = srv.cli_raw(&["keys", "rotate", "--alg", "EdDSA"], None);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("PORTCULLIS_ACCESS_TOKEN_ALG=EdDSA"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // The operator chooses RS256 first (what signs then is recorded as in use)...
    srv.env
        .insert("PORTCULLIS_ACCESS_TOKEN_ALG".into(), "RS256".into());
    srv.restart();
    assert_eq!(
        header_of(&machine_token(&srv, &http, &seed).await)["alg"],
        "RS256"
    );
    // ...then moves to EdDSA: the Ed25519 key is published at once and signs one lead later;
    // RS256, the algorithm in use before, stands in until then.
    srv.env
        .insert("PORTCULLIS_ACCESS_TOKEN_ALG".into(), "EdDSA".into());
    srv.env
        .insert("PORTCULLIS_KEY_PUBLISH_LEAD".into(), "20".into());
    srv.restart();
    let listed = srv.cli_json(&["keys", "list"], None);
    let ed = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["alg"] == "EdDSA")
        .expect("an EdDSA key")
        .clone();
    let ed_kid = ed["kid"].as_str().unwrap().to_owned();
    let activates = ed["activates_at"].as_i64().unwrap();
    assert_eq!(activates - ed["created_at"].as_i64().unwrap(), 20);
    // A first key still waiting is not rotated.
    let refused = srv.cli_raw(&["keys", "rotate", "--alg", "EdDSA"], None);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("still waiting"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert_eq!(
        jwks_kids(&srv, &http, "EdDSA").await,
        std::slice::from_ref(&ed_kid)
    );
    let before = machine_token(&srv, &http, &seed).await;
    let iat = jwt_part(&before, 1)["iat"].as_i64().unwrap();
    assert!(
        iat < activates,
        "the token was issued before the key activates"
    );
    assert_eq!(header_of(&before)["alg"], "RS256", "RS256 stands in");
    // An emergency elsewhere (the RS256 signing key revoked) replaces RS256 at once but leaves
    // the waiting Ed25519 key waiting: no second EdDSA key, none signing before its lead.
    let rs_kid = signing_kid(&srv, "RS256");
    srv.cli(&["keys", "revoke", &rs_kid], None);
    hup(&srv);
    let after_revoke = srv.cli_json(&["keys", "list"], None);
    let eds: Vec<&Value> = after_revoke
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["alg"] == "EdDSA")
        .collect();
    assert_eq!(eds.len(), 1, "{after_revoke}");
    assert_eq!(eds[0]["kid"], ed_kid.as_str());
    assert!(after_revoke
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["alg"] == "RS256" && k["state"] == "signing" && k["kid"] != rs_kid.as_str()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let still = machine_token(&srv, &http, &seed).await;
    assert!(jwt_part(&still, 1)["iat"].as_i64().unwrap() < activates);
    assert_eq!(header_of(&still)["alg"], "RS256");
    assert_ne!(kid_of(&still), rs_kid, "the revoked key no longer signs");
    let start = Instant::now();
    let after = loop {
        let at = machine_token(&srv, &http, &seed).await;
        if header_of(&at)["alg"] == "EdDSA" {
            break at;
        }
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "EdDSA never signed"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(kid_of(&after), ed_kid);
    assert!(jwt_part(&after, 1)["iat"].as_i64().unwrap() >= activates);
    // The stand-in's and the new key's tokens verify with the SDK and its default list (`before`
    // was signed by the RS256 key revoked since).
    let sdk = portcullis_client::Portcullis::builder(&srv.issuer, &seed.machine_id)
        .unwrap()
        .root_certificates_pem(srv.ca_pem.as_bytes())
        .unwrap()
        .build()
        .unwrap();
    for token in [&still, &after] {
        sdk.validate_access_token(token, API, &[]).await.unwrap();
    }

    // Unset again: the deployment's recorded ES256; the Ed25519 key goes on being kept.
    srv.env.remove("PORTCULLIS_ACCESS_TOKEN_ALG");
    srv.restart();
    assert_eq!(
        header_of(&machine_token(&srv, &http, &seed).await)["alg"],
        "ES256"
    );
    assert_eq!(jwks_kids(&srv, &http, "EdDSA").await, [ed_kid]);
}

/// `portcullis keys` runs with an environment of its own, which may not be the server's: it
/// acts for the access-token algorithm the server last started with. Revoking every live key
/// of an algorithm no longer in use makes no new one, and revoking an ID-token algorithm's key
/// gives no other algorithm a key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_commands_follow_the_servers_algorithm_not_their_own_environment() {
    let mut srv = TestServer::start();
    let seed = srv.seed();
    let http = srv.http();
    // EdDSA signs (a fresh deployment) and a rotation is pending.
    let out = srv.cli_json(&["keys", "rotate", "--alg", "EdDSA"], None);
    let successor = out[0]["kid"].as_str().unwrap().to_owned();
    let signing = keys_of(&srv, "EdDSA")
        .into_iter()
        .find(|(_, state)| state == "signing")
        .unwrap()
        .0;
    // The server moves back to ES256 through its own environment; the shell the operator
    // runs key commands from does not have that setting (it would say EdDSA).
    srv.env
        .insert("PORTCULLIS_ACCESS_TOKEN_ALG".into(), "ES256".into());
    srv.env
        .insert("PORTCULLIS_KEY_PUBLISH_LEAD".into(), "40".into());
    srv.restart();
    srv.env.remove("PORTCULLIS_ACCESS_TOKEN_ALG");
    srv.env.remove("PORTCULLIS_KEY_PUBLISH_LEAD");
    assert_eq!(
        header_of(&machine_token(&srv, &http, &seed).await)["alg"],
        "ES256"
    );
    // Revoking the signing Ed25519 key: EdDSA is not in use, so no replacement is made (the
    // waiting successor stays as it was), and the command says which algorithm it followed.
    let out = srv.cli_raw(&["keys", "revoke", &signing], None);
    assert!(out.status.success());
    let note = String::from_utf8_lossy(&out.stderr);
    assert!(
        note.contains("last started with ES256"),
        "the command names the server's algorithm: {note}"
    );
    assert_eq!(
        keys_of(&srv, "EdDSA"),
        [(successor.clone(), "pending".to_owned())]
    );
    // Revoking the successor too leaves no Ed25519 key at all, published or kept.
    srv.cli(&["keys", "revoke", &successor], None);
    assert_eq!(keys_of(&srv, "EdDSA"), []);
    // Rotating ES256 from this shell (whose own publish lead would be the default hour) uses
    // the server's lead.
    let rotated = srv.cli_json(&["keys", "rotate", "--alg", "ES256"], None);
    let es_next = rotated[0]["kid"].as_str().unwrap().to_owned();
    let listed = srv.cli_json(&["keys", "list"], None);
    let key = |kid: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid)
            .unwrap()
            .clone()
    };
    let next = key(&es_next);
    assert_eq!(
        next["activates_at"].as_i64().unwrap() - next["created_at"].as_i64().unwrap(),
        40
    );
    let es = signing_kid(&srv, "ES256");
    // Revoking the ES256 signing key while that successor waits: ID tokens cannot wait, so
    // the successor (published already) signs at once; no other key is made, and EdDSA,
    // which this command's own setting would choose, gets none.
    srv.cli(&["keys", "revoke", &es], None);
    let es_live: Vec<(String, String)> = keys_of(&srv, "ES256");
    assert_eq!(es_live, [(es_next.clone(), "signing".to_owned())]);
    assert_eq!(keys_of(&srv, "EdDSA"), []);
    hup(&srv);
    eventually("the successor signs, the revoked keys are gone", || async {
        let at = machine_token(&srv, &http, &seed).await;
        header_of(&at)["alg"] == "ES256"
            && kid_of(&at) == es_next
            && jwks_kids(&srv, &http, "EdDSA").await.is_empty()
    })
    .await;
}

/// A key command run with an encryption key that cannot open the stored keys (a shell with
/// another `.env`) makes no key: a key sealed under it could not be opened by the server. A
/// revocation still stands; the running server makes the replacement itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_command_with_another_encryption_key_makes_no_key() {
    let mut srv = TestServer::start();
    let seed = srv.seed();
    let http = srv.http();
    let right = srv.env["PORTCULLIS_ENCRYPTION_KEY"].clone();
    srv.env.insert(
        "PORTCULLIS_ENCRYPTION_KEY".into(),
        portcullis_core::crypto::KeyBytes::generate_hex(),
    );
    let before = srv.cli_json(&["keys", "list"], None);
    let refused = srv.cli_raw(&["keys", "rotate"], None);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("PORTCULLIS_ENCRYPTION_KEY"));
    assert_eq!(
        srv.cli_json(&["keys", "list"], None),
        before,
        "nothing written"
    );
    // A newer key, with the server's as the previous one, opens every stored key: refused
    // all the same (the server could not open what it made, nor keys it re-wrapped).
    srv.env
        .insert("PORTCULLIS_ENCRYPTION_KEY_PREVIOUS".into(), right.clone());
    let refused = srv.cli_raw(&["keys", "rotate"], None);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("not the one the server last started with"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert_eq!(
        srv.cli_json(&["keys", "list"], None),
        before,
        "nothing written"
    );
    let es = signing_kid(&srv, "ES256");
    let out = srv.cli_raw(&["keys", "revoke", &es], None);
    assert!(!out.status.success(), "the command says it did not finish");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&format!(
            "key {es} revoked, but no replacement was made here"
        )),
        "{said}"
    );
    let after = srv.cli_json(&["keys", "list"], None);
    assert!(
        !after
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["alg"] == "ES256"),
        "no ES256 key sealed under the wrong encryption key: {after}"
    );
    // The server, with its own key, makes the replacement at its next reload.
    srv.env.insert("PORTCULLIS_ENCRYPTION_KEY".into(), right);
    srv.env.remove("PORTCULLIS_ENCRYPTION_KEY_PREVIOUS");
    hup(&srv);
    eventually("the server replaces the revoked ES256 key", || async {
        srv.cli_json(&["keys", "list"], None)
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["alg"] == "ES256" && k["state"] == "signing" && k["kid"] != es.as_str())
    })
    .await;
    assert_eq!(
        header_of(&machine_token(&srv, &http, &seed).await)["alg"],
        "EdDSA"
    );
    assert!(jwks_kids(&srv, &http, "ES256")
        .await
        .iter()
        .all(|k| *k != es));
}
