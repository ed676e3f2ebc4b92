//! The demo app (`examples/demo`) against the real server: Chromium signs in through it,
//! the access token expires and the next page view refreshes it silently, the user signs out
//! (the demo, then Portcullis), signs in again, and a session ended at Portcullis (the CLI)
//! ends the demo's session over the back channel. Then, without the browser: the cookies'
//! attributes, the security headers, CSRF refusals, bad input, and the API route's
//! 401/403/200 with real tokens.
//!
//! The demo runs in-process (its router on its own TLS listener, with the test server's leaf
//! certificate) with a clock the test can move; Portcullis trusts the test CA for the
//! back-channel call. Needs what `browser.rs` needs (node, Chromium, `npm ci --prefix
//! tests/browser`). Screenshots go to `$CARGO_TARGET_DIR/browser-artifacts/demo/`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use portcullis_client::{AuthorizationOptions, Clock, Portcullis, Secret, SystemClock};
use portcullis_demo::{Demo, DemoConfig};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const EMAIL: &str = "alice@example.com";

fn spki_hash(srv: &TestServer) -> String {
    use sha2::Digest;
    let key_pem = std::fs::read_to_string(srv.dir.path().join("key.pem")).unwrap();
    let key = rcgen::KeyPair::from_pem(&key_pem).unwrap();
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(key.public_key_der()))
}

struct Running {
    demo: Arc<Demo>,
    clock: Arc<ShiftedClock>,
    url: String,
    client: (String, String),
}

/// Registers the demo's client and starts the demo on its own TLS port.
async fn start_demo(srv: &TestServer) -> Running {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let mut config = DemoConfig::new(&url, API).unwrap();
    // The server's access tokens live 60 s (its minimum); the demo refreshes 30 s before.
    config.refresh_before = 30;
    let client = create_client(
        srv,
        "Demo <app>",
        &config.redirect_uri(),
        &[
            "--post-logout-redirect-uri",
            &config.post_logout_redirect_uri(),
            "--backchannel-logout-uri",
            &config.backchannel_logout_uri(),
        ],
    );
    let clock = Arc::new(ShiftedClock::default());
    let portcullis = Portcullis::builder(&srv.issuer, &client.0)
        .unwrap()
        .client_secret(Secret::new(client.1.clone()))
        .root_certificates_pem(srv.ca_pem.as_bytes())
        .unwrap()
        .clock(clock.clone())
        .build()
        .unwrap();
    let demo = Demo::with_clock(config, portcullis, clock.clone()).unwrap();
    let tls = portcullis_demo::tls::from_files(
        &srv.dir.path().join("cert.pem"),
        &srv.dir.path().join("key.pem"),
    )
    .unwrap();
    let router = demo.router();
    tokio::spawn(async move {
        portcullis_demo::serve(listener, tls, router).await.unwrap();
    });
    Running {
        demo,
        clock,
        url,
        client,
    }
}

fn events(srv: &TestServer, kind: &str, client: &str) -> Vec<Value> {
    srv.cli(
        &["events", "--type", kind, "--client", client, "--json"],
        None,
    )
    .lines()
    .filter(|l| !l.trim().is_empty())
    .map(|l| serde_json::from_str(l).unwrap())
    .collect()
}

