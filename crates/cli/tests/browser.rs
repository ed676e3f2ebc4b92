//! A real browser (Debian's Chromium, driven by `playwright-core` from `tests/browser/`) signs
//! in through the hosted pages: a cross-site link from an app, the interstitial hop, the login
//! form, silent single sign-on for a confidential first-party client whose redirect is `https`,
//! "Continue as" for the same client on a loopback `http` redirect and for a public client, and
//! a forged cross-site POST to `/login`.
//!
//! The app is a tiny HTTP/1.1 server on two loopback ports: plain HTTP (RFC 8252: the redirect
//! `http://127.0.0.1:<any port>/cb` matches the registered `http://127.0.0.1/cb`) and HTTPS with
//! the server's own leaf certificate (`https://127.0.0.1:<port>/cb`, registered with its exact
//! port). Silent single sign-on is only allowed for the `https` redirect: any local process can
//! listen on a loopback port (RFC 8252 §8.5, §8.6).
//!
//! Needs `node`, `/usr/bin/chromium` (or `$CHROMIUM`) and `npm ci --prefix tests/browser`; a
//! missing piece fails the test with the command that installs it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

const EMAIL: &str = "alice@example.com";

/// One authorization the app can start: its URL and the PKCE verifier behind it.
struct Start {
    url: String,
    verifier: String,
    nonce: String,
}

/// The app's state: the links it serves and the callbacks it received, each with the scheme
/// of the listener it arrived at (`http` or `https`).
struct App {
    issuer: String,
    starts: HashMap<String, Start>,
    callbacks: Mutex<Vec<(&'static str, String)>>,
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn page(title: &str, body: &str) -> String {
    format!("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head><body>{body}</body></html>")
}

/// Answers one request of the app on its `scheme` listener. Returns (status line, extra header
/// lines, body).
fn app_route(
    app: &App,
    scheme: &'static str,
    target: &str,
) -> (&'static str, &'static str, String) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let attempt = query
        .split('&')
        .find_map(|p| p.strip_prefix("attempt="))
        .unwrap_or("1");
    match path {
        // `web`: the first-party client with its https redirect; `loopback`: the same client with
        // the http loopback redirect; `public`: the public client (loopback redirect).
        "/start-web" | "/start-loopback" | "/start-public" | "/start-v6" => {
            let kind = &path["/start-".len()..];
            match app.starts.get(&format!("{kind}-{attempt}")) {
                Some(s) => (
                    "200 OK",
                    "",
                    page("Example app", &format!("<h1>Example app</h1><p><a id=\"signin\" href=\"{}\">Sign in with Portcullis</a></p>", html_escape(&s.url))),
                ),
                None => ("404 Not Found", "", page("Not found", "<p>no such attempt</p>")),
            }
        }
        // An attacker's page on another site: a form posting credentials to the issuer's /login
        // (login CSRF). It has no CSRF token to offer and no flow cookie is sent cross-site.
        "/forge" => (
            "200 OK",
            "",
            page(
                "Win a prize",
                &format!(
                    "<h1>Win a prize</h1><form id=\"forge\" method=\"post\" action=\"{}/login\">\
                     <input type=\"hidden\" name=\"csrf_token\" value=\"forged\">\
                     <input type=\"hidden\" name=\"email\" value=\"{EMAIL}\">\
                     <input type=\"hidden\" name=\"password\" value=\"{}\">\
                     <button id=\"forge-submit\" type=\"submit\">Claim</button></form>",
                    html_escape(&app.issuer),
                    html_escape(PASSWORD)
                ),
            ),
        ),
        "/cb" => {
            app.callbacks
                .lock()
                .unwrap()
                .push((scheme, query.to_owned()));
            (
                "200 OK",
                "",
                page("Signed in", "<h1 id=\"callback\">Back at the app</h1>"),
            )
        }
        // Proves that the browser script's CSP-violation and console-error recording works: this
        // page forbids images and shows one, so exactly that violation must be recorded.
        "/csp-canary" => (
            "200 OK",
            "Content-Security-Policy: img-src 'none'\r\n",
            page(
                "Canary",
                "<h1 id=\"canary\">Canary</h1><img src=\"/favicon.ico\" alt=\"\">",
            ),
        ),
        "/favicon.ico" => ("204 No Content", "", String::new()),
        _ => ("404 Not Found", "", page("Not found", "<p>not found</p>")),
    }
}

async fn serve_conn<S>(app: Arc<App>, scheme: &'static str, mut sock: S)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // GET-only, one request per connection: read the head, answer, close.
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 2048];
    loop {
        match tokio::time::timeout(Duration::from_secs(30), sock.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        if buf.len() > 64 * 1024 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.lines().next().unwrap_or("").split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let (status, extra, body) = if method == "GET" {
        app_route(&app, scheme, target)
    } else {
        ("405 Method Not Allowed", "", String::new())
    };
    let res = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nReferrer-Policy: no-referrer\r\n{extra}Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = sock.write_all(res.as_bytes()).await;
    let _ = sock.shutdown().await;
}

/// Serves the app on `listener`, over TLS when `tls` is given.
fn serve_app(
    app: Arc<App>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                continue;
            };
            let app = app.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    None => serve_conn(app, "http", sock).await,
                    Some(acceptor) => {
                        if let Ok(Ok(stream)) =
                            tokio::time::timeout(Duration::from_secs(30), acceptor.accept(sock))
                                .await
                        {
                            serve_conn(app, "https", stream).await;
                        }
                    }
                }
            });
        }
    })
}

