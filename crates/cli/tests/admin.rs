//! The admin HTTP API on its own TLS listener: bearer admin tokens (hashed, rotatable, the
//! two newest valid), the failed-authentication limit, every call audited, the event and
//! alert queries with strict parameters, Prometheus metrics, and the OpenAPI document.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

struct Admin {
    base: String,
    http: reqwest::Client,
}

impl Admin {
    async fn get(
        &self,
        path: &str,
        token: Option<&str>,
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        (status, headers, res.text().await.unwrap())
    }

    async fn json(&self, path: &str, token: &str) -> Value {
        let (st, _, body) = self.get(path, Some(token)).await;
        assert_eq!(st, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }
}

fn start() -> (TestServer, Admin) {
    let port = free_port();
    let srv = TestServer::start_with(&[("PORTCULLIS_ADMIN_LISTEN", &format!("127.0.0.1:{port}"))]);
    let http = srv.http();
    let admin = Admin {
        base: format!("https://localhost:{port}"),
        http,
    };
    (srv, admin)
}

fn token(srv: &TestServer) -> String {
    srv.cli_json(&["admin", "rotate-token"], None)["admin_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_needs_a_token_checks_its_parameters_and_audits_every_call() {
    let (srv, admin) = start();
    let seed = srv.seed();
    // The document is public; everything else needs a token.
    let (st, h, body) = admin.get("/openapi.json", None).await;
    assert_eq!(st, 200);
    assert_eq!(h["content-type"], "application/json");
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in ["/v1/events", "/v1/alerts", "/metrics"] {
        for bad in [None, Some("pcm_nottherightshape")] {
            let (st, h, body) = admin.get(path, bad).await;
            assert_eq!(st, 401, "{path} {bad:?}: {body}");
            assert_eq!(h["www-authenticate"], "Bearer realm=\"portcullis-admin\"");
            assert_eq!(h["x-content-type-options"], "nosniff");
        }
    }
    let t1 = token(&srv);
    assert!(t1.starts_with("pcm_"));
    // A sign-in attempt on the main listener, for the events and the latency metrics.
    let (_, c) = pkce();
    let res = browser_login(
        &srv,
        &srv.http(),
        &mut Jar::default(),
        &authorize_url(&srv, &seed.web_id, CB, &c, &[]),
        "alice@example.com",
        "a wrong password here",
    )
    .await;
    assert_eq!(res.status(), 401);

    // Events, filtered; every refused call above is one of them.
    let deadline = Instant::now() + Duration::from_secs(10);
    let calls = loop {
        let v = admin
            .json("/v1/events?type=admin.api_call&limit=1000", &t1)
            .await;
        let list = v["events"].as_array().unwrap().clone();
        if list.len() >= 6 || Instant::now() > deadline {
            break list;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let refused = calls
        .iter()
        .filter(|e| e["reason"] == "unauthorized")
        .count();
    assert_eq!(refused, 6, "{calls:?}");
    assert!(calls.iter().all(|e| e["address"] == "127.0.0.1"));
    assert!(calls[0]["detail"]
        .as_str()
        .unwrap()
        .starts_with("method=GET path=/v1/events status=401"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let v = loop {
        let v = admin
            .json(
                "/v1/events?type=login.failed&outcome=failure&since=1h&limit=5",
                &t1,
            )
            .await;
        if !v["events"].as_array().unwrap().is_empty() || Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(v["events"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["events"][0]["reason"], "wrong_password");
    assert_eq!(v["last_id"], v["events"][0]["id"]);
    let after = v["last_id"].as_i64().unwrap();
    let v = admin
        .json(
            &format!("/v1/events?type=login.failed&after_id={after}"),
            &t1,
        )
        .await;
    assert!(v["events"].as_array().unwrap().is_empty());
    assert_eq!(v["last_id"], Value::Null);
    let v = admin
        .json(&format!("/v1/events?user_id={}", seed.user_id), &t1)
        .await;
    assert!(v["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["user_id"] == seed.user_id.as_str()));
    // An empty range is no error, just no events.
    let empty = admin.json("/v1/events?since=2h&until=3h", &t1).await;
    assert!(empty["events"].as_array().unwrap().is_empty());
    let alerts = admin.json("/v1/alerts", &t1).await;
    assert!(alerts["events"].as_array().unwrap().is_empty());

    // Bad parameters: 400 naming the problem, never a 5xx.
    for (query, says) in [
        ("/v1/events?type=login.nope", "not an event type"),
        ("/v1/events?limit=0", "between 1 and 1000"),
        ("/v1/events?limit=abc", "between 1 and 1000"),
        ("/v1/events?limit=1&limit=2", "repeated"),
        ("/v1/events?nope=1", "unknown parameter"),
        ("/v1/events?since=", "empty"),
        ("/v1/events?since=yesterday", "not a time"),
        ("/v1/events?address=%0d%0a", "visible ASCII"),
        ("/v1/events?address=localhost", "not an IP address"),
        ("/v1/events?user_id=alice", "not a user id"),
        ("/v1/events?after_id=-3", "after_id"),
        ("/v1/alerts?type=login.failed", "unknown parameter"),
        ("/v1/events?client_id=%ff%fe", "visible ASCII"),
    ] {
        let (st, _, body) = admin.get(query, Some(&t1)).await;
        assert_eq!(st, 400, "{query}: {body}");
        let e: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(e["error"], "invalid_request");
        assert!(
            e["error_description"].as_str().unwrap().contains(says),
            "{query}: {body}"
        );
    }
    let (st, _, _) = admin.get("/v1/nothing", Some(&t1)).await;
    assert_eq!(st, 404);
    // The parameterless endpoints refuse parameters rather than ignore them.
    for path in ["/metrics?x=1", "/openapi.json?x=1"] {
        let (st, _, body) = admin.get(path, Some(&t1)).await;
        assert_eq!(st, 400, "{path}: {body}");
        assert!(body.contains("takes no query parameters"), "{body}");
    }

    // Metrics: Prometheus text with events, latency per route and the audit pipeline.
    let (st, h, text) = admin.get("/metrics", Some(&t1)).await;
    assert_eq!(st, 200);
    assert!(h["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    assert_eq!(h["cache-control"], "no-store");
    assert!(
        text.contains("portcullis_events_total{event=\"login.failed\",outcome=\"failure\"} 1"),
        "{text}"
    );
    assert!(text.contains("portcullis_events_total{event=\"admin.api_call\",outcome=\"failure\"}"));
    assert!(
        text.contains(
            "portcullis_http_request_duration_seconds_count{route=\"/login\",method=\"POST\"} 1"
        ),
        "{text}"
    );
    // The keys generated at first start (EdDSA, ES256, RS256) are counted too (stored at
    // once, not by the writer).
    assert!(
        text.contains("portcullis_events_total{event=\"key.generated\",outcome=\"success\"} 3"),
        "{text}"
    );
    assert!(text.contains("portcullis_audit_events_dropped_total 0"));
    assert!(text.contains("portcullis_audit_events_pending"));

    // Rotation: the previous token stays valid until the next one.
    let t2 = token(&srv);
    assert_eq!(admin.get("/v1/alerts", Some(&t1)).await.0, 200);
    assert_eq!(admin.get("/v1/alerts", Some(&t2)).await.0, 200);
    let t3 = token(&srv);
    assert_eq!(admin.get("/v1/alerts", Some(&t1)).await.0, 401);
    assert_eq!(admin.get("/v1/alerts", Some(&t2)).await.0, 200);
    assert_eq!(admin.get("/v1/alerts", Some(&t3)).await.0, 200);
    // A leak: every token revoked at once, then a new one.
    srv.cli(&["admin", "revoke-tokens"], None);
    assert_eq!(admin.get("/v1/alerts", Some(&t2)).await.0, 401);
    assert_eq!(admin.get("/v1/alerts", Some(&t3)).await.0, 401);
    let t3 = token(&srv);
    assert_eq!(admin.get("/v1/alerts", Some(&t3)).await.0, 200);
    // No token or secret is in the audit trail or the log.
    let all = admin.json("/v1/events?limit=1000", &t3).await.to_string();
    let log = srv.log();
    for secret in [&t1, &t2, &t3] {
        assert!(!all.contains(secret.as_str()) && !log.contains(secret.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_admin_authentications_are_limited_per_address() {
    let (srv, admin) = start();
    let good = token(&srv);
    // 10 bad tokens: then bad tokens get 429 at once, but a valid one is never locked out.
    for n in 0..10 {
        let (st, h, _) = admin.get("/v1/events", Some(&format!("pcm_bad{n}"))).await;
        assert_eq!(st, 401, "attempt {n}");
        assert_eq!(h["x-request-id"].len(), 16);
    }
    let mut ids = Vec::new();
    for _ in 0..20 {
        let (st, h, _) = admin.get("/metrics", Some("pcm_stillguessing")).await;
        assert_eq!(st, 429);
        assert!(h["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
        ids.push(h["x-request-id"].to_str().unwrap().to_owned());
    }
    // Refusals get request ids and request log lines like any other answer.
    let log = srv.log();
    let line = log
        .lines()
        .find(|l| l.contains(&ids[19]))
        .expect("a request log line for the refused call");
    assert!(line.contains("\"listener\":\"admin\""), "{line}");
    assert!(line.contains("\"status\":429"), "{line}");
    let (st, _, body) = admin.get("/v1/events", Some(&good)).await;
    assert_eq!(st, 200, "{body}");
    // The refusals by the limiter are one audit event, not one per request.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = srv.cli(
            &[
                "events",
                "--json",
                "--type",
                "admin.api_call",
                "--limit",
                "1000",
            ],
            None,
        );
        let lines: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let limited = lines
            .iter()
            .filter(|e| e["reason"] == "rate_limited")
            .count();
        let unauthorized = lines
            .iter()
            .filter(|e| e["reason"] == "unauthorized")
            .count();
        if (limited, unauthorized) == (1, 10) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "limited {limited}, unauthorized {unauthorized}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The log is written by a thread of its own: with stderr a pipe nobody reads (a stalled log
/// collector), sign-ins and token requests go on; the lines that do not fit are dropped and
/// counted in the metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_log_reader_never_holds_up_requests() {
    let port = free_port();
    let mut srv = TestServer::start_with(&[
        ("PORTCULLIS_ADMIN_LISTEN", &format!("127.0.0.1:{port}")),
        ("PORTCULLIS_LOG_BUFFER", "100"),
    ]);
    let admin = Admin {
        base: format!("https://localhost:{port}"),
        http: srv.http(),
    };
    let seed = srv.seed();
    let t = token(&srv);
    srv.stop();
    // Stderr is a pipe that is never read: it fills after 64 KiB.
    let mut child = srv
        .base_command()
        .arg("serve")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let http = srv.http();
    let deadline = Instant::now() + Duration::from_secs(20);
    while http.get(srv.url("/jwks")).send().await.is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // At log level debug each request writes several lines: far more than the pipe holds.
    for n in 0..600 {
        // A request stuck behind the log would never answer: give up after 10 s.
        let (st, body, _) = tokio::time::timeout(
            Duration::from_secs(10),
            token_request(
                &srv,
                &http,
                (&seed.machine_id, &seed.machine_secret),
                &[("grant_type", "client_credentials")],
            ),
        )
        .await
        .expect("a request waited for the log");
        assert_eq!(st, 200, "request {n}: {body}");
    }
    let metrics = admin.get("/metrics", Some(&t)).await.2;
    let dropped: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("portcullis_log_lines_dropped_total "))
        .expect("the dropped-lines counter")
        .trim()
        .parse()
        .unwrap();
    assert!(dropped > 0, "{metrics}");
    let _ = child.kill();
    let _ = child.wait();
}
