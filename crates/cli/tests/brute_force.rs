//! Brute-force defenses of the sign-in form against the real server: the attack cases A10-A13
//! and the 429 part of A17 (`shared/cases/CASES.md`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

/// A fresh pending sign-in: the jar with its flow cookie, and the form's CSRF token.
async fn fresh_form(srv: &TestServer, http: &reqwest::Client, client: &str) -> (Jar, String) {
    let (_v, c) = pkce();
    let mut jar = Jar::default();
    let res = authorize_and_resume(
        srv,
        http,
        &mut jar,
        &authorize_url(srv, client, CB, &c, &[]),
    )
    .await;
    assert_eq!(res.status(), 200);
    let csrf = csrf_of(&res.text().await.unwrap());
    (jar, csrf)
}

/// One sign-in attempt with extra request headers; returns (status, headers, body).
async fn attempt(
    srv: &TestServer,
    http: &reqwest::Client,
    client: &str,
    email: &str,
    password: &str,
    extra: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, String) {
    let (jar, csrf) = fresh_form(srv, http, client).await;
    post_login(srv, http, &jar, &csrf, email, password, extra).await
}

async fn post_login(
    srv: &TestServer,
    http: &reqwest::Client,
    jar: &Jar,
    csrf: &str,
    email: &str,
    password: &str,
    extra: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, String) {
    let res = post_login_form(srv, http, &jar.header(), csrf, email, password, extra).await;
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, headers, res.text().await.unwrap())
}

/// The body with the per-response values (CSRF token, CSP nonce) masked.
fn masked(body: &str) -> String {
    let mut out = body.to_owned();
    if let Some(i) = out.find("name=\"csrf_token\" value=\"") {
        let start = i + 25;
        if let Some(len) = out[start..].find('"') {
            out.replace_range(start..start + len, "CSRF");
        }
    }
    out
}