/// Builds an authorization URL for `client_id` with its own state, nonce and PKCE pair.
fn start(srv: &TestServer, client_id: &str, redirect_uri: &str, label: &str) -> Start {
    let (verifier, challenge) = pkce();
    let nonce = format!("nonce-{label}");
    let mut url = url::Url::parse(&authorize_url(
        srv,
        client_id,
        redirect_uri,
        &challenge,
        &[],
    ))
    .unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = match &*k {
                "state" => format!("state-{label}"),
                "nonce" => nonce.clone(),
                _ => v.into_owned(),
            };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    Start {
        url: url.to_string(),
        verifier,
        nonce,
    }
}

fn field<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| &v[k])
}

fn str_of<'a>(v: &'a Value, path: &str) -> &'a str {
    field(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} missing in the browser's report: {v}"))
}

/// base64(SHA-256(SubjectPublicKeyInfo)) of the server's certificate key, for Chromium's
/// `--ignore-certificate-errors-spki-list`: the browser then accepts exactly this certificate
/// as if it chained to a trusted root (Secure and `__Host-` cookies behave as in production),
/// instead of ignoring every certificate error.
fn spki_hash(srv: &TestServer) -> String {
    use sha2::Digest;
    let key_pem = std::fs::read_to_string(srv.dir.path().join("key.pem")).unwrap();
    let key = rcgen::KeyPair::from_pem(&key_pem).unwrap();
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(key.public_key_der()))
}

