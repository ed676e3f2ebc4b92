//! The audit trail end to end: events of real requests in the JSON log (one well-formed line
//! each, whatever the client sends) and in storage, read back with `portcullis events` and
//! its filters, `--follow`, and the administrative events of the CLI.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const ALICE: &str = "alice@example.com";

/// `portcullis events --json <args>`, one value per line.
fn events(srv: &TestServer, args: &[&str]) -> Vec<Value> {
    let mut a = vec!["events", "--json"];
    a.extend_from_slice(args);
    srv.cli(&a, None)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Waits (a few seconds at most) until `portcullis events` shows what `ready` wants: the
/// server stores events asynchronously, in batches.
fn events_when(srv: &TestServer, args: &[&str], ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = events(srv, args);
        if ready(&got) || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn kinds(list: &[Value]) -> Vec<&str> {
    list.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_give_one_well_formed_line_and_a_clean_stored_event() {
    let srv = TestServer::start();
    let seed = srv.seed();
    // A user agent of 10 KiB with a line separator and high bytes (header values cannot carry
    // CR, LF or ESC; form fields can, below).
    let mut ua = b"Mozilla/5.0 \xe2\x80\xa8{\"event\":\"login.succeeded\"} \xc2\x9b31m ".to_vec();
    ua.extend(std::iter::repeat_n(b'A', 10 * 1024));
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(srv.ca_pem.as_bytes()).unwrap()])
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(
            [(
                reqwest::header::USER_AGENT,
                reqwest::header::HeaderValue::from_bytes(&ua).unwrap(),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .unwrap();
    let mut jar = Jar::default();
    sign_in_for_tokens(
        &srv,
        &http,
        &mut jar,
        (&seed.web_id, &seed.web_secret),
        CB,
        ALICE,
    )
    .await;
    // A client id with CR/LF, an ANSI escape, U+2028 and a forged JSON line, 10 KiB long,
    // through HTTP Basic (the form refuses anything but visible ASCII outright).
    let forged = format!(
        // (No ':' in it: Basic ends the id at the first one.)
        "evil\r\n{{\"event\"=\"login.succeeded\"}}\n\u{1b}[2J\u{2028}\u{202e}{}",
        "B".repeat(10 * 1024)
    );
    let res = http
        .post(srv.url("/token"))
        .basic_auth(&forged, Some("nope"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();

    let stored = events_when(&srv, &["--type", "client_auth.failed"], |l| !l.is_empty());
    assert_eq!(stored.len(), 1, "{stored:?}");
    let e = &stored[0];
    assert_eq!(e["outcome"], "failure");
    assert_eq!(e["reason"], "invalid_client");
    assert_eq!(e["request_id"], request_id.as_str());
    assert_eq!(e["address"], "127.0.0.1");
    // A malformed client id is not recorded at all (it could be a secret in the wrong field,
    // or text dressed up as other fields): the event says so instead.
    assert!(e.get("client_id").is_none(), "{e}");
    assert_eq!(e["detail"], "claimed_client=malformed");
    let signed_in = events_when(&srv, &["--type", "login.succeeded"], |l| !l.is_empty());
    let agent = signed_in[0]["user_agent"].as_str().unwrap();
    assert!(
        agent.starts_with("Mozilla/5.0 ") && agent.chars().count() == 257,
        "{agent}"
    );
    assert!(!agent.contains('\u{2028}') && !agent.contains('\u{9b}'));

    // The log: every line is one JSON object, and the audit lines are the real events only.
    let log = srv.log();
    let mut audit_lines = Vec::new();
    for line in log.lines() {
        assert!(
            !line.contains('\u{1b}'),
            "an escape reached the log: {line}"
        );
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"));
        if v["target"] == "portcullis::audit" {
            audit_lines.push(v);
        }
    }
    let auth_failed: Vec<&Value> = audit_lines
        .iter()
        .filter(|v| v["fields"]["event"] == "client_auth.failed")
        .collect();
    assert_eq!(auth_failed.len(), 1);
    assert_eq!(auth_failed[0]["fields"]["request_id"], request_id.as_str());
    let logged_logins = audit_lines
        .iter()
        .filter(|v| v["fields"]["event"] == "login.succeeded")
        .count();
    assert_eq!(
        logged_logins, 1,
        "a forged line would count as a second sign-in"
    );
    assert!(!log.contains("nope"), "a client secret reached the log");
    assert!(!log.contains(PASSWORD), "a password reached the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_events_command_filters_follows_and_sees_admin_actions() {
    let srv = TestServer::start();
    let seed = srv.seed();
    let http = srv.http();
    // A failed and a successful sign-in, and a token exchange.
    let (_, c) = pkce();
    let res = browser_login(
        &srv,
        &http,
        &mut Jar::default(),
        &authorize_url(&srv, &seed.web_id, CB, &c, &[]),
        ALICE,
        "not the password at all",
    )
    .await;
    assert_eq!(res.status(), 401);
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
    let (st, _) = refresh(
        &srv,
        &http,
        (&seed.web_id, &seed.web_secret),
        t["refresh_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(st, 200);

    let all = events_when(&srv, &[], |l| kinds(l).contains(&"token.refreshed"));
    let k = kinds(&all);
    for want in [
        "user.created",
        "client.created",
        "api.created",
        "login.failed",
        "login.succeeded",
        "session.created",
        "token.issued",
        "token.refreshed",
    ] {
        assert!(k.contains(&want), "{want} missing from {k:?}");
    }
    // Oldest first, each with its sequence number; nothing secret in any of them.
    assert!(all
        .windows(2)
        .all(|w| w[0]["id"].as_i64() < w[1]["id"].as_i64()));
    let text = serde_json::to_string(&all).unwrap();
    for secret in [
        PASSWORD,
        seed.web_secret.as_str(),
        t["refresh_token"].as_str().unwrap(),
        t["access_token"].as_str().unwrap(),
    ] {
        assert!(!text.contains(secret), "a secret is in the audit trail");
    }
    let created = all.iter().find(|e| e["type"] == "client.created").unwrap();
    assert_eq!(created["reason"], "cli");
    // The CLI's events are logged as well as stored, as the server's are.
    let out = srv.cli_raw(
        &[
            "apis",
            "create",
            "--audience",
            "https://logged.example.com",
            "--scope",
            "read:logs",
        ],
        None,
    );
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.lines().any(|l| l.contains("\"event\":\"api.created\"")
            && l.contains("\"target\":\"portcullis::audit\"")),
        "{log}"
    );
    let failed = all.iter().find(|e| e["type"] == "login.failed").unwrap();
    assert_eq!(failed["reason"], "wrong_password");
    assert_eq!(failed["user_id"], seed.user_id.as_str());
    let ok = all.iter().find(|e| e["type"] == "login.succeeded").unwrap();
    assert_eq!(ok["detail"], "device=new", "no device cookie: a new device");

    // Filters.
    let failures = events(&srv, &["--outcome", "failure"]);
    assert!(failures.iter().all(|e| e["outcome"] == "failure"));
    assert!(kinds(&failures).contains(&"login.failed"));
    let alice = events(&srv, &["--user", ALICE]);
    assert!(!alice.is_empty());
    assert!(alice.iter().all(|e| e["user_id"] == seed.user_id.as_str()));
    assert_eq!(events(&srv, &["--user", &seed.user_id]).len(), alice.len());
    let web = events(&srv, &["--client", &seed.web_id, "--type", "token.issued"]);
    assert_eq!(web.len(), 1);
    assert_eq!(web[0]["detail"], "grant_type=authorization_code");
    assert_eq!(
        events(&srv, &["--address", "127.0.0.1", "--type", "login.failed"]).len(),
        1
    );
    assert!(events(&srv, &["--address", "203.0.113.1"]).is_empty());
    assert_eq!(events(&srv, &["--since", "1h", "--limit", "2"]).len(), 2);
    assert!(events(&srv, &["--until", "1h"]).is_empty());
    assert!(events(&srv, &["--user", "nobody@example.com"]).is_empty());
    // Bad filters get a clear error and exit non-zero.
    for (args, says) in [
        (vec!["--type", "login.nope"], "not an event type"),
        (vec!["--outcome", "maybe"], "success or failure"),
        (vec!["--address", "localhost"], "not an IP address"),
        (vec!["--since", "yesterday"], "not a time"),
        (vec!["--limit", "0"], "between 1 and 10000"),
        (vec!["--client", "x y"], "not a client id"),
    ] {
        let mut a = vec!["events"];
        a.extend(args.iter());
        let out = srv.cli_raw(&a, None);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // Text output: one line per event, no control characters.
    let text = srv.cli(&["events", "--limit", "5"], None);
    assert_eq!(text.lines().count(), 5);
    assert!(!text.chars().any(|c| c.is_control() && c != '\n'));

    // --follow prints what is stored after it starts.
    let mut follow = srv
        .base_command()
        .args(["events", "--follow", "--json", "--type", "login.failed"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    // The existing failure first, then the new one.
    let first: Value =
        serde_json::from_str(&rx.recv_timeout(Duration::from_secs(10)).unwrap()).unwrap();
    assert_eq!(first["type"], "login.failed");
    let (_, c) = pkce();
    let res = browser_login(
        &srv,
        &http,
        &mut Jar::default(),
        &authorize_url(&srv, &seed.web_id, CB, &c, &[]),
        "mallory@example.com",
        "guessing",
    )
    .await;
    assert_eq!(res.status(), 401);
    let next: Value =
        serde_json::from_str(&rx.recv_timeout(Duration::from_secs(10)).unwrap()).unwrap();
    assert_eq!(next["type"], "login.failed");
    assert_eq!(next["reason"], "unknown_user");
    assert!(next["id"].as_i64() > first["id"].as_i64());
    follow.kill().unwrap();
    let _ = follow.wait();

    // Admin actions: each one is an event.
    srv.cli(&["users", "disable", ALICE], None);
    srv.cli(&["keys", "rotate", "--alg", "ES256"], None);
    let admin = events(&srv, &["--since", "1h"]);
    let k = kinds(&admin);
    assert!(
        k.contains(&"user.disabled") && k.contains(&"key.rotated"),
        "{k:?}"
    );
    // The session disabling ended has its own event, naming the action.
    let signed_in = events(&srv, &["--type", "login.succeeded", "--user", ALICE]);
    let session = signed_in[0]["session_id"].as_str().unwrap();
    let ended = events(&srv, &["--type", "session.revoked", "--user", ALICE]);
    assert!(
        ended.iter().any(|e| e["session_id"] == session
            && e["detail"] == "because=user.disabled"
            && e["reason"] == "cli"),
        "{ended:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_refused_forms_is_one_event_per_address_and_minute() {
    let srv = TestServer::start_with(&[("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.1/32")]);
    let http = srv.http();
    for addr in ["203.0.113.1", "203.0.113.2"] {
        for _ in 0..30 {
            let res = http
                .post(srv.url("/login"))
                .header("origin", "https://evil.example")
                .header("x-forwarded-for", addr)
                .form(&[("email", ALICE), ("password", "x")])
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 403);
        }
    }
    let stored = events_when(&srv, &["--type", "csrf.refused"], |l| l.len() >= 2);
    std::thread::sleep(Duration::from_millis(300));
    let stored = if stored.len() == 2 {
        events(&srv, &["--type", "csrf.refused"])
    } else {
        stored
    };
    let mut addresses: Vec<&str> = stored
        .iter()
        .map(|e| e["address"].as_str().unwrap())
        .collect();
    addresses.sort_unstable();
    assert_eq!(addresses, vec!["203.0.113.1", "203.0.113.2"], "{stored:?}");
    let lines = srv
        .log()
        .lines()
        .filter(|l| l.contains("\"event\":\"csrf.refused\""))
        .count();
    assert_eq!(lines, 2, "one log line per address too");
}

/// Every hosted form that refuses a cross-site request or a bad synchronizer token records a
/// `csrf.refused` naming its page and the check: the sign-in, "Continue as" and sign-out
/// forms alike (the account pages have their own test in `sessions.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refused_form_is_a_csrf_event_naming_its_page() {
    let srv = TestServer::start_with(&[("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.1/32")]);
    let seed = srv.seed();
    let http = srv.http();
    let (_, challenge) = pkce();
    let mut jar = Jar::default();
    let res = browser_login(
        &srv,
        &http,
        &mut jar,
        &authorize_url(&srv, &seed.web_id, CB, &challenge, &[]),
        ALICE,
        PASSWORD,
    )
    .await;
    assert_eq!(res.status(), 303);
    // The public client's "Continue as" page: a flow cookie, the page's token.
    let res = authorize_and_resume(
        &srv,
        &http,
        &mut jar,
        &authorize_url(&srv, &seed.public_id, CB, &challenge, &[]),
    )
    .await;
    assert!(csrf_of(&res.text().await.unwrap()).len() > 16);
    // Each refusal from an address of its own (floodable events are kept once per address,
    // reason and minute).
    let refuse = |path: &'static str, origin: String, addr: &'static str| {
        let http = http.clone();
        let cookie = jar.header();
        let url = srv.url(path);
        async move {
            let res = http
                .post(url)
                .header("cookie", cookie)
                .header("origin", origin)
                .header("x-forwarded-for", addr)
                .form(&[("csrf_token", "not-the-token"), ("action", "continue")])
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 403, "{path} from {addr}");
        }
    };
    let evil = || "https://evil.example".to_owned();
    refuse("/authorize/continue", evil(), "198.51.100.1").await;
    refuse("/authorize/continue", srv.issuer.clone(), "198.51.100.2").await;
    refuse("/logout", evil(), "198.51.100.3").await;
    refuse("/logout", srv.issuer.clone(), "198.51.100.4").await;
    refuse("/login", evil(), "198.51.100.5").await;
    let stored = events_when(&srv, &["--type", "csrf.refused"], |l| l.len() >= 5);
    let mut seen: Vec<(String, String, String)> = stored
        .iter()
        .map(|e| {
            (
                e["address"].as_str().unwrap().to_owned(),
                e["detail"].as_str().unwrap().to_owned(),
                e["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    seen.sort();
    let want = [
        ("198.51.100.1", "page=continue", "cross_site"),
        ("198.51.100.2", "page=continue", "token"),
        ("198.51.100.3", "page=logout", "cross_site"),
        ("198.51.100.4", "page=logout", "token"),
        ("198.51.100.5", "page=login", "cross_site"),
    ]
    .map(|(a, d, r)| (a.to_owned(), d.to_owned(), r.to_owned()));
    assert_eq!(seen, want, "{stored:?}");
    // The sign-out refused for its token names the session it was aimed at.
    let logout = stored
        .iter()
        .find(|e| e["address"] == "198.51.100.4")
        .unwrap();
    assert!(
        logout["session_id"].as_str().is_some_and(|s| !s.is_empty()),
        "{logout}"
    );
}