fn cookie_names(h: &reqwest::header::HeaderMap) -> Vec<String> {
    let mut v: Vec<String> = h
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().split('=').next().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

fn header_names(h: &reqwest::header::HeaderMap) -> Vec<String> {
    let mut v: Vec<String> = h
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k != "date")
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a10_failed_and_throttled_sign_ins_look_the_same_for_every_account_state() {
    // Behind a trusted proxy, so each attempt can come from its own address and only the
    // account limit is at work.
    let srv = TestServer::start_with(&[("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.1")]);
    let seed = srv.seed();
    let http = srv.http();
    for email in ["dave@example.com", "lou@example.com"] {
        srv.cli(
            &["users", "create", "--email", email, "--password-stdin"],
            Some(PASSWORD),
        );
    }
    srv.cli(&["users", "disable", "dave@example.com"], None);

    // Failed sign-ins: active, disabled (wrong and right password), absent.
    let mut seen = Vec::new();
    for (email, password) in [
        ("alice@example.com", "a wrong password, long enough"),
        ("dave@example.com", "a wrong password, long enough"),
        ("dave@example.com", PASSWORD),
        ("nobody@example.com", "a wrong password, long enough"),
    ] {
        let (s, h, b) = attempt(
            &srv,
            &http,
            &seed.web_id,
            email,
            password,
            &[("x-forwarded-for", "198.51.100.1")],
        )
        .await;
        assert_eq!(s, 401, "{email}");
        assert!(b.contains("Invalid credentials"), "{email}");
        assert!(!b.to_lowercase().contains("disabled") && !b.to_lowercase().contains("locked"));
        seen.push((email, masked(&b), cookie_names(&h), header_names(&h)));
    }
    for w in seen.windows(2) {
        assert_eq!(w[0].1, w[1].1, "{} vs {}: bodies differ", w[0].0, w[1].0);
        assert_eq!(w[0].2, w[1].2, "{} vs {}: cookies differ", w[0].0, w[1].0);
        assert_eq!(w[0].3, w[1].3, "{} vs {}: headers differ", w[0].0, w[1].0);
    }

    // Throttled: lou (known, now locked) and an absent account look the same too.
    let mut throttled = Vec::new();
    for email in ["lou@example.com", "ghost@example.com"] {
        for i in 0..5 {
            // Each failure from another address, so only the account counts.
            let ip = format!("203.0.113.{}", i + 10);
            let (s, ..) = attempt(
                &srv,
                &http,
                &seed.web_id,
                email,
                "a wrong password, long enough",
                &[("x-forwarded-for", &ip)],
            )
            .await;
            assert_eq!(s, 401, "{email}");
        }
        let (s, h, b) = attempt(
            &srv,
            &http,
            &seed.web_id,
            email,
            PASSWORD,
            &[("x-forwarded-for", "192.0.2.77")],
        )
        .await;
        assert_eq!(s, 429, "{email}");
        assert!(b.contains("Too many login attempts"), "{email}");
        assert!(h.contains_key("retry-after"));
        throttled.push((masked(&b), cookie_names(&h), header_names(&h)));
    }
    assert_eq!(
        throttled[0], throttled[1],
        "throttled known and unknown accounts differ"
    );
    // Password reset does not exist yet: the documented refusal, the same for everyone.
    for email in ["alice@example.com", "nobody@example.com"] {
        let res = http
            .post(srv.url("/password-reset"))
            .form(&[("email", email)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a11_a_parallel_burst_checks_at_most_the_limit() {
    let srv = TestServer::start_with(&[("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.1")]);
    let seed = srv.seed();
    let http = srv.http();
    // 50 prepared forms, then 50 simultaneous posts; the right password is number 40.
    let mut forms = Vec::new();
    for _ in 0..50 {
        forms.push(fresh_form(&srv, &http, &seed.web_id).await);
    }
    let before = srv.log().matches("\"login.failed\"").count();
    let spawn = |i: usize, (jar, csrf): (Jar, String)| {
        let http = http.clone();
        let url = srv.url("/login");
        let origin = srv.issuer.clone();
        let password = if i == 39 {
            PASSWORD.to_owned()
        } else {
            format!("guess number {i} of many")
        };
        tokio::spawn(async move {
            // Each from its own address: only the account limit stands in the way.
            let res = http
                .post(url)
                .header("cookie", jar.header())
                .header("origin", origin)
                .header("x-forwarded-for", format!("198.51.100.{}", i + 1))
                .form(&[
                    ("csrf_token", csrf.as_str()),
                    ("email", "alice@example.com"),
                    ("password", password.as_str()),
                ])
                .send()
                .await
                .unwrap();
            (
                i,
                res.status().as_u16(),
                res.headers().contains_key("retry-after"),
            )
        })
    };
    // The first 39 at once; the right password (number 40) and the last ten follow while the
    // burst is still being answered, once the limiter has filled (five failures checked).
    let mut forms = forms.into_iter().enumerate();
    let mut tasks: Vec<_> = forms.by_ref().take(39).map(|(i, f)| spawn(i, f)).collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while srv.log().matches("\"login.failed\"").count() - before < 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "the first five were never checked"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    tasks.extend(forms.map(|(i, f)| spawn(i, f)));
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let checked = statuses.iter().filter(|(_, s, _)| *s != 429).count();
    assert!(
        checked <= 5,
        "{checked} attempts were checked: {statuses:?}"
    );
    assert!(statuses
        .iter()
        .all(|(_, s, _)| matches!(s, 401 | 429 | 303)));
    let right = statuses.iter().find(|(i, ..)| *i == 39).unwrap();
    assert_eq!(
        right.1, 429,
        "the correct password inside the burst must not sign in"
    );
    for (_, s, retry) in &statuses {
        if *s == 429 {
            assert!(retry, "429 without Retry-After");
        }
    }
    // The log agrees: no more than five failures were evaluated.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let failed = srv.log().matches("\"login.failed\"").count() - before;
    assert!(failed <= 5, "{failed} failures checked");

    // Two concurrent correct sign-ins of an account under no attack: both succeed.
    srv.cli(
        &[
            "users",
            "create",
            "--email",
            "bob@example.com",
            "--password-stdin",
        ],
        Some(PASSWORD),
    );
    let a = fresh_form(&srv, &http, &seed.web_id).await;
    let b = fresh_form(&srv, &http, &seed.web_id).await;
    let (ra, rb) = tokio::join!(
        post_login(&srv, &http, &a.0, &a.1, "bob@example.com", PASSWORD, &[]),
        post_login(&srv, &http, &b.0, &b.1, "bob@example.com", PASSWORD, &[]),
    );
    assert_eq!((ra.0, rb.0), (303, 303));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a12_forwarding_headers_are_ignored_unless_the_peer_is_a_trusted_proxy() {
    // No trusted proxy: every spoofing header is ignored; the 6th failure from this socket's
    // address is refused, whatever the headers say, for six different accounts.
    let srv = TestServer::start();
    let seed = srv.seed();
    let http = srv.http();
    for i in 0..20 {
        let spoof = format!("203.0.113.{i}");
        let forwarded = format!("for={spoof}");
        let (s, h, _) = attempt(
            &srv,
            &http,
            &seed.web_id,
            &format!("user{i}@example.com"),
            "a wrong password, long enough",
            &[
                ("x-forwarded-for", &spoof),
                ("x-real-ip", &spoof),
                ("forwarded", &forwarded),
                ("true-client-ip", &spoof),
            ],
        )
        .await;
        if i < 5 {
            assert_eq!(s, 401, "attempt {i}");
        } else {
            assert_eq!(s, 429, "attempt {i}: a spoofed header opened a new bucket");
            assert!(h.contains_key("retry-after"));
        }
    }

    // Behind a trusted proxy (127.0.0.1): the right-most untrusted hop is the client; the
    // spoofed left entries change nothing.
    let srv = TestServer::start_with(&[("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.1")]);
    let seed = srv.seed();
    let http = srv.http();
    for i in 0..8 {
        let xff = format!("10.9.8.{i}, 198.51.100.7");
        let (s, ..) = attempt(
            &srv,
            &http,
            &seed.web_id,
            &format!("user{i}@example.com"),
            "a wrong password, long enough",
            &[("x-forwarded-for", &xff)],
        )
        .await;
        assert_eq!(s, if i < 5 { 401 } else { 429 }, "attempt {i}");
    }
    // Another real client behind the same proxy is not affected.
    let (s, ..) = attempt(
        &srv,
        &http,
        &seed.web_id,
        "someone@example.com",
        "a wrong password, long enough",
        &[("x-forwarded-for", "198.51.100.8")],
    )
    .await;
    assert_eq!(s, 401);
    // The log records the derived address, never the raw header text.
    assert!(srv.log().contains("198.51.100.7"));
    assert!(!srv.log().contains("10.9.8."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a13_ipv6_clients_share_their_64_and_spellings_share_a_bucket() {
    let srv = TestServer::start_with(&[("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.1")]);
    let seed = srv.seed();
    let http = srv.http();
    let mut n = 0;
    let mut fail_from = |addr: String| {
        n += 1;
        let email = format!("user{n}@example.com");
        let srv = &srv;
        let http = &http;
        let seed = &seed;
        async move {
            attempt(
                srv,
                http,
                &seed.web_id,
                &email,
                "a wrong password, long enough",
                &[("x-forwarded-for", &addr)],
            )
            .await
            .0
        }
    };
    // Rotating through one /64.
    for i in 1..=5 {
        assert_eq!(fail_from(format!("2001:db8:1:2::{i:x}")).await, 401);
    }
    assert_eq!(
        fail_from("2001:db8:1:2:ffff::1".into()).await,
        429,
        "same /64"
    );
    assert_eq!(
        fail_from("2001:db8:1:3::1".into()).await,
        401,
        "another /64"
    );
    // Textual variants of one address.
    for _ in 0..4 {
        assert_eq!(fail_from("2001:db8::1".into()).await, 401);
    }
    assert_eq!(fail_from("2001:0db8:0:0:0:0:0:1".into()).await, 401);
    assert_eq!(fail_from("[2001:db8:0::1]:4433".into()).await, 429);
    // IPv4-mapped IPv6 is the IPv4 address.
    for _ in 0..5 {
        assert_eq!(fail_from("203.0.113.5".into()).await, 401);
    }
    assert_eq!(fail_from("::ffff:203.0.113.5".into()).await, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a17_throttled_answers_carry_the_full_header_set() {
    let admin_port = free_port();
    let srv = TestServer::start_with(&[(
        "PORTCULLIS_ADMIN_LISTEN",
        &format!("127.0.0.1:{admin_port}"),
    )]);
    let seed = srv.seed();
    let http = srv.http();
    for _ in 0..5 {
        attempt(
            &srv,
            &http,
            &seed.web_id,
            "alice@example.com",
            "wrong but long enough",
            &[],
        )
        .await;
    }
    let (jar, csrf) = fresh_form(&srv, &http, &seed.web_id).await;
    let res = post_login_form(
        &srv,
        &http,
        &jar.header(),
        &csrf,
        "alice@example.com",
        PASSWORD,
        &[],
    )
    .await;
    assert_eq!(
        res.status(),
        429,
        "the right password is refused while throttled"
    );
    let retry: i64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    let html = check_html_page("throttled login", res, Some("https://app.example.com")).await;
    assert!(html.contains("Too many login attempts"));
    // The same five failures filled the address's limit too: another account from it is
    // refused as well.
    let (s, ..) = attempt(
        &srv,
        &http,
        &seed.web_id,
        "bob@example.com",
        "x wrong but long",
        &[],
    )
    .await;
    assert_eq!(s, 429, "the address is throttled too");
    // However many refusals, and whatever accounts are typed, the log gets one line per
    // address (network) and minute: bob's refusal is counted, not written.
    for _ in 0..5 {
        attempt(
            &srv,
            &http,
            &seed.web_id,
            "alice@example.com",
            PASSWORD,
            &[],
        )
        .await;
    }
    let log = srv.log();
    let lines = log
        .lines()
        .filter(|l| l.contains("\"login.throttled\"") && l.contains("127.0.0.1"))
        .count();
    assert_eq!(lines, 1, "one for the address: {lines}");
    // Every refusal is counted all the same: seven 429s, one written, six held back.
    let token = srv.cli_json(&["admin", "rotate-token"], None)["admin_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let metrics = http
        .get(format!("https://localhost:{admin_port}/metrics"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |prefix: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("{prefix} in {metrics}"))
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(
        count("portcullis_events_total{event=\"login.throttled\",outcome=\"failure\"} "),
        7
    );
    assert!(
        count("portcullis_audit_events_suppressed_total ") >= 6,
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_hashing_queue_answers_503_at_once_and_other_endpoints_keep_answering() {
    let srv = TestServer::start_with(&[
        ("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.1"),
        ("PORTCULLIS_HASHING_CONCURRENCY", "1"),
        ("PORTCULLIS_HASHING_QUEUE", "1"),
        // One failure throttles an address: a 503 that counted would be visible below.
        ("PORTCULLIS_LOGIN_MAX_FAILURES", "1"),
    ]);
    let seed = srv.seed();
    let http = srv.http();
    let mut forms = Vec::new();
    for _ in 0..12 {
        forms.push(fresh_form(&srv, &http, &seed.web_id).await);
    }
    let tasks: Vec<_> = forms
        .into_iter()
        .enumerate()
        .map(|(i, (jar, csrf))| {
            let http = http.clone();
            let url = srv.url("/login");
            let origin = srv.issuer.clone();
            tokio::spawn(async move {
                let res = http
                    .post(url)
                    .header("cookie", jar.header())
                    .header("origin", origin)
                    .header("x-forwarded-for", format!("198.51.100.{}", i + 1))
                    .form(&[
                        ("csrf_token", csrf.as_str()),
                        ("email", format!("user{i}@example.com").as_str()),
                        ("password", "a wrong password, long enough"),
                    ])
                    .send()
                    .await
                    .unwrap();
                let retry = res
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_owned());
                (i, res.status().as_u16(), retry)
            })
        })
        .collect();
    // While the sign-ins queue, discovery answers.
    let res = http
        .get(srv.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut overloaded = Vec::new();
    for t in tasks {
        let (i, status, retry) = t.await.unwrap();
        assert!(status == 401 || status == 503, "{status}");
        if status == 503 {
            overloaded.push(i);
            assert_eq!(retry.as_deref(), Some("1"));
        }
    }
    assert!(
        !overloaded.is_empty(),
        "no sign-in was turned away by the full queue"
    );
    // The refused attempts were not counted as failures: with a limit of one failure per
    // address, the user still signs in from the address of a refused attempt.
    let from = format!("198.51.100.{}", overloaded[0] + 1);
    let (s, ..) = attempt(
        &srv,
        &http,
        &seed.web_id,
        "alice@example.com",
        PASSWORD,
        &[("x-forwarded-for", &from)],
    )
    .await;
    assert_eq!(s, 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_client_authentication_is_limited_per_address() {
    let srv = TestServer::start_with(&[
        ("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.1"),
        ("PORTCULLIS_CLIENT_AUTH_MAX_FAILURES", "3"),
    ]);
    let seed = srv.seed();
    let http = srv.http();
    let send = |secret: &str, from: &str| {
        http.post(srv.url("/token"))
            .basic_auth(&seed.machine_id, Some(secret))
            .header("x-forwarded-for", from)
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    for i in 0..3 {
        let res = send("wrong", "198.51.100.1").await.unwrap();
        assert_eq!(res.status(), 401, "failure {i}");
        assert_eq!(
            res.headers()["ratelimit-policy"],
            "\"client-auth\";q=3;w=300"
        );
        assert!(res.headers()["ratelimit"]
            .to_str()
            .unwrap()
            .starts_with(&format!("\"client-auth\";r={};", 2 - i)));
    }
    // The address is now refused, even with the right secret, with the full header set.
    let res = send(&seed.machine_secret, "198.51.100.1").await.unwrap();
    assert_eq!(res.status(), 429);
    let retry: i64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry));
    assert!(res.headers()["ratelimit"]
        .to_str()
        .unwrap()
        .contains(";r=0;"));
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(
        res.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    // A parallel burst of bad credentials from a fresh address gets no more than the limit
    // through (each request takes its slot before it is authenticated).
    let burst: Vec<_> = (0..12)
        .map(|_| {
            let req = http
                .post(srv.url("/token"))
                .basic_auth(&seed.machine_id, Some("wrong"))
                .header("x-forwarded-for", "198.51.100.77")
                .form(&[("grant_type", "client_credentials")]);
            tokio::spawn(async move { req.send().await.unwrap().status().as_u16() })
        })
        .collect();
    let mut failed = 0;
    for t in burst {
        match t.await.unwrap() {
            401 => failed += 1,
            429 => {}
            other => panic!("{other}"),
        }
    }
    assert!(failed <= 3, "{failed} bad authentications were checked");
    // Another address, and authenticated clients at any rate, are unaffected.
    let res = send(&seed.machine_secret, "198.51.100.2").await.unwrap();
    assert_eq!(res.status(), 200);
    for _ in 0..10 {
        let res = send(&seed.machine_secret, "198.51.100.3").await.unwrap();
        assert_eq!(res.status(), 200);
    }
}

/// A sign-in attempt from `from`, with an optional device cookie; returns the status and the
/// device cookie the answer set, if any.
async fn attempt_with_device(
    srv: &TestServer,
    http: &reqwest::Client,
    client: &str,
    email: &str,
    password: &str,
    from: &str,
    device: Option<&str>,
) -> (u16, Option<String>) {
    let (jar, csrf) = fresh_form(srv, http, client).await;
    let mut cookie = jar.header();
    if let Some(d) = device {
        cookie.push_str(&format!("; __Host-portcullis-device={d}"));
    }
    let res = post_login_form(
        srv,
        http,
        &cookie,
        &csrf,
        email,
        password,
        &[("x-forwarded-for", from)],
    )
    .await;
    let set = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|l| l.starts_with("__Host-portcullis-device="));
    if let Some(line) = &set {
        for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(line.contains(attr), "{line}");
        }
    }
    let value =
        set.map(|l| l.split(';').next().unwrap()["__Host-portcullis-device=".len()..].to_owned());
    (res.status().as_u16(), value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recognised_device_may_sign_in_while_its_account_is_throttled() {
    let srv = TestServer::start_with(&[("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.1")]);
    let seed = srv.seed();
    let http = srv.http();
    let web = seed.web_id.as_str();
    const ALICE: &str = "alice@example.com";
    const WRONG: &str = "a wrong password, long enough";
    // The owner signs in once: the browser becomes a recognised device.
    let (s, device) =
        attempt_with_device(&srv, &http, web, ALICE, PASSWORD, "198.51.100.50", None).await;
    assert_eq!(s, 303);
    let device = device.expect("a device cookie at sign-in");
    // An attacker throttles the account from five addresses.
    let attack = |n: u8| format!("203.0.113.{n}");
    for n in 1..=5 {
        let (s, _) = attempt_with_device(&srv, &http, web, ALICE, WRONG, &attack(n), None).await;
        assert_eq!(s, 401);
    }
    // Without the cookie, the right password is refused, even from the address of the past
    // success: an address never grants a bypass.
    for from in ["198.51.100.51", "198.51.100.50"] {
        let (s, _) = attempt_with_device(&srv, &http, web, ALICE, PASSWORD, from, None).await;
        assert_eq!(s, 429, "{from}");
    }
    // A forged or foreign device cookie does not help either.
    let (s, _) = attempt_with_device(
        &srv,
        &http,
        web,
        ALICE,
        PASSWORD,
        "198.51.100.52",
        Some("Zm9yZ2Vk"),
    )
    .await;
    assert_eq!(s, 429);
    // With it, the owner signs in.
    let (s, renewed) = attempt_with_device(
        &srv,
        &http,
        web,
        ALICE,
        PASSWORD,
        "198.51.100.53",
        Some(&device),
    )
    .await;
    assert_eq!(s, 303);
    let device = renewed.expect("renewed at sign-in");

    // The device has a small limit of its own while the account is throttled again.
    throttle_account(&srv, &http, web, ALICE, 6).await;
    for i in 0..3 {
        let from = format!("198.51.100.{}", 60 + i);
        let (s, _) =
            attempt_with_device(&srv, &http, web, ALICE, WRONG, &from, Some(&device)).await;
        assert_eq!(s, 401, "device failure {i}");
    }
    let (s, _) = attempt_with_device(
        &srv,
        &http,
        web,
        ALICE,
        PASSWORD,
        "198.51.100.70",
        Some(&device),
    )
    .await;
    assert_eq!(s, 429, "past the device's own limit");

    // The cookie is bound to its account: it opens nothing for another throttled account.
    srv.cli(
        &[
            "users",
            "create",
            "--email",
            "bob@example.com",
            "--password-stdin",
        ],
        Some(PASSWORD),
    );
    throttle_account(&srv, &http, web, "bob@example.com", 11).await;
    let (s, _) = attempt_with_device(
        &srv,
        &http,
        web,
        "bob@example.com",
        PASSWORD,
        "198.51.100.80",
        Some(&device),
    )
    .await;
    assert_eq!(s, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_stuffing_from_one_address_refuses_it_and_signals() {
    let srv = TestServer::start_with(&[
        ("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.1"),
        ("PORTCULLIS_LOGIN_MAX_FAILURES", "50"),
        ("PORTCULLIS_STUFFING_ACCOUNTS", "3"),
    ]);
    let seed = srv.seed();
    let http = srv.http();
    let from = [("x-forwarded-for", "198.51.100.9")];
    // One account many times is not stuffing.
    for _ in 0..4 {
        let (s, ..) = attempt(
            &srv,
            &http,
            &seed.web_id,
            "carol@example.com",
            "wrong but long enough",
            &from,
        )
        .await;
        assert_eq!(s, 401);
    }
    assert!(!srv.log().contains("login.credential_stuffing"));
    // Two more accounts make three distinct ones: the address is flagged.
    for email in ["dan@example.com", "erin@example.com"] {
        let (s, ..) = attempt(
            &srv,
            &http,
            &seed.web_id,
            email,
            "wrong but long enough",
            &from,
        )
        .await;
        assert_eq!(s, 401);
    }
    let (s, h, b) = attempt(
        &srv,
        &http,
        &seed.web_id,
        "alice@example.com",
        PASSWORD,
        &from,
    )
    .await;
    assert_eq!(s, 429, "even a correct password from a stuffing address");
    assert!(b.contains("Too many login attempts"));
    assert!(h.contains_key("retry-after"));
    let log = srv.log();
    let line = log
        .lines()
        .find(|l| l.contains("login.credential_stuffing"))
        .expect("the stuffing signal in the log");
    assert!(
        line.contains("198.51.100.9") && line.contains("accounts=3"),
        "{line}"
    );
    // Elsewhere, the owner signs in.
    let (s, ..) = attempt(
        &srv,
        &http,
        &seed.web_id,
        "alice@example.com",
        PASSWORD,
        &[("x-forwarded-for", "198.51.100.10")],
    )
    .await;
    assert_eq!(s, 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticated_clients_have_a_per_client_quota() {
    let srv = TestServer::start_with(&[("PORTCULLIS_CLIENT_QUOTA", "2")]);
    let seed = srv.seed();
    let http = srv.http();
    let other = srv.cli_json(
        &[
            "clients",
            "create",
            "--name",
            "Other machine",
            "--grant",
            "client_credentials",
            "--api",
            API,
            "--scope",
            "read:things",
        ],
        None,
    );
    let send = |id: String, secret: String| {
        http.post(srv.url("/token"))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..6 {
        let res = send(seed.machine_id.clone(), seed.machine_secret.clone())
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
        if res.status() == 429 {
            limited = Some(res);
        }
    }
    assert_eq!(&statuses[..2], [200, 200], "{statuses:?}");
    let res = limited.expect("over a quota of 2 per second, a 429");
    assert_eq!(res.headers()["retry-after"], "1");
    assert_eq!(res.headers()["ratelimit-policy"], "\"client\";q=2;w=1");
    assert!(res.headers()["ratelimit"]
        .to_str()
        .unwrap()
        .starts_with("\"client\";r=0;"));
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    // Another client has its own quota.
    let res = send(
        other["client_id"].as_str().unwrap().to_owned(),
        other["client_secret"].as_str().unwrap().to_owned(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ipv6_prefix_is_configurable() {
    let srv = TestServer::start_with(&[
        ("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.1"),
        ("PORTCULLIS_IPV6_PREFIX", "48"),
    ]);
    let seed = srv.seed();
    let http = srv.http();
    // Five different /64s of one /48: one bucket.
    for i in 1..=5 {
        let from = format!("2001:db8:7:{i:x}::1");
        let (s, ..) = attempt(
            &srv,
            &http,
            &seed.web_id,
            &format!("user{i}@example.com"),
            "a wrong password, long enough",
            &[("x-forwarded-for", &from)],
        )
        .await;
        assert_eq!(s, 401);
    }
    let (s, ..) = attempt(
        &srv,
        &http,
        &seed.web_id,
        "alice@example.com",
        PASSWORD,
        &[("x-forwarded-for", "2001:db8:7:ffff::9")],
    )
    .await;
    assert_eq!(s, 429, "the same /48");
    let (s, ..) = attempt(
        &srv,
        &http,
        &seed.web_id,
        "alice@example.com",
        PASSWORD,
        &[("x-forwarded-for", "2001:db8:8::9")],
    )
    .await;
    assert_eq!(s, 303, "another /48");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recognised_device_is_not_locked_out_by_its_address() {
    // The owner and an attacker share one address (a NAT): the attacker fills the address's
    // limit and the stuffing block; the owner's device still signs in.
    let srv = TestServer::start_with(&[
        ("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.1"),
        ("PORTCULLIS_STUFFING_ACCOUNTS", "3"),
    ]);
    let seed = srv.seed();
    let http = srv.http();
    let web = seed.web_id.as_str();
    let nat = "198.51.100.99";
    let (s, device) =
        attempt_with_device(&srv, &http, web, "alice@example.com", PASSWORD, nat, None).await;
    assert_eq!(s, 303);
    let device = device.unwrap();
    for i in 0..5 {
        let (s, _) = attempt_with_device(
            &srv,
            &http,
            web,
            &format!("victim{i}@example.com"),
            "a wrong password, long enough",
            nat,
            None,
        )
        .await;
        assert!(s == 401 || s == 429);
    }
    let (s, _) =
        attempt_with_device(&srv, &http, web, "alice@example.com", PASSWORD, nat, None).await;
    assert_eq!(s, 429, "without the cookie, the address is refused");
    let (s, _) = attempt_with_device(
        &srv,
        &http,
        web,
        "alice@example.com",
        PASSWORD,
        nat,
        Some(&device),
    )
    .await;
    assert_eq!(s, 303, "with it, the owner signs in");
}

/// Fails `email` five times from five attack addresses (`203.0.113.<first..first+4>`), which
/// throttles the account.
async fn throttle_account(
    srv: &TestServer,
    http: &reqwest::Client,
    client: &str,
    email: &str,
    first: u8,
) {
    for n in first..first + 5 {
        attempt_with_device(
            srv,
            http,
            client,
            email,
            "a wrong password, long enough",
            &format!("203.0.113.{n}"),
            None,
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_or_revoke_devices_ends_device_cookies() {
    let new_password = "amber quartz meadow signal";
    let revocations: [(&str, &[&str], Option<&str>, &str); 2] = [
        (
            "password change",
            &[
                "users",
                "set-password",
                "alice@example.com",
                "--password-stdin",
            ],
            Some(new_password),
            new_password,
        ),
        (
            "revoke-devices",
            &["users", "revoke-devices", "alice@example.com"],
            None,
            PASSWORD,
        ),
    ];
    for (what, args, stdin, password_after) in revocations {
        let srv = TestServer::start_with(&[("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.1")]);
        let seed = srv.seed();
        let http = srv.http();
        let web = seed.web_id.as_str();
        let (_, device) = attempt_with_device(
            &srv,
            &http,
            web,
            "alice@example.com",
            PASSWORD,
            "198.51.100.1",
            None,
        )
        .await;
        let device = device.unwrap();
        srv.cli(args, stdin);
        throttle_account(&srv, &http, web, "alice@example.com", 1).await;
        let (s, _) = attempt_with_device(
            &srv,
            &http,
            web,
            "alice@example.com",
            password_after,
            "198.51.100.2",
            Some(&device),
        )
        .await;
        assert_eq!(s, 429, "{what}: a revoked device cookie opens nothing");
    }
}