fn decode_jwt_claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_signs_in_through_the_hosted_pages() {
    let started = Instant::now();
    let root = workspace_root();
    let (script, chromium) = browser_prerequisites(&root, "signin.mjs");
    let artifacts = artifacts_dir(&root, "");

    let srv = TestServer::start();
    let seed = srv.seed();
    let spki = spki_hash(&srv);

    // The app, on two loopback ports: plain HTTP and HTTPS (the server's certificate).
    let http_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let https_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_base = format!(
        "http://127.0.0.1:{}",
        http_listener.local_addr().unwrap().port()
    );
    let https_base = format!(
        "https://127.0.0.1:{}",
        https_listener.local_addr().unwrap().port()
    );
    // A third listener on the IPv6 loopback, for a native-style client: no CSP source can name
    // `http://[::1]:port`, so the sign-in must reach it through the "returning" page.
    let v6_listener = TcpListener::bind("[::1]:0").await.unwrap();
    let v6_base = format!("http://[::1]:{}", v6_listener.local_addr().unwrap().port());
    let v6_cb = format!("{v6_base}/cb");
    let v6 = srv.cli_json(
        &[
            "clients",
            "create",
            "--name",
            "Native v6",
            "--public",
            "--redirect-uri",
            "http://[::1]/cb",
        ],
        None,
    );
    let v6_id = v6["client_id"].as_str().unwrap().to_owned();
    let loopback_cb = format!("{http_base}/cb");
    let https_cb = format!("{https_base}/cb");

    // A confidential first-party client with both redirects: the https one (exact, port and
    // all) and the loopback one (any port). Same name as the seeded client, to check escaping.
    let web = srv.cli_json(
        &[
            "clients",
            "create",
            "--name",
            "Web <App>",
            "--redirect-uri",
            &https_cb,
            "--redirect-uri",
            "http://127.0.0.1/cb",
            "--api",
            API,
            "--scope",
            "read:things",
            "--first-party",
        ],
        None,
    );
    let web_id = web["client_id"].as_str().unwrap().to_owned();
    let web_secret = web["client_secret"].as_str().unwrap().to_owned();

    let mut starts = HashMap::new();
    for label in ["web-1", "web-2", "web-3", "web-4"] {
        starts.insert(label.to_owned(), start(&srv, &web_id, &https_cb, label));
    }
    starts.insert(
        "loopback-1".to_owned(),
        start(&srv, &web_id, &loopback_cb, "loopback-1"),
    );
    starts.insert(
        "public-1".to_owned(),
        start(&srv, &seed.public_id, &loopback_cb, "public-1"),
    );
    starts.insert("v6-1".to_owned(), start(&srv, &v6_id, &v6_cb, "v6-1"));
    let app = Arc::new(App {
        issuer: srv.issuer.clone(),
        starts,
        callbacks: Mutex::new(Vec::new()),
    });
    let http_task = serve_app(app.clone(), http_listener, None);
    let https_task = serve_app(app.clone(), https_listener, Some(tls_acceptor(&srv)));
    let v6_task = serve_app(app.clone(), v6_listener, None);

    // The browser.
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(&script)
        .current_dir(root.join("tests/browser"))
        .env("PORTCULLIS_ISSUER", &srv.issuer)
        .env("APP_BASE", &http_base)
        .env("APP_HTTPS_BASE", &https_base)
        .env("WEB_CLIENT_ID", &web_id)
        .env("PUBLIC_CLIENT_ID", &seed.public_id)
        .env("APP_V6_BASE", &v6_base)
        .env("V6_CLIENT_ID", &v6_id)
        .env("USER_EMAIL", EMAIL)
        .env("USER_PASSWORD", PASSWORD)
        .env("ARTIFACTS_DIR", &artifacts)
        .env("IGNORE_CERT_SPKI", &spki)
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("the browser script did not finish within 120 s")
        .expect("running node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("--- browser stderr ---\n{stderr}--- browser report ---\n{stdout}");
    assert!(
        out.status.success(),
        "the browser script failed ({}). stderr:\n{stderr}\nstdout:\n{stdout}\nserver log (tail):\n{}",
        out.status,
        srv.log().lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .expect("no JSON line from the browser script");
    let r: Value = serde_json::from_str(line).expect("the browser's JSON line");
    assert_eq!(r["ok"], true, "{r}");

    // Codes, state echoed, iss is the issuer (RFC 9207), for every authorization, each at the
    // redirect URI it asked for. In the order the browser ran them.
    let flows = [
        ("web1", "web-1", "https", https_cb.as_str()),
        ("web2", "web-2", "https", https_cb.as_str()),
        ("loopback", "loopback-1", "http", loopback_cb.as_str()),
        ("public", "public-1", "http", loopback_cb.as_str()),
        ("v6", "v6-1", "http", v6_cb.as_str()),
        ("web3", "web-3", "https", https_cb.as_str()),
        ("web4", "web-4", "https", https_cb.as_str()),
    ];
    for (key, label, _, cb) in flows {
        assert!(
            !str_of(&r, &format!("{key}.code")).is_empty(),
            "{key}: no code"
        );
        assert_eq!(
            str_of(&r, &format!("{key}.state")),
            format!("state-{label}"),
            "{key}: state not echoed"
        );
        assert_eq!(str_of(&r, &format!("{key}.iss")), srv.issuer, "{key}: iss");
        assert_eq!(
            str_of(&r, &format!("{key}.url")),
            cb,
            "{key}: landed elsewhere"
        );
    }
    let codes: Vec<&str> = flows
        .iter()
        .map(|(k, ..)| str_of(&r, &format!("{k}.code")))
        .collect();
    for (i, c) in codes.iter().enumerate() {
        assert!(!codes[..i].contains(c), "codes must all differ: {codes:?}");
    }
    // The app's own listeners saw the same callbacks the browser reported, on the right scheme.
    let seen = app.callbacks.lock().unwrap().clone();
    assert_eq!(seen.len(), flows.len(), "callbacks at the app: {seen:?}");
    for ((scheme, q), ((key, _, want_scheme, _), code)) in seen.iter().zip(flows.iter().zip(&codes))
    {
        assert_eq!(scheme, want_scheme, "{key}: callback on the wrong listener");
        let q = query_of(&format!("http://x/?{q}"));
        assert_eq!(q.get("code").map(String::as_str), Some(*code), "{key}");
    }

    // The client's name "Web <App>" was escaped: the browser shows it as text.
    assert_eq!(r["web1"]["client_name_text"], "Web <App>");
    assert_eq!(r["web1"]["client_name_became_markup"], false);
    assert_eq!(r["loopback"]["client_name_text"], "Web <App>");
    assert_eq!(r["loopback"]["client_name_became_markup"], false);

    // The main-frame documents of one step, as "METHOD url status".
    let docs_of = |key: &str| -> Vec<String> {
        r[key]["documents"]
            .as_array()
            .unwrap_or_else(|| panic!("{key}.documents missing: {}", r[key]))
            .iter()
            .map(|d| {
                format!(
                    "{} {} {}",
                    d["method"].as_str().unwrap(),
                    d["url"].as_str().unwrap(),
                    d["status"]
                )
            })
            .collect()
    };
    let hop = format!("GET {}/authorize 200", srv.issuer);
    let resume_302 = format!("GET {}/authorize/resume 302", srv.issuer);
    let resume_200 = format!("GET {}/authorize/resume 200", srv.issuer);

    // Silent single sign-on for the confidential first-party client on its https redirect: from
    // the app's start page through the hop straight back to /cb, no page of ours in between.
    for key in ["web2", "web3", "web4"] {
        assert_eq!(
            r[key]["login_form_shown"], false,
            "{key}: showed the login form"
        );
        assert_eq!(
            r[key]["continue_shown"], false,
            "{key}: showed \"Continue as\""
        );
        assert_eq!(
            docs_of(key),
            [
                format!("GET {https_base}/start-web 200"),
                hop.clone(),
                resume_302.clone(),
                format!("GET {https_cb} 200"),
            ],
            "{key}: silent SSO must go start page -> /authorize -> /authorize/resume 302 -> /cb"
        );
    }

    // The same client on the loopback http redirect: "Continue as <email>", then a code.
    assert_eq!(r["loopback"]["continue_shown"], true);
    assert!(
        str_of(&r, "loopback.continue_text").contains(EMAIL),
        "{}",
        r["loopback"]
    );
    assert_eq!(r["loopback"]["login_form_shown"], false);
    let loopback_docs = docs_of("loopback");
    assert!(
        loopback_docs.contains(&resume_200) && !loopback_docs.contains(&resume_302),
        "the loopback redirect must get the \"Continue as\" page, not a code: {loopback_docs:?}"
    );
    assert!(
        loopback_docs
            .iter()
            .any(|d| d.starts_with(&format!("POST {}/authorize/continue 30", srv.issuer))),
        "the loopback code must come from the \"Continue as\" POST: {loopback_docs:?}"
    );

    // The public client asked "Continue as <email>" and got a code after one click.
    assert_eq!(r["public"]["continue_shown"], true);
    assert!(
        str_of(&r, "public.continue_text").contains(EMAIL),
        "{}",
        r["public"]
    );
    assert_eq!(r["public"]["login_form_shown"], false);
    assert!(
        docs_of("public").contains(&resume_200),
        "{:?}",
        docs_of("public")
    );

    // The IPv6 loopback client: "Continue as", then our "returning" page (200, not a redirect
    // its CSP could not allow), whose meta refresh reached the app. No CSP violation anywhere
    // (checked below for every step).
    assert_eq!(r["v6"]["continue_shown"], true);
    let v6_docs = docs_of("v6");
    assert!(
        v6_docs.contains(&format!("POST {}/authorize/continue 200", srv.issuer))
            && v6_docs.last() == Some(&format!("GET {v6_cb} 200")),
        "the IPv6 loopback flow must pass through the returning page: {v6_docs:?}"
    );

    // The recorders work: the canary page's one forbidden image was seen both ways.
    let canary_violations = r["canary"]["csp_violations"].as_array().unwrap();
    assert!(
        canary_violations
            .iter()
            .any(|v| v["effectiveDirective"] == "img-src"),
        "the CSP canary was not recorded, so zero violations would prove nothing: {}",
        r["canary"]
    );
    assert!(
        r["canary"]["console_errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["text"]
                .as_str()
                .unwrap_or("")
                .contains("Content Security Policy")),
        "the CSP canary's console error was not recorded: {}",
        r["canary"]
    );

    // No CSP violation, no console error, no script error on the hosted pages or the app.
    assert_eq!(
        r["csp_violations"].as_array().unwrap().len(),
        0,
        "CSP violations: {}",
        r["csp_violations"]
    );
    let mut unexpected = Vec::new();
    for e in r["console_errors"].as_array().unwrap() {
        let (step, text, url) = (str_of(e, "step"), str_of(e, "text"), str_of(e, "url"));
        let failed_load = |status: &str| {
            text.starts_with("Failed to load resource")
                && text.contains(&format!("status of {status}"))
        };
        if step == "forge" && url == srv.url("/login") && failed_load("403") {
            // The refused forged POST itself: Chrome logs every error status of a document.
            continue;
        }
        unexpected.push(e.clone());
    }
    assert!(unexpected.is_empty(), "console errors: {unexpected:?}");
    assert_eq!(
        r["page_errors"].as_array().unwrap().len(),
        0,
        "page errors: {}",
        r["page_errors"]
    );

    // The session cookie: __Host- rules (Secure, Path=/, host-only), HttpOnly, SameSite=Strict.
    let cookies = r["cookies"].as_array().unwrap();
    let session = cookies
        .iter()
        .find(|c| c["name"] == "__Host-portcullis-session")
        .expect("session cookie");
    assert_eq!(session["secure"], true);
    assert_eq!(session["httpOnly"], true);
    assert_eq!(session["sameSite"], "Strict");
    assert_eq!(session["path"], "/");
    assert_eq!(session["hostOnly"], true);
    assert_eq!(session["domain"], "localhost");
    // The flow cookie is single use: deleted once the code is issued.
    for key in ["cookies", "cookies_final"] {
        let list = r[key].as_array().unwrap();
        assert!(
            list.iter().all(|c| c["name"] != "__Host-portcullis-flow"),
            "{key}: flow cookie left behind: {list:?}"
        );
    }

    // The forged cross-site POST was refused and changed nothing.
    assert_eq!(r["forge"]["status"], 403);
    assert_eq!(r["forge"]["heading"], "Request refused");
    assert_eq!(
        r["forge"]["set_cookie"], false,
        "the refused POST must set no cookie"
    );
    assert_eq!(r["forge"]["session_unchanged"], true);

    // The password page worked in the browser: "sign out my other sessions" ticked by default,
    // this browser still signed in afterwards, and the new password is the one that works.
    assert_eq!(
        r["password"]["end_others_default"], true,
        "{}",
        r["password"]
    );
    assert_eq!(r["password"]["this_browser"], true, "{}", r["password"]);
    assert_eq!(r["password"]["sessions"], 1, "{}", r["password"]);
    for (pw, status) in [(PASSWORD, 401), ("harbor quill meadow tangent", 303)] {
        let (_, challenge) = pkce();
        let url = authorize_url(&srv, &web_id, &https_cb, &challenge, &[]);
        let res = browser_login(&srv, &srv.http(), &mut Jar::default(), &url, EMAIL, pw).await;
        assert_eq!(
            res.status(),
            status,
            "sign-in after the browser's password change"
        );
    }

    // Screenshots were written.
    for shot in r["screenshots"].as_array().unwrap() {
        let path = shot.as_str().unwrap();
        assert!(
            std::fs::metadata(path).is_ok_and(|m| m.len() > 0),
            "screenshot {path} missing or empty"
        );
    }
    assert_eq!(
        r["screenshots"].as_array().unwrap().len(),
        5,
        "{}",
        r["screenshots"]
    );

    // Codes issued before the password change were ended by it; the one after it is real:
    // exchange it with the client's secret and PKCE verifier.
    let http = srv.http();
    let web1 = &app.starts["web-1"];
    let res = http
        .post(srv.url("/token"))
        .basic_auth(&web_id, Some(&web_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", str_of(&r, "web1.code")),
            ("redirect_uri", https_cb.as_str()),
            ("code_verifier", web1.verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "a code from before the password change");
    let web1 = &app.starts["web-4"];
    let res = http
        .post(srv.url("/token"))
        .basic_auth(&web_id, Some(&web_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", str_of(&r, "web4.code")),
            ("redirect_uri", https_cb.as_str()),
            ("code_verifier", web1.verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let status = res.status();
    let tokens: Value = res.json().await.unwrap();
    assert_eq!(status, 200, "token exchange: {tokens}");
    assert!(tokens["access_token"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
    let claims = decode_jwt_claims(tokens["id_token"].as_str().expect("an ID token"));
    assert_eq!(claims["iss"], srv.issuer.as_str());
    let aud_ok = claims["aud"] == web_id.as_str()
        || claims["aud"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == web_id.as_str()));
    assert!(aud_ok, "ID token aud: {}", claims["aud"]);
    assert_eq!(claims["sub"], seed.user_id.as_str());
    assert_eq!(claims["nonce"], web1.nonce.as_str());

    http_task.abort();
    https_task.abort();
    v6_task.abort();
    eprintln!(
        "browser test: {} ({}) passed in {:.1} s; artifacts in {}",
        r["browser"],
        if r["spki_pinned"] == true {
            "SPKI pinned"
        } else {
            "ignoreHTTPSErrors"
        },
        started.elapsed().as_secs_f64(),
        artifacts.display()
    );
}
