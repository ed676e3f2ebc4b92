//! Threat detections end to end: each one is provoked through real HTTP requests (client
//! addresses through a trusted proxy's `X-Forwarded-For`), and the test checks the stored
//! alert, its delivery to a real HTTPS webhook receiver (Standard Webhooks signature checked
//! with an independent HMAC), and the configured response (block, session revocation).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::receiver::Receiver;
use common::*;
use hmac::{Hmac, Mac};
use serde_json::Value;

const ALICE: &str = "alice@example.com";
/// 32 bytes of test key material in the Standard Webhooks secret format.
const WEBHOOK_SECRET: &str = "whsec_dGhpcnR5LXR3byBieXRlcyBvZiB0ZXN0IGtleSBtYXRlcmlhbCE=";

/// Signs in as `email` from `address` in the browser of `jar`; returns the status.
async fn login_from(
    srv: &TestServer,
    http: &reqwest::Client,
    jar: &mut Jar,
    seed: &Seed,
    email: &str,
    password: &str,
    address: &str,
) -> reqwest::Response {
    let (_, c) = pkce();
    let res = authorize_and_resume(
        srv,
        http,
        jar,
        &authorize_url(srv, &seed.web_id, CB, &c, &[]),
    )
    .await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    let res = post_login_form(
        srv,
        http,
        &jar.header(),
        &csrf_of(&html),
        email,
        password,
        &[("x-forwarded-for", address)],
    )
    .await;
    jar.absorb(&res);
    res
}

/// A fresh browser that keeps only `jar`'s device cookie (signed out, but a known device).
fn device_only(jar: &Jar) -> Jar {
    let mut j = Jar::default();
    if let Some(v) = jar.cookies.get("__Host-portcullis-device") {
        j.cookies
            .insert("__Host-portcullis-device".into(), v.clone());
    }
    j
}

/// The stored alerts, once `ready` is satisfied (the detector runs after events are stored).
fn alerts_when(srv: &TestServer, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    events_when(srv, "alert.raised", ready)
}

/// The stored events of `kind` once `ready` is satisfied and a moment later (so that counting
/// them sees any that came late).
fn settled_events(srv: &TestServer, kind: &str, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    events_when(srv, kind, ready);
    std::thread::sleep(Duration::from_millis(300));
    events_when(srv, kind, |_| true)
}