fn sessions_of_alice(srv: &TestServer) -> Vec<Value> {
    srv.cli_json(&["sessions", "list", EMAIL], None)
        .as_array()
        .unwrap()
        .clone()
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_signs_in_refreshes_and_logs_out_in_a_real_browser() {
    let started = Instant::now();
    let root = workspace_root();
    let (script, chromium) = browser_prerequisites(&root, "demo.mjs");
    let artifacts = artifacts_dir(&root, "demo");

    let srv = TestServer::start_with(&[
        ("PORTCULLIS_OUTBOUND_CA_FILE", "ca.pem"),
        ("PORTCULLIS_BACKCHANNEL_POLL_MS", "100"),
        ("PORTCULLIS_ACCESS_TOKEN_TTL", "60"),
    ]);
    let seed = srv.seed();
    let app = start_demo(&srv).await;

    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(&script)
        .current_dir(root.join("tests/browser"))
        .env("DEMO_URL", &app.url)
        .env("PORTCULLIS_ISSUER", &srv.issuer)
        .env("USER_EMAIL", EMAIL)
        .env("USER_PASSWORD", PASSWORD)
        .env("USER_SUB", &seed.user_id)
        .env("ARTIFACTS_DIR", &artifacts)
        .env("IGNORE_CERT_SPKI", spki_hash(&srv))
        .env("CHROMIUM", &chromium)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("running node");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let stderr = child.stderr.take().unwrap();
    let stderr_task = tokio::spawn(async move {
        let mut s = String::new();
        let mut r = BufReader::new(stderr);
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut r, &mut s).await;
        s
    });
    let mut report: Option<Value> = None;
    let mut checkpoints = Vec::new();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(90), lines.next_line())
            .await
            .expect("the browser script stalled")
            .unwrap();
        let Some(line) = line else { break };
        if let Some(cp) = line.strip_prefix("CHECKPOINT ") {
            let cp: Value = serde_json::from_str(cp).unwrap();
            let name = cp["name"].as_str().unwrap().to_owned();
            match name.as_str() {
                "signed_in" => {
                    // One session in the demo, its access token fresh (no refresh yet).
                    assert_eq!(app.demo.store.session_count(), 1);
                    assert!(events(&srv, "token.refreshed", &app.client.0).is_empty());
                    // Move the demo's clock (and its SDK's) just past the token's expiry.
                    let exp = cp["expires_at"].as_i64().unwrap();
                    let offset = exp - SystemClock.now() + 1;
                    assert!(offset > 30, "the token was already near its end: {offset}");
                    app.clock.offset.store(offset, Ordering::Relaxed);
                }
                "refreshed" => {
                    app.clock.offset.store(0, Ordering::Relaxed);
                    // Portcullis saw exactly one refresh from the demo.
                    assert_eq!(events(&srv, "token.refreshed", &app.client.0).len(), 1);
                }
                "logged_out" => {
                    assert_eq!(
                        app.demo.store.session_count(),
                        0,
                        "the demo session is gone"
                    );
                    assert!(
                        sessions_of_alice(&srv).is_empty(),
                        "the Portcullis session is gone too: {:?}",
                        sessions_of_alice(&srv)
                    );
                    // The refresh token was revoked before the redirect to Portcullis.
                    assert!(!events(&srv, "token.revoked", &app.client.0).is_empty());
                }
                "signed_in_again" => {
                    assert_eq!(app.demo.store.session_count(), 1);
                    let sessions = sessions_of_alice(&srv);
                    assert_eq!(sessions.len(), 1, "{sessions:?}");
                    let id = sessions[0]["session_id"].as_str().unwrap().to_owned();
                    srv.cli(&["sessions", "revoke", &id], None);
                    let demo = app.demo.clone();
                    wait_for("the back-channel logout", || {
                        demo.store.session_count() == 0
                    })
                    .await;
                    assert!(srv.log().contains("logout.backchannel_sent"));
                }
                other => panic!("unknown checkpoint {other}"),
            }
            checkpoints.push(name);
            stdin.write_all(b"go\n").await.unwrap();
            stdin.flush().await.unwrap();
        } else if line.starts_with('{') {
            report = Some(serde_json::from_str(&line).unwrap());
        }
    }
    let status = child.wait().await.unwrap();
    let stderr = stderr_task.await.unwrap();
    eprintln!("--- browser stderr ---\n{stderr}");
    let r = report.expect("no report from the browser script");
    assert!(
        status.success() && r["ok"] == true,
        "the browser script failed: {r}\nstderr: {stderr}"
    );
    assert_eq!(
        checkpoints,
        ["signed_in", "refreshed", "logged_out", "signed_in_again"]
    );

    // 1. Signed in: the claims of the ID token, escaped; no silent refresh yet.
    assert_eq!(r["first"]["sub"], seed.user_id.as_str());
    assert_eq!(r["first"]["claims"]["email"], EMAIL);
    assert_eq!(r["first"]["claims"]["iss"], srv.issuer.as_str());
    assert_eq!(r["first"]["refreshes"], 0);
    assert!(r["first"]["scope"]
        .as_str()
        .unwrap()
        .split(' ')
        .any(|s| s == "read:things"));
    // Back from Portcullis at the callback, which hops (same-site) to /me.
    let docs: Vec<String> = r["first"]["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            format!(
                "{} {} {}",
                d["method"].as_str().unwrap(),
                d["url"].as_str().unwrap(),
                d["status"]
            )
        })
        .collect();
    let tail: Vec<&str> = docs
        .iter()
        .rev()
        .take(2)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        [
            format!("GET {}/callback 200", app.url),
            format!("GET {}/me 200", app.url)
        ],
        "{docs:?}"
    );
    // The session cookie: __Host-, Secure, HttpOnly, Strict, host-only; the transaction
    // cookie was deleted at the callback.
    let cookies = r["cookies"].as_array().unwrap();
    let session = cookies
        .iter()
        .find(|c| c["name"] == "__Host-demo-session")
        .unwrap_or_else(|| panic!("no session cookie: {cookies:?}"));
    assert_eq!(session["secure"], true);
    assert_eq!(session["httpOnly"], true);
    assert_eq!(session["sameSite"], "Strict");
    assert_eq!(session["path"], "/");
    assert_eq!(session["hostOnly"], true);
    assert_eq!(session["domain"], "127.0.0.1");
    assert!(session["valueLength"].as_u64().unwrap() >= 43);
    assert!(
        cookies.iter().all(|c| c["name"] != "__Secure-demo-tx"),
        "the transaction cookie outlived the callback: {cookies:?}"
    );

    // 2. The silent refresh: same user, a new access token with a later expiry.
    assert_eq!(r["refreshed"]["url"], format!("{}/me", app.url));
    assert_eq!(r["refreshed"]["sub"], seed.user_id.as_str());
    assert_eq!(r["refreshed"]["refreshes"], 1);
    assert!(
        r["refreshed"]["expires_at"].as_i64().unwrap() > r["first"]["expires_at"].as_i64().unwrap()
    );

    // 3. Logout ended at the post-logout page, by way of Portcullis, and left no session cookie.
    let logout_docs = r["logout"]["documents"].as_array().unwrap();
    assert_eq!(logout_docs[0]["method"], "POST");
    assert_eq!(logout_docs[0]["url"], format!("{}/logout", app.url));
    assert!(logout_docs
        .iter()
        .any(|d| d["url"].as_str().unwrap().starts_with(&srv.issuer)));
    assert_eq!(
        logout_docs.last().unwrap()["url"],
        format!("{}/signed-out", app.url)
    );
    assert!(r["logout"]["cookies_after"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["name"] != "__Host-demo-session"));

    // No CSP violation, console error or script error anywhere.
    assert_eq!(
        r["csp_violations"].as_array().unwrap().len(),
        0,
        "{}",
        r["csp_violations"]
    );
    assert_eq!(
        r["console_errors"].as_array().unwrap().len(),
        0,
        "{}",
        r["console_errors"]
    );
    assert_eq!(
        r["page_errors"].as_array().unwrap().len(),
        0,
        "{}",
        r["page_errors"]
    );
    let shots = r["screenshots"].as_array().unwrap();
    assert_eq!(shots.len(), 6, "{shots:?}");
    for s in shots {
        assert!(std::fs::metadata(s.as_str().unwrap()).is_ok_and(|m| m.len() > 0));
    }

    // Without the browser.
    http_checks(&srv, &app).await;
    api_checks(&srv, &app).await;

    // Last (it uses up this address's sign-ins for a minute): a script starting sign-ins
    // cannot fill the pending store; past the per-network limit it gets 503 and Retry-After.
    let http = srv.http();
    let mut refused = None;
    for n in 0..=portcullis_demo::LOGINS_PER_MINUTE {
        let res = http.get(format!("{}/login", app.url)).send().await.unwrap();
        if res.status() == 503 {
            refused = Some((n, res.headers()["retry-after"].clone()));
            break;
        }
        assert_eq!(res.status(), 303);
    }
    let (n, retry) = refused.expect("sign-ins past the limit were refused");
    assert!(n <= portcullis_demo::LOGINS_PER_MINUTE, "{n}");
    assert_eq!(retry, "60");

    eprintln!(
        "demo browser test: {} passed in {:.1} s; screenshots in {}",
        r["browser"],
        started.elapsed().as_secs_f64(),
        artifacts.display()
    );
}