/// The stored events of `kind`, once `ready` is satisfied.
fn events_when(srv: &TestServer, kind: &str, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = srv.cli(
            &["events", "--json", "--type", kind, "--limit", "1000"],
            None,
        );
        let list: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if ready(&list) || Instant::now() > deadline {
            return list;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn detections(alerts: &[Value]) -> Vec<String> {
    alerts
        .iter()
        .map(|a| a["reason"].as_str().unwrap().to_owned())
        .collect()
}

fn has(alerts: &[Value], detection: &str) -> bool {
    alerts.iter().any(|a| a["reason"] == detection)
}

/// Checks the Standard Webhooks signature of a delivery with an HMAC of our own.
fn check_signature(post: &common::receiver::Post) {
    let id = &post.headers["webhook-id"];
    let ts = &post.headers["webhook-timestamp"];
    let key = STANDARD
        .decode(WEBHOOK_SECRET.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.{}", post.body).as_bytes());
    let want = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    assert_eq!(post.headers["webhook-signature"], want, "signature");
    assert!(id.starts_with("msg_"));
    let age = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - ts.parse::<i64>().unwrap();
    assert!((0..60).contains(&age), "timestamp {ts}");
    assert_eq!(post.content_type, "application/json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_login_bursts_alert_through_the_webhook_and_block_the_address() {
    let hook_port = free_port();
    let srv = TestServer::start_with(&[
        ("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.1/32"),
        ("PORTCULLIS_OUTBOUND_CA_FILE", "ca.pem"),
        (
            "PORTCULLIS_ALERT_WEBHOOK_URL",
            &format!("https://localhost:{hook_port}/alerts"),
        ),
        ("PORTCULLIS_ALERT_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("PORTCULLIS_DETECT_LOGIN_FAILURES_ACCOUNT", "3/300"),
        ("PORTCULLIS_DETECT_LOGIN_FAILURES_ADDRESS", "4/300"),
        (
            "PORTCULLIS_DETECT_RESPONSES",
            "login_failures_address=block",
        ),
        ("PORTCULLIS_LOGIN_MAX_FAILURES", "100"),
        ("PORTCULLIS_STUFFING_ACCOUNTS", "100"),
    ]);
    let (hook, _) = Receiver::start_on(&srv, hook_port).await;
    let seed = srv.seed();
    let http = srv.http();
    // One account guessed from three addresses.
    for addr in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        let res = login_from(
            &srv,
            &http,
            &mut Jar::default(),
            &seed,
            ALICE,
            "wrong guess at it",
            addr,
        )
        .await;
        assert_eq!(res.status(), 401);
    }
    let alerts = alerts_when(&srv, |a| has(a, "login_failures_account"));
    assert_eq!(
        detections(&alerts),
        vec!["login_failures_account"],
        "{alerts:?}"
    );
    assert!(alerts[0]["detail"]
        .as_str()
        .unwrap()
        .starts_with("response=alert "));
    // One address guessing four accounts: alert, and the address is blocked.
    for n in 0..4 {
        let res = login_from(
            &srv,
            &http,
            &mut Jar::default(),
            &seed,
            &format!("user{n}@example.com"),
            "guess",
            "203.0.113.7",
        )
        .await;
        assert_eq!(res.status(), 401);
    }
    let alerts = alerts_when(&srv, |a| has(a, "login_failures_address"));
    let by_address = alerts
        .iter()
        .find(|a| a["reason"] == "login_failures_address")
        .unwrap();
    assert_eq!(by_address["address"], "203.0.113.7");
    assert_eq!(by_address["outcome"], "failure");
    assert!(
        by_address["detail"]
            .as_str()
            .unwrap()
            .starts_with("response=block "),
        "{by_address}"
    );
    // Blocked: even the right password, and the token endpoint too; other addresses are fine.
    let res = login_from(
        &srv,
        &http,
        &mut Jar::default(),
        &seed,
        ALICE,
        PASSWORD,
        "203.0.113.7",
    )
    .await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    // Each refusal is recorded (once per address and minute: a blocked flood is one line).
    for n in 0..4 {
        let res = login_from(
            &srv,
            &http,
            &mut Jar::default(),
            &seed,
            &format!("other{n}@example.com"),
            "guess",
            "203.0.113.7",
        )
        .await;
        assert_eq!(res.status(), 429);
    }
    let blocked = |list: &[Value]| {
        list.iter()
            .filter(|e| e["reason"] == "blocked" && e["address"] == "203.0.113.7")
            .count()
    };
    let throttled = settled_events(&srv, "login.throttled", |l| blocked(l) >= 1);
    assert_eq!(blocked(&throttled), 1, "{throttled:?}");
    // A block for guessed passwords is a sign-in block: the token endpoint still answers
    // that address (its own block is for guessed client secrets).
    let res = http
        .post(srv.url("/token"))
        .header("x-forwarded-for", "203.0.113.7")
        .basic_auth(&seed.machine_id, Some(&seed.machine_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Other addresses are fine; and the account's own recognised browser gets through the
    // block (a neighbour's guessing does not lock its owner out).
    let mut owner = Jar::default();
    let res = login_from(
        &srv,
        &http,
        &mut owner,
        &seed,
        ALICE,
        PASSWORD,
        "203.0.113.8",
    )
    .await;
    assert_eq!(res.status(), 303);
    // A device cookie counts only for its own account: with it, another account typed from
    // the blocked address is still refused.
    let res = login_from(
        &srv,
        &http,
        &mut device_only(&owner),
        &seed,
        "someone.else@example.com",
        "guess",
        "203.0.113.7",
    )
    .await;
    assert_eq!(res.status(), 429);
    let res = login_from(
        &srv,
        &http,
        &mut device_only(&owner),
        &seed,
        ALICE,
        PASSWORD,
        "203.0.113.7",
    )
    .await;
    assert_eq!(res.status(), 303);

    // The webhook got both alerts, signed.
    let posts = hook.wait_for("/alerts", 2).await;
    let mut seen = Vec::new();
    for p in &posts {
        check_signature(p);
        let body: Value = serde_json::from_str(&p.body).unwrap();
        assert_eq!(body["type"], "alert.raised");
        assert_eq!(body["data"]["type"], "alert.raised");
        seen.push(body["data"]["reason"].as_str().unwrap().to_owned());
    }
    seen.sort();
    assert_eq!(
        seen,
        vec!["login_failures_account", "login_failures_address"]
    );
    // In the metrics too (counted when raised).
    assert!(srv.log().contains("\"event\":\"alert.raised\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_failures_reuse_and_credential_stuffing_raise_alerts() {
    let srv = TestServer::start_with(&[
        ("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.1/32"),
        ("PORTCULLIS_DETECT_REFRESH_FAILURES_CLIENT", "3/300"),
        ("PORTCULLIS_DETECT_REFRESH_FAILURES_USER", "3/300"),
        ("PORTCULLIS_REFRESH_REUSE_GRACE", "0"),
        ("PORTCULLIS_STUFFING_ACCOUNTS", "3"),
        ("PORTCULLIS_DETECT_CLIENT_AUTH_FAILURES_ADDRESS", "3/300"),
        ("PORTCULLIS_DETECT_TOKEN_FAILURES_CLIENT", "2/300"),
        (
            "PORTCULLIS_DETECT_RESPONSES",
            "client_auth_failures_address=block",
        ),
    ]);
    let seed = srv.seed();
    let http = srv.http();
    for n in 0..3 {
        let (st, _) = refresh(
            &srv,
            &http,
            (&seed.web_id, &seed.web_secret),
            &format!("pcr_notarealtoken{n}"),
        )
        .await;
        assert_eq!(st, 400);
    }
    let alerts = alerts_when(&srv, |a| has(a, "refresh_failures_client"));
    let a = alerts
        .iter()
        .find(|a| a["reason"] == "refresh_failures_client")
        .unwrap();
    assert_eq!(a["client_id"], seed.web_id.as_str());

    // Reuse of a rotated refresh token: theft (already answered by the token endpoint).
    let mut jar = Jar::default();
    let t = sign_in_for_tokens(
        &srv,
        &http,
        &mut jar,
        (&seed.web_id, &seed.web_secret),
        CB,
        ALICE,
    )
    .await;
    let old = t["refresh_token"].as_str().unwrap();
    let (st, _) = refresh(&srv, &http, (&seed.web_id, &seed.web_secret), old).await;
    assert_eq!(st, 200);
    next_second().await;
    let (st, _) = refresh(&srv, &http, (&seed.web_id, &seed.web_secret), old).await;
    assert_eq!(st, 400);
    let alerts = alerts_when(&srv, |a| has(a, "refresh_token_reuse"));
    let a = alerts
        .iter()
        .find(|a| a["reason"] == "refresh_token_reuse")
        .unwrap();
    assert_eq!(a["user_id"], seed.user_id.as_str());
    // The reuse and two more tries with the now revoked token: three failures of one user's
    // token (the made-up tokens above named nobody).
    for _ in 0..2 {
        let (st, _) = refresh(&srv, &http, (&seed.web_id, &seed.web_secret), old).await;
        assert_eq!(st, 400);
    }
    let alerts = alerts_when(&srv, |a| has(a, "refresh_failures_user"));
    let a = alerts
        .iter()
        .find(|a| a["reason"] == "refresh_failures_user")
        .unwrap();
    assert_eq!(a["user_id"], seed.user_id.as_str());

    // Bursts at the token endpoints: failed client authentications from one address, and
    // refused requests of one client.
    for n in 0..3 {
        let res = http
            .post(srv.url("/token"))
            .header("x-forwarded-for", "198.51.100.77")
            .basic_auth(&seed.machine_id, Some(format!("pcs_wrong{n}")))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    for _ in 0..2 {
        let res = http
            .post(srv.url("/token"))
            .basic_auth(&seed.machine_id, Some(&seed.machine_secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "no:such-scope"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
    }
    let alerts = alerts_when(&srv, |a| {
        has(a, "client_auth_failures_address") && has(a, "token_failures_client")
    });
    let a = alerts
        .iter()
        .find(|a| a["reason"] == "client_auth_failures_address")
        .unwrap();
    assert_eq!(a["address"], "198.51.100.77");
    // The response blocks the token endpoints for that address, even with the right secret;
    // the refusals are recorded once per address and minute.
    for _ in 0..3 {
        let res = http
            .post(srv.url("/token"))
            .header("x-forwarded-for", "198.51.100.77")
            .basic_auth(&seed.machine_id, Some(&seed.machine_secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 429);
        assert!(res.headers().contains_key("retry-after"));
    }
    let blocked = |list: &[Value]| {
        list.iter()
            .filter(|e| e["reason"] == "blocked" && e["address"] == "198.51.100.77")
            .count()
    };
    let refused = settled_events(&srv, "token.request_failed", |l| blocked(l) >= 1);
    assert_eq!(blocked(&refused), 1, "{refused:?}");
    let a = alerts
        .iter()
        .find(|a| a["reason"] == "token_failures_client")
        .unwrap();
    assert_eq!(a["client_id"], seed.machine_id.as_str());

    // Credential stuffing: the brute-force limiter's signal becomes an alert.
    for n in 0..3 {
        let res = login_from(
            &srv,
            &http,
            &mut Jar::default(),
            &seed,
            &format!("victim{n}@example.com"),
            "guess",
            "192.0.2.50",
        )
        .await;
        assert_eq!(res.status(), 401);
    }
    let alerts = alerts_when(&srv, |a| has(a, "credential_stuffing"));
    let a = alerts
        .iter()
        .find(|a| a["reason"] == "credential_stuffing")
        .unwrap();
    assert_eq!(a["address"], "192.0.2.50");
}

/// A city-level (or country-only) database for the documentation ranges, written for `srv`.
fn geo_db(dir: &std::path::Path, city: bool) -> String {
    use portcullis_server::geoip::testdb;
    let db = if city {
        testdb::city_fixture()
    } else {
        testdb::country_fixture()
    }
    .unwrap();
    let path = dir.join(if city { "city.mmdb" } else { "country.mmdb" });
    db.write(&path).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_devices_networks_countries_and_impossible_travel() {
    let dir = tempfile::tempdir().unwrap();
    let db = geo_db(dir.path(), true);
    let srv = TestServer::start_with(&[
        ("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.1/32"),
        ("PORTCULLIS_GEOIP_DB", &db),
        (
            "PORTCULLIS_DETECT_RESPONSES",
            "impossible_travel=revoke_sessions",
        ),
    ]);
    let seed = srv.seed();
    let http = srv.http();
    // The first sign-in (Paris) sets the baseline.
    let mut first = Jar::default();
    assert_eq!(
        login_from(
            &srv,
            &http,
            &mut first,
            &seed,
            ALICE,
            PASSWORD,
            "192.0.2.10"
        )
        .await
        .status(),
        303
    );
    // Another browser, same network: a new device, nothing else.
    let mut second = Jar::default();
    assert_eq!(
        login_from(
            &srv,
            &http,
            &mut second,
            &seed,
            ALICE,
            PASSWORD,
            "192.0.2.20"
        )
        .await
        .status(),
        303
    );
    let alerts = alerts_when(&srv, |a| !a.is_empty());
    assert_eq!(detections(&alerts), vec!["new_device"], "{alerts:?}");
    // The first browser again (it has its device cookie), from New York a moment later: a new
    // network, a new country, and a journey no one can make; the response ends the sessions.
    let mut first = device_only(&first);
    let res = login_from(
        &srv,
        &http,
        &mut first,
        &seed,
        ALICE,
        PASSWORD,
        "198.51.100.10",
    )
    .await;
    assert_eq!(res.status(), 303);
    let alerts = alerts_when(&srv, |a| has(a, "impossible_travel"));
    let mut got = detections(&alerts);
    got.sort();
    assert_eq!(
        got,
        vec![
            "impossible_travel",
            "new_country",
            "new_device",
            "new_network"
        ],
        "{alerts:?}"
    );
    let travel = alerts
        .iter()
        .find(|a| a["reason"] == "impossible_travel")
        .unwrap();
    let detail = travel["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("response=revoke_sessions ") && detail.contains("from=FR to=US"),
        "{detail}"
    );
    let country = alerts
        .iter()
        .find(|a| a["reason"] == "new_country")
        .unwrap();
    assert!(country["detail"].as_str().unwrap().contains("country=US"));
    // Every session of the user ended.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = http
            .get(srv.url("/account/sessions"))
            .header("cookie", second.header())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if page.contains("id=\"signed-out\"") {
            break;
        }
        assert!(Instant::now() < deadline, "the sessions were not ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The intruder signs in again at once: the ended sign-in is no history, so the journey
    // from Paris is impossible again and the sessions end again.
    let mut again = device_only(&first);
    let res = login_from(
        &srv,
        &http,
        &mut again,
        &seed,
        ALICE,
        PASSWORD,
        "198.51.100.11",
    )
    .await;
    assert_eq!(res.status(), 303);
    let count = |a: &[Value]| {
        a.iter()
            .filter(|x| x["reason"] == "impossible_travel")
            .count()
    };
    let alerts = alerts_when(&srv, |a| count(a) >= 2);
    assert_eq!(count(&alerts), 2, "{alerts:?}");
    // The distrust is stored: after a restart, another sign-in from there is flagged too.
    let mut srv = srv;
    srv.restart();
    let res = login_from(
        &srv,
        &http,
        &mut device_only(&again),
        &seed,
        ALICE,
        PASSWORD,
        "198.51.100.12",
    )
    .await;
    assert_eq!(res.status(), 303);
    let alerts = alerts_when(&srv, |a| count(a) >= 3);
    assert_eq!(count(&alerts), 3, "{alerts:?}");
    // One marker for the network, however often (and across restarts) it was flagged, so
    // repeated responses cannot bury older markers.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let distrusted = events_when(&srv, "detect.network_distrusted", |l| !l.is_empty());
    assert_eq!(distrusted.len(), 1, "{distrusted:?}");
    assert!(distrusted[0]["detail"]
        .as_str()
        .unwrap()
        .starts_with("network=198.51.100.0/24 since="));
    assert!(srv
        .log()
        .contains("geographic detection: new country and impossible travel"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_country_database_detects_new_countries_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = geo_db(dir.path(), false);
    let srv = TestServer::start_with(&[
        ("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.1/32"),
        ("PORTCULLIS_GEOIP_DB", &db),
    ]);
    let seed = srv.seed();
    let http = srv.http();
    let mut jar = Jar::default();
    for addr in ["192.0.2.10", "198.51.100.10"] {
        jar = device_only(&jar);
        assert_eq!(
            login_from(&srv, &http, &mut jar, &seed, ALICE, PASSWORD, addr)
                .await
                .status(),
            303
        );
    }
    let alerts = alerts_when(&srv, |a| has(a, "new_country"));
    let mut got = detections(&alerts);
    got.sort();
    assert_eq!(got, vec!["new_country", "new_network"], "{alerts:?}");
    assert!(srv.log().contains("geographic detection: new country only"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_database_geography_is_off_and_says_so() {
    let srv = TestServer::start();
    assert!(srv.log().contains("geographic detection: off"));
    // A bad setting stops the start with a clear message.
    let out = srv.cli_raw(&["migrate"], None);
    assert!(out.status.success());
    for (name, value, says) in [
        (
            "PORTCULLIS_DETECT_RESPONSES",
            "new_device=explode",
            "not a response",
        ),
        (
            "PORTCULLIS_DETECT_LOGIN_FAILURES_ACCOUNT",
            "ten",
            "COUNT/SECONDS",
        ),
        (
            "PORTCULLIS_ALERT_WEBHOOK_URL",
            "https://hooks.example.com/x",
            "needs PORTCULLIS_ALERT_WEBHOOK_SECRET",
        ),
        (
            "PORTCULLIS_GEOIP_DB",
            "/nonexistent/geo.mmdb",
            "PORTCULLIS_GEOIP_DB",
        ),
    ] {
        let out = srv
            .base_command()
            .arg("serve")
            .env(name, value)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{name}={value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{name}={value}: {err}");
    }
}

/// A flood of one detection (here, guessed client secrets from many networks) stores at most
/// `ALERTS_PER_MINUTE` alerts a minute; the rest are counted and their responses still apply
/// (here: a block of the token endpoints, for an address past the cap).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_one_detection_stores_a_bounded_number_of_alerts() {
    use portcullis_server::detect::ALERTS_PER_MINUTE;
    let srv = TestServer::start_with(&[
        ("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.1/32"),
        ("PORTCULLIS_DETECT_CLIENT_AUTH_FAILURES_ADDRESS", "1/300"),
        (
            "PORTCULLIS_DETECT_RESPONSES",
            "client_auth_failures_address=block",
        ),
    ]);
    let seed = srv.seed();
    let http = srv.http();
    let fired = ALERTS_PER_MINUTE as usize + 10;
    for n in 0..fired {
        let res = http
            .post(srv.url("/token"))
            .header("x-forwarded-for", format!("2001:db8:{n:x}::1"))
            .basic_auth(&seed.machine_id, Some("pcs_wrong"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    let of_kind = |a: &[Value]| {
        a.iter()
            .filter(|x| x["reason"] == "client_auth_failures_address")
            .count()
    };
    let alerts = alerts_when(&srv, |a| of_kind(a) >= ALERTS_PER_MINUTE as usize);
    assert_eq!(of_kind(&alerts), ALERTS_PER_MINUTE as usize);
    // The last failures have been counted by now too (they are stored in order): still the cap.
    let failures = events_when(&srv, "client_auth.failed", |l| l.len() >= fired);
    assert!(failures.len() >= fired);
    std::thread::sleep(Duration::from_millis(300));
    let alerts = alerts_when(&srv, |_| true);
    assert_eq!(of_kind(&alerts), ALERTS_PER_MINUTE as usize);
    // The last address's alert was held back, but its response applied.
    let res = http
        .post(srv.url("/token"))
        .header("x-forwarded-for", format!("2001:db8:{:x}::1", fired - 1))
        .basic_auth(&seed.machine_id, Some(&seed.machine_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
}