/// A cookie jar for the demo's origin only (the Portcullis pages get their own).
async fn demo_sign_in(
    srv: &TestServer,
    app: &Running,
    http: &reqwest::Client,
) -> (String, Vec<String>) {
    let res = http.get(format!("{}/login", app.url)).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let lines: Vec<String> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let tx_line = lines
        .iter()
        .find(|l| l.starts_with("__Secure-demo-tx="))
        .unwrap_or_else(|| panic!("no transaction cookie: {lines:?}"))
        .clone();
    let binding_line = lines
        .iter()
        .find(|l| l.starts_with("__Host-demo-txb="))
        .unwrap_or_else(|| panic!("no binding cookie: {lines:?}"))
        .clone();
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!("{}/authorize?", srv.issuer)),
        "{location}"
    );
    let mut portcullis = Jar::default();
    let res = browser_login(srv, http, &mut portcullis, &location, EMAIL, PASSWORD).await;
    assert_eq!(res.status(), 303);
    let callback = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        callback.starts_with(&format!("{}/callback?", app.url)),
        "{callback}"
    );
    let tx = tx_line.split(';').next().unwrap().to_owned();
    let binding = binding_line.split(';').next().unwrap().to_owned();
    let res = http
        .get(&callback)
        .header("cookie", format!("{tx}; {binding}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut all = vec![tx_line, binding_line];
    all.extend(
        res.headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned()),
    );
    let session = all
        .iter()
        .find(|l| l.starts_with("__Host-demo-session=") && !l.contains("Max-Age=0"))
        .unwrap_or_else(|| panic!("no session cookie: {all:?}"))
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    (session, all)
}

async fn http_checks(srv: &TestServer, app: &Running) {
    let http = srv.http();
    // The home page: the full header set, a CSP without inline script.
    let res = http.get(format!("{}/", app.url)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    check_html_page("demo home", res, None).await;

    // Sign in without a browser to read the Set-Cookie lines themselves.
    let (session, lines) = demo_sign_in(srv, app, &http).await;
    let shape = |prefix: &str| {
        lines
            .iter()
            .filter(|l| l.starts_with(prefix))
            .map(|l| parse_set_cookie(l))
            .collect::<Vec<_>>()
    };
    let tx = shape("__Secure-demo-tx=");
    assert_eq!(
        tx.len(),
        2,
        "set at /login, deleted at the callback: {lines:?}"
    );
    let mut set_attrs = tx[0].2.clone();
    set_attrs.sort();
    assert_eq!(
        set_attrs,
        [
            "httponly",
            "max-age=600",
            "path=/callback",
            "samesite=lax",
            "secure"
        ]
    );
    assert!(!tx[0].1.is_empty());
    assert_eq!(tx[1].1, "", "deleted");
    let mut del_attrs = tx[1].2.clone();
    del_attrs.sort();
    assert_eq!(
        del_attrs,
        [
            "httponly",
            "max-age=0",
            "path=/callback",
            "samesite=lax",
            "secure"
        ]
    );
    // The browser binding: a `__Host-` cookie (no sibling domain can set one), set and
    // deleted with the transaction cookie.
    let b = shape("__Host-demo-txb=");
    assert_eq!(b.len(), 2, "{lines:?}");
    let mut b_attrs = b[0].2.clone();
    b_attrs.sort();
    assert_eq!(
        b_attrs,
        [
            "httponly",
            "max-age=600",
            "path=/",
            "samesite=lax",
            "secure"
        ]
    );
    assert_eq!(b[1].1, "", "deleted");
    let s = shape("__Host-demo-session=");
    let mut s_attrs = s[0].2.clone();
    s_attrs.sort();
    assert_eq!(
        s_attrs,
        [
            "httponly",
            "max-age=28800",
            "path=/",
            "samesite=strict",
            "secure"
        ]
    );
    assert!(!lines
        .iter()
        .any(|l| l.to_ascii_lowercase().contains("domain=")));

    // /me: the header set, with Portcullis's origin in form-action (the logout redirect).
    let res = http
        .get(format!("{}/me", app.url))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let html = check_html_page("demo /me", res, Some(&srv.issuer)).await;
    assert!(html.contains("Demo") || html.contains(EMAIL));
    let token = hidden_field(&html, "csrf_token").unwrap();
    let logout = |origin: &str, body: String| {
        http.post(format!("{}/logout", app.url))
            .header("cookie", &session)
            .header("origin", origin)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    // CSRF: no token, a wrong token, a repeated one, another origin: refused, session kept.
    for (origin, body) in [
        (app.url.as_str(), String::new()),
        (app.url.as_str(), "csrf_token=forged".to_owned()),
        (
            app.url.as_str(),
            format!("csrf_token={token}&csrf_token={token}"),
        ),
        ("https://evil.example", format!("csrf_token={token}")),
        ("null", format!("csrf_token={token}")),
    ] {
        let res = logout(origin, body.clone()).await.unwrap();
        assert_eq!(res.status(), 403, "{origin} {body}");
        assert_eq!(
            res.headers()["strict-transport-security"],
            "max-age=31536000; includeSubDomains"
        );
    }
    let res = http
        .post(format!("{}/logout", app.url))
        .header("cookie", &session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf_token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "no Origin and no Sec-Fetch-Site");
    let res = http
        .get(format!("{}/me", app.url))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert!(
        res.text().await.unwrap().contains("id=\"sub\""),
        "still signed in"
    );
    // A body too large, a target too long, a callback with repeated parameters.
    let res = logout(&app.url, format!("csrf_token={}", "a".repeat(40_000)))
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let res = http
        .get(format!("{}/callback?code={}", app.url, "a".repeat(9000)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 414);
    let res = http
        .get(format!("{}/callback?code=a&code=b&state=s", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "no transaction cookie");
    // Cookie tossing: a transaction cookie without its browser binding (a sibling domain can
    // plant the one but not the other) is refused.
    let res = http.get(format!("{}/login", app.url)).send().await.unwrap();
    let cookie = |prefix: &str| {
        res.headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|l| l.starts_with(prefix))
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned()
    };
    let (tossed, binding) = (cookie("__Secure-demo-tx="), cookie("__Host-demo-txb="));
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let res = browser_login(srv, &http, &mut Jar::default(), &location, EMAIL, PASSWORD).await;
    let callback = res.headers()["location"].to_str().unwrap().to_owned();
    // Alone (which spends it: a pending sign-in is used once, whatever comes with it), then
    // with its own binding: too late. (Another browser's binding spends it too: the store's
    // unit test.)
    for cookies in [tossed.clone(), format!("{tossed}; {binding}")] {
        let res = http
            .get(&callback)
            .header("cookie", &cookies)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{cookies}");
    }
    // The right token from the same origin: ends the session, 303 to Portcullis's logout.
    let res = logout(&app.url, format!("csrf_token={token}"))
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let to = res.headers()["location"].to_str().unwrap();
    assert!(to.starts_with(&format!("{}/logout?", srv.issuer)), "{to}");
    let q = query_of(to);
    assert_eq!(
        q["post_logout_redirect_uri"],
        format!("{}/signed-out", app.url)
    );
    assert!(q.contains_key("id_token_hint"));

    // Back-channel logout: malformed requests get 400 and are never cached.
    for (ct, body) in [
        (
            "application/x-www-form-urlencoded",
            "logout_token=not.a.jwt".to_owned(),
        ),
        ("application/x-www-form-urlencoded", String::new()),
        (
            "application/x-www-form-urlencoded",
            "logout_token=a&logout_token=b".to_owned(),
        ),
        ("application/json", "{\"logout_token\":\"x\"}".to_owned()),
    ] {
        let res = http
            .post(format!("{}/backchannel-logout", app.url))
            .header("content-type", ct)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{ct} {body}");
        assert_eq!(res.headers()["cache-control"], "no-store");
    }
}

async fn api_checks(srv: &TestServer, app: &Running) {
    let http = srv.http();
    let api = format!("{}/api/things", app.url);
    let call = |token: Option<String>| {
        let mut req = http.get(&api);
        if let Some(t) = token {
            req = req.header("authorization", t);
        }
        req.send()
    };
    // A real token for the API with its scope: 200.
    let sdk = Portcullis::builder(&srv.issuer, &app.client.0)
        .unwrap()
        .client_secret(Secret::new(app.client.1.clone()))
        .root_certificates_pem(srv.ca_pem.as_bytes())
        .unwrap()
        .build()
        .unwrap();
    let redirect = app.demo.config.redirect_uri();
    let (url, pending) = sdk
        .authorization_url(
            &redirect,
            &AuthorizationOptions {
                scopes: vec!["read:things".into()],
                resource: Some(API.into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let res = browser_login(
        srv,
        &http,
        &mut Jar::default(),
        url.as_str(),
        EMAIL,
        PASSWORD,
    )
    .await;
    let callback = res.headers()["location"].to_str().unwrap().to_owned();
    let signed_in = sdk
        .authenticate_with_code(&callback, &pending)
        .await
        .unwrap();
    let res = call(Some(format!(
        "Bearer {}",
        signed_in.tokens.access_token.expose()
    )))
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["sub"], signed_in.claims.sub.as_str());
    // A real token without the scope: 403 insufficient_scope.
    let tokens = sign_in_for_tokens(
        srv,
        &http,
        &mut Jar::default(),
        (&app.client.0, &app.client.1),
        &redirect,
        EMAIL,
    )
    .await;
    let no_scope = tokens["access_token"].as_str().unwrap();
    assert!(
        !tokens["scope"].as_str().unwrap().contains("read:things"),
        "{tokens}"
    );
    let res = call(Some(format!("Bearer {no_scope}"))).await.unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(
        res.headers()["www-authenticate"],
        "Bearer error=\"insufficient_scope\", scope=\"read:things\""
    );
    // No token, a forged one, an ID token, another scheme: 401.
    let res = call(None).await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    let id_token = signed_in
        .tokens
        .id_token
        .as_ref()
        .unwrap()
        .expose()
        .to_owned();
    for bad in [
        "Bearer not-a-token".to_owned(),
        format!("Bearer {id_token}"),
        format!("Basic {}", signed_in.tokens.access_token.expose()),
        "Bearer ".to_owned(),
    ] {
        let res = call(Some(bad.clone())).await.unwrap();
        assert_eq!(res.status(), 401, "{bad:.20}");
        assert_eq!(
            res.headers()["www-authenticate"],
            "Bearer error=\"invalid_token\""
        );
    }
    // Two Authorization headers: refused, whatever they hold.
    let res = http
        .get(&api)
        .header(
            "authorization",
            format!("Bearer {}", signed_in.tokens.access_token.expose()),
        )
        .header("authorization", "Bearer x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // Tokens the demo's client asked for through the SDK outside the demo are unaffected
    // by it: refresh still works (the demo shares nothing with other sessions).
    let fresh = sdk
        .refresh(signed_in.tokens.refresh_token.as_ref().unwrap())
        .await
        .unwrap();
    let res = call(Some(format!("Bearer {}", fresh.access_token.expose())))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}
