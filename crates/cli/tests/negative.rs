//! Negative tests against the real server: every rule of the main job refuses what it must,
//! with the right status and RFC error code, and nothing leaks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::Value;

async fn token(
    srv: &TestServer,
    http: &reqwest::Client,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut req = http.post(srv.url("/token")).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    (status, body, headers)
}

fn code_form<'a>(code: &'a str, redirect: &'a str, verifier: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect),
        ("code_verifier", verifier),
    ]
}

/// Polls until `f` returns `expected`, failing after 1 second (the promise for CLI changes).
async fn within_one_second<F, Fut>(expected: u16, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    let start = std::time::Instant::now();
    loop {
        let got = f().await;
        if got == expected {
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(1),
            "still {got} after 1 s, expected {expected}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_codes_are_single_use_and_bound() {
    let srv = TestServer::start();
    let seed = srv.seed();
    let http = srv.http();
    let web = (seed.web_id.as_str(), seed.web_secret.as_str());

    // Wrong redirect URI, foreign client, missing and wrong verifier: each fails, and none
    // consumes the code, so a stranger holding a leaked code cannot burn it.
    let (v, c) = pkce();
    let code = get_code(&srv, &http, &seed.web_id, CB, &c).await;
    let (s, b, h) = token(
        &srv,
        &http,
        Some(web),
        &code_form(&code, "http://127.0.0.1/cb", &v),
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(h["cache-control"], "no-store");

    let (v, c) = pkce();
    let code = get_code(&srv, &http, &seed.web_id, CB, &c).await;
    let (s, b, _) = token(
        &srv,
        &http,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
            ("code_verifier", &v),
            ("client_id", &seed.public_id),
        ],
    )
    .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_grant")),
        "foreign client"
    );
    for bad in [
        code_form(&code, "http://127.0.0.1/cb", &v),
        code_form(&code, CB, &c),
        vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", CB),
        ],
    ] {
        let (s, _, _) = token(&srv, &http, Some(web), &bad).await;
        assert_eq!(s, 400);
    }
    // After all that, the real client with the real verifier still redeems it, once.
    let (s, b, _) = token(&srv, &http, Some(web), &code_form(&code, CB, &v)).await;
    assert_eq!(s, 200, "the failed attempts left the code intact: {b}");
    let (s, _, _) = token(&srv, &http, Some(web), &code_form(&code, CB, &v)).await;
    assert_eq!(s, 400, "and it is single use");

    let (_v, c) = pkce();
    let code = get_code(&srv, &http, &seed.web_id, CB, &c).await;
    let (s, b, _) = token(
        &srv,
        &http,
        Some(web),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
        ],
    )
    .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_grant")),
        "missing verifier"
    );

    let (_v, c) = pkce();
    let (v2, _) = pkce();
    let code = get_code(&srv, &http, &seed.web_id, CB, &c).await;
    let (s, b, _) = token(&srv, &http, Some(web), &code_form(&code, CB, &v2)).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_grant")),
        "wrong verifier"
    );
    // The challenge itself is not a valid verifier ("plain" never works).
    let (_v, c) = pkce();
    let code = get_code(&srv, &http, &seed.web_id, CB, &c).await;
    let (s, _, _) = token(&srv, &http, Some(web), &code_form(&code, CB, &c)).await;
    assert_eq!(s, 400, "challenge as verifier");

    // Reuse: the first redemption works, the replay fails and revokes what the first issued.
    let (v, c) = pkce();
    let code = get_code(&srv, &http, &seed.web_id, CB, &c).await;
    let (s, first, _) = token(&srv, &http, Some(web), &code_form(&code, CB, &v)).await;
    assert_eq!(s, 200, "{first}");
    let (s, b, _) = token(&srv, &http, Some(web), &code_form(&code, CB, &v)).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_grant")),
        "replayed code"
    );
    let rt = first["refresh_token"].as_str().unwrap();
    let (s, b, _) = token(
        &srv,
        &http,
        Some(web),
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
    .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_grant")),
        "replay revoked the first use's refresh token"
    );

    // A public client's spent code, presented by a stranger who knows only the (public)
    // client id: no verifier, so nothing is revoked; the app's refresh token still works.
    let (v, c) = pkce();
    let code = get_code(&srv, &http, &seed.public_id, CB, &c).await;
    let public_form = |verifier: Option<&str>| {
        let mut f = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.clone()),
            ("redirect_uri", CB.to_owned()),
            ("client_id", seed.public_id.clone()),
        ];
        if let Some(v) = verifier {
            f.push(("code_verifier", v.to_owned()));
        }
        f
    };
    let send = |f: Vec<(&'static str, String)>| {
        let http = http.clone();
        let url = srv.url("/token");
        async move {
            let res = http.post(url).form(&f).send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        }
    };
    let (s, first) = send(public_form(Some(&v))).await;
    assert_eq!(s, 200, "{first}");
    let rt = first["refresh_token"].as_str().unwrap().to_owned();
    let (s, _) = send(public_form(None)).await;
    assert_eq!(s, 400, "a replay without the verifier is refused");
    let refresh = |rt: String| {
        vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", rt),
            ("client_id", seed.public_id.clone()),
        ]
    };
    let (s, next) = send(refresh(rt)).await;
    assert_eq!(s, 200, "the stranger revoked nothing: {next}");
    // The app itself replaying its code (with the verifier) is treated as theft.
    let (s, _) = send(public_form(Some(&v))).await;
    assert_eq!(s, 400);
    let (s, _) = send(refresh(next["refresh_token"].as_str().unwrap().to_owned())).await;
    assert_eq!(s, 400, "a real replay revokes the family");

    // A code that is not ours, or garbage.
    for bogus in ["pca_AAAA", "x", &"a".repeat(300)] {
        let (s, _, _) = token(&srv, &http, Some(web), &code_form(bogus, CB, &v)).await;
        assert_eq!(s, 400);
    }
    assert!(!srv.log().contains(PASSWORD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_authentication_rules() {
    // Many failed authentications come from one address here; their limit has its own test.
    let srv = TestServer::start_with(&[("PORTCULLIS_CLIENT_AUTH_MAX_FAILURES", "1000")]);
    let seed = srv.seed();
    let http = srv.http();
    let cc = [("grant_type", "client_credentials")];
    // Right secret: 200, via Basic and via POST.
    let (s, _, _) = token(
        &srv,
        &http,
        Some((&seed.machine_id, &seed.machine_secret)),
        &cc,
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, _) = token(
        &srv,
        &http,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &seed.machine_id),
            ("client_secret", &seed.machine_secret),
        ],
    )
    .await;
    assert_eq!(s, 200);
    // Bad secret, secret with a broken checksum, missing secret, unknown client.
    let mut tampered = seed.machine_secret.clone();
    tampered.replace_range(10..11, if &tampered[10..11] == "A" { "B" } else { "A" });
    for (id, secret) in [
        (seed.machine_id.as_str(), "pcs_wrong"),
        (seed.machine_id.as_str(), tampered.as_str()),
        ("cl_doesnotexist", seed.machine_secret.as_str()),
    ] {
        let (s, b, h) = token(&srv, &http, Some((id, secret)), &cc).await;
        assert_eq!((s, b["error"].as_str()), (401, Some("invalid_client")));
        assert!(h.contains_key("www-authenticate"));
    }
    let (s, b, _) = token(
        &srv,
        &http,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &seed.machine_id),
        ],
    )
    .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (401, Some("invalid_client")),
        "missing secret"
    );
    // Two methods in one request.
    let (s, b, _) = token(
        &srv,
        &http,
        Some((&seed.machine_id, &seed.machine_secret)),
        &[
            ("grant_type", "client_credentials"),
            ("client_secret", &seed.machine_secret),
        ],
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_request")));
    // A public client cannot use client credentials, nor present a secret.
    let (s, b, _) = token(
        &srv,
        &http,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &seed.public_id),
        ],
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (400, Some("unauthorized_client")));
    // Disallowed grant, API and scope.
    let (s, b, _) = token(&srv, &http, Some((&seed.web_id, &seed.web_secret)), &cc).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("unauthorized_client")),
        "web client lacks client_credentials"
    );
    let (s, b, _) = token(
        &srv,
        &http,
        Some((&seed.machine_id, &seed.machine_secret)),
        &[
            ("grant_type", "client_credentials"),
            ("resource", "https://other.example.com"),
        ],
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_target")));
    let (s, b, _) = token(
        &srv,
        &http,
        Some((&seed.machine_id, &seed.machine_secret)),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "write:things"),
        ],
    )
    .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_scope")),
        "scope the API has but the client may not use"
    );
    let (s, b, _) = token(
        &srv,
        &http,
        Some((&seed.machine_id, &seed.machine_secret)),
        &[("grant_type", "password")],
    )
    .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    // Malformed bodies: duplicates, wrong content type, oversized.
    let res = http
        .post(srv.url("/token"))
        .basic_auth(&seed.machine_id, Some(&seed.machine_secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("grant_type"));
    let res = http
        .post(srv.url("/token"))
        .basic_auth(&seed.machine_id, Some(&seed.machine_secret))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let oversized = |path: &str| {
        http.post(srv.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(vec![b'a'; 70_000])
            .send()
    };
    // In the endpoint's own error format, not the framework's text.
    for path in ["/token", "/revoke", "/introspect"] {
        let res = oversized(path).await.unwrap();
        assert_eq!(res.status(), 413, "{path}");
        assert_eq!(res.headers()["content-type"], "application/json");
        assert_eq!(res.headers()["cache-control"], "no-store");
        assert!(res.headers().contains_key("strict-transport-security"));
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{path}: {body}");
        assert!(body["error_description"]
            .as_str()
            .unwrap()
            .contains("64 KiB"));
    }
    let res = oversized("/login").await.unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(
        res.text().await.unwrap(),
        "Request body too large (at most 64 KiB)\n"
    );
    // Rotation keeps the previous secret valid, and the CLI's changes reach the running
    // server within 1 second.
    let rotated = srv.cli_json(&["clients", "rotate-secret", &seed.machine_id], None);
    let new_secret = rotated["client_secret"].as_str().unwrap().to_owned();
    let machine_id = seed.machine_id.clone();
    let status_with = |secret: String| {
        let (srv, http, id) = (&srv, &http, machine_id.clone());
        async move {
            token(
                srv,
                http,
                Some((&id, &secret)),
                &[("grant_type", "client_credentials")],
            )
            .await
            .0
        }
    };
    within_one_second(200, || status_with(new_secret.clone())).await;
    assert_eq!(
        status_with(seed.machine_secret.clone()).await,
        200,
        "previous secret still valid"
    );
    srv.cli(&["clients", "disable", &seed.machine_id], None);
    within_one_second(401, || status_with(new_secret.clone())).await;
    srv.cli(&["clients", "enable", &seed.machine_id], None);
    within_one_second(200, || status_with(new_secret.clone())).await;
    let log = srv.log();
    assert!(
        !log.contains(&seed.machine_secret) && !log.contains(&new_secret),
        "secret in log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorize_refuses_bad_requests_without_redirecting() {
    let srv = TestServer::start();
    let seed = srv.seed();
    let http = srv.http();
    let (_v, c) = pkce();
    // Unregistered or altered redirect URIs, unknown client: our error page, never a redirect.
    for redirect in [
        "https://evil.example/cb",
        "https://app.example.com/cb/",
        "https://app.example.com/CB",
        "https://app.example.com/cb?x=1",
        "https://app.example.com/cb#x",
        "https://app.example.com.evil.example/cb",
        "https://app.example.com@evil.example/cb",
    ] {
        let res = http
            .get(authorize_url(&srv, &seed.web_id, redirect, &c, &[]))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{redirect}");
        assert!(res.headers().get("location").is_none());
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
    }
    let res = http
        .get(authorize_url(&srv, "cl_unknown", CB, &c, &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    // A08: no challenge, `plain`, method omitted: error redirect with invalid_request, state and iss.
    for (drop, extra) in [
        ("code_challenge", vec![]),
        ("", vec![("code_challenge_method", "plain")]),
        ("code_challenge_method", vec![]),
    ] {
        let mut u = url::Url::parse(&authorize_url(&srv, &seed.public_id, CB, &c, &[])).unwrap();
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .filter(|(k, _)| k != drop && (extra.is_empty() || k != "code_challenge_method"))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        u.query_pairs_mut()
            .clear()
            .extend_pairs(pairs)
            .extend_pairs(extra.clone());
        let res = http.get(u.as_str()).send().await.unwrap();
        assert_eq!(res.status(), 302, "{drop} {extra:?}");
        let q = query_of(res.headers()["location"].to_str().unwrap());
        assert_eq!(q["error"], "invalid_request");
        assert_eq!(q["state"], "s1");
        assert_eq!(q["iss"], srv.issuer);
    }
    // Duplicated parameters: refused (before the client is proven, so no redirect).
    let dup = format!(
        "{}&state=s2",
        authorize_url(&srv, &seed.web_id, CB, &c, &[])
    );
    assert_eq!(http.get(dup).send().await.unwrap().status(), 400);
    // Unsupported response type, request objects, unknown scope: error redirects.
    for (k, v, err) in [
        ("response_type", "token", "unsupported_response_type"),
        (
            "request",
            "eyJhbGciOiJub25lIn0.e30.",
            "request_not_supported",
        ),
        ("scope", "openid admin", "invalid_scope"),
    ] {
        let mut u = url::Url::parse(&authorize_url(&srv, &seed.web_id, CB, &c, &[])).unwrap();
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .filter(|(x, _)| x != k)
            .map(|(a, b)| (a.into_owned(), b.into_owned()))
            .collect();
        u.query_pairs_mut()
            .clear()
            .extend_pairs(pairs)
            .append_pair(k, v);
        let res = http.get(u.as_str()).send().await.unwrap();
        assert_eq!(res.status(), 302);
        assert_eq!(
            query_of(res.headers()["location"].to_str().unwrap())["error"],
            err
        );
    }
    // Unknown parameters are ignored and never echoed.
    let res = http
        .get(authorize_url(
            &srv,
            &seed.web_id,
            CB,
            &c,
            &[("xyz<script>", "<script>")],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(!res.text().await.unwrap().contains("<script>"));
    // prompt=none without a session: login_required.
    let res = http
        .get(authorize_url(
            &srv,
            &seed.web_id,
            CB,
            &c,
            &[("prompt", "none")],
        ))
        .send()
        .await
        .unwrap();
    let mut jar = Jar::default();
    jar.absorb(&res);
    let res = http
        .get(srv.url("/authorize/resume"))
        .header("cookie", jar.header())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    assert_eq!(
        query_of(res.headers()["location"].to_str().unwrap())["error"],
        "login_required"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_look_identical_and_disabling_ends_everything() {
    // More failures than the default limit come from one address here; throttling has its own
    // tests (brute_force.rs).
    let srv = TestServer::start_with(&[("PORTCULLIS_LOGIN_MAX_FAILURES", "20")]);
    let seed = srv.seed();
    srv.cli(
        &[
            "users",
            "create",
            "--email",
            "dave@example.com",
            "--password-stdin",
        ],
        Some("another long passphrase here"),
    );
    srv.cli(&["users", "disable", "dave@example.com"], None);
    let http = srv.http();
    let (_v, c) = pkce();
    let url = authorize_url(&srv, &seed.web_id, CB, &c, &[]);
    let mut shapes = Vec::new();
    for (email, pw) in [
        ("nobody@example.com", "wrong password long enough"),
        ("alice@example.com", "wrong password long enough"),
        ("dave@example.com", "another long passphrase here"),
        ("not an email", "x"),
        ("ALICE@EXAMPLE.COM", "wrong password long enough"),
    ] {
        let mut jar = Jar::default();
        let res = browser_login(&srv, &http, &mut jar, &url, email, pw).await;
        let status = res.status().as_u16();
        let mut names: Vec<String> = res
            .headers()
            .keys()
            .map(|k| k.to_string())
            .filter(|k| k != "date")
            .collect();
        names.sort();
        let body = res.text().await.unwrap();
        let masked = body.replace(&csrf_of(&body), "CSRF");
        assert!(body.contains("Invalid credentials"));
        shapes.push((status, names, masked));
    }
    for s in &shapes[1..] {
        assert_eq!(s, &shapes[0], "failed logins must be indistinguishable");
    }
    assert_eq!(shapes[0].0, 401);

    // Sign alice in, then disable her: userinfo and refresh stop working at once.
    let (v, c) = pkce();
    let code = get_code(&srv, &http, &seed.web_id, CB, &c).await;
    let (s, t, _) = token(
        &srv,
        &http,
        Some((&seed.web_id, &seed.web_secret)),
        &code_form(&code, CB, &v),
    )
    .await;
    assert_eq!(s, 200);
    let at = t["access_token"].as_str().unwrap();
    let ui = |tok: String| {
        let http = http.clone();
        let url = srv.url("/userinfo");
        async move {
            http.get(url)
                .bearer_auth(tok)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(ui(at.to_owned()).await, 200);
    // Two Authorization headers, valid first or second: a malformed request (RFC 6750 §3.1).
    for pair in [[at, "Bearer x"], ["Bearer x", at]] {
        let mut req = http.get(srv.url("/userinfo"));
        for v in pair {
            let v = if v.starts_with("Bearer ") {
                v.to_owned()
            } else {
                format!("Bearer {v}")
            };
            req = req.header("authorization", v);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 400);
        assert_eq!(
            res.headers()["www-authenticate"],
            "Bearer realm=\"portcullis\", error=\"invalid_request\""
        );
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request");
    }
    srv.cli(&["users", "disable", "alice@example.com"], None);
    assert_eq!(
        ui(at.to_owned()).await,
        401,
        "disabled user's access token refused by userinfo"
    );
    let (s, b, _) = token(
        &srv,
        &http,
        Some((&seed.web_id, &seed.web_secret)),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", t["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_grant")),
        "disabled user's refresh token refused"
    );
    // Client-credentials tokens (no user) are not for userinfo; garbage neither.
    let (_, cc, _) = token(
        &srv,
        &http,
        Some((&seed.machine_id, &seed.machine_secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(
        ui(cc["access_token"].as_str().unwrap().to_owned()).await,
        401
    );
    assert_eq!(ui("eyJhbGciOiJub25lIn0.e30.".to_owned()).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_headers_csrf_and_redirect_statuses() {
    let srv = TestServer::start();
    let seed = srv.seed();
    let http = srv.http();
    // Another host: 421, with HSTS.
    let res = http
        .get(srv.url("/.well-known/openid-configuration"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 421);
    assert_eq!(
        res.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    // HSTS on errors, 404 and 405 too; discovery issuer identical everywhere.
    for (m, p, status) in [
        ("GET", "/nope", 404),
        ("GET", "/token", 405),
        ("POST", "/token", 400),
        ("GET", "/", 200),
        ("GET", "/jwks", 200),
        ("HEAD", "/", 200),
    ] {
        let res = http
            .request(m.parse().unwrap(), srv.url(p))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), status, "{m} {p}");
        assert_eq!(
            res.headers()["strict-transport-security"],
            "max-age=31536000; includeSubDomains",
            "{m} {p}"
        );
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    }
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let meta: Value = get_json(&http, &srv.url(path)).await;
        assert_eq!(meta["issuer"], srv.issuer);
        assert_eq!(
            meta["code_challenge_methods_supported"],
            serde_json::json!(["S256"])
        );
        assert_eq!(meta["authorization_response_iss_parameter_supported"], true);
        // RS256 (OpenID Connect's required one) and ES256; never EdDSA, which signs access
        // tokens only.
        assert_eq!(
            meta["id_token_signing_alg_values_supported"],
            serde_json::json!(["RS256", "ES256"])
        );
        for k in [
            "authorization_endpoint",
            "token_endpoint",
            "userinfo_endpoint",
            "jwks_uri",
            "response_types_supported",
            "subject_types_supported",
        ] {
            assert!(!meta[k].is_null(), "{k}");
        }
    }
    // The login form refuses cross-site and token-less posts (403) and changes nothing.
    let (_v, c) = pkce();
    let mut jar = Jar::default();
    let res = http
        .get(authorize_url(&srv, &seed.web_id, CB, &c, &[]))
        .send()
        .await
        .unwrap();
    jar.absorb(&res);
    let html = http
        .get(srv.url("/authorize/resume"))
        .header("cookie", jar.header())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&html);
    for (origin, site, token) in [
        (Some("https://evil.example"), None, csrf.as_str()),
        (Some("null"), None, csrf.as_str()),
        (None, None, csrf.as_str()),
        (Some(srv.issuer.as_str()), Some("cross-site"), csrf.as_str()),
        (Some(srv.issuer.as_str()), None, "forged"),
    ] {
        let mut req = http
            .post(srv.url("/login"))
            .header("cookie", jar.header())
            .form(&[
                ("csrf_token", token),
                ("email", "alice@example.com"),
                ("password", PASSWORD),
            ]);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(s) = site {
            req = req.header("sec-fetch-site", s);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 403, "{origin:?} {site:?}");
        assert!(res.headers().get("set-cookie").is_none());
    }
    // The real form still works afterwards, answering 303 (never 307/308), and cookies are right.
    let spent_flow = jar.cookies["__Host-portcullis-flow"].clone();
    let res = http
        .post(srv.url("/login"))
        .header("cookie", jar.header())
        .header("origin", &srv.issuer)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("email", "alice@example.com"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    jar.absorb(&res);
    for line in &jar.set_cookie_lines {
        assert!(line.starts_with("__Host-"), "{line}");
        for attr in ["Path=/", "Secure", "HttpOnly", "SameSite="] {
            assert!(line.contains(attr), "{line} lacks {attr}");
        }
        assert!(!line.to_ascii_lowercase().contains("domain="));
    }
    assert!(jar
        .set_cookie_lines
        .iter()
        .any(|l| l.starts_with("__Host-portcullis-session=") && l.contains("SameSite=Strict")));
    assert!(jar
        .set_cookie_lines
        .iter()
        .any(|l| l.starts_with("__Host-portcullis-flow=") && l.contains("SameSite=Lax")));
    // The flow is single use: posting the same form again, with the very flow cookie that was
    // just used, finds nothing.
    let res = http
        .post(srv.url("/login"))
        .header(
            "cookie",
            format!(
                "__Host-portcullis-flow={spent_flow}; __Host-portcullis-session={}",
                jar.cookies["__Host-portcullis-session"]
            ),
        )
        .header("origin", &srv.issuer)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("email", "alice@example.com"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("set-cookie").is_none());
    // The double submission ended nothing: the session of the first one still signs in.
    let (_v, c) = pkce();
    let res = http
        .get(authorize_url(&srv, &seed.web_id, CB, &c, &[]))
        .send()
        .await
        .unwrap();
    jar.absorb(&res);
    let res = http
        .get(srv.url("/authorize/resume"))
        .header("cookie", jar.header())
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        302,
        "silent sign-on with the session of the first submission"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_credentials_and_scopes_never_break_anything() {
    let srv = TestServer::start();
    let seed = srv.seed();
    let http = srv.http();
    let cc = [("grant_type", "client_credentials")];
    // A multi-byte character where the secret's checksum starts, raw bytes, control characters,
    // a fake log line: 401 invalid_client with a Basic challenge, never 500.
    let mut tricky = String::from("pcs_");
    tricky.push_str(&"a".repeat(42));
    tricky.push('é');
    tricky.push_str("aaaaa");
    for secret in [
        tricky.as_str(),
        "pcs_\n{\"level\":\"ERROR\",\"fake\":1}",
        "\u{1b}[31mred",
        "é",
    ] {
        let (s, b, h) = token(&srv, &http, Some((&seed.machine_id, secret)), &cc).await;
        assert_eq!(
            (s, b["error"].as_str()),
            (401, Some("invalid_client")),
            "{secret:?}"
        );
        assert!(h.contains_key("www-authenticate"));
    }
    for raw in ["Basic !!!notbase64", "Basic ", "Basic Og=="] {
        let res = http
            .post(srv.url("/token"))
            .header("authorization", raw)
            .form(&cc)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{raw}");
        assert!(res.headers().contains_key("www-authenticate"), "{raw}");
    }
    assert!(
        !srv.log().contains("\"fake\":1"),
        "a forged log line got through"
    );

    // Asking a refresh for a wider scope is refused and leaves the token usable.
    let (v, c) = pkce();
    let code = get_code(&srv, &http, &seed.web_id, CB, &c).await;
    let web = (seed.web_id.as_str(), seed.web_secret.as_str());
    let (_, t, _) = token(&srv, &http, Some(web), &code_form(&code, CB, &v)).await;
    let rt = t["refresh_token"].as_str().unwrap().to_owned();
    let (s, b, _) = token(
        &srv,
        &http,
        Some(web),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("scope", "openid email read:things"),
        ],
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_scope")));
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (s, b, _) = token(
        &srv,
        &http,
        Some(web),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("scope", "openid"),
        ],
    )
    .await;
    assert_eq!(
        s, 200,
        "the refused request must not have rotated the token: {b}"
    );
    assert_eq!(b["scope"], "openid", "a narrower scope may be asked for");

    // A new password ends the user's sessions: the browser must sign in again.
    let mut jar = Jar::default();
    let (_v, c) = pkce();
    let res = browser_login(
        &srv,
        &http,
        &mut jar,
        &authorize_url(&srv, &seed.web_id, CB, &c, &[]),
        "alice@example.com",
        PASSWORD,
    )
    .await;
    assert_eq!(res.status(), 303);
    srv.cli(
        &[
            "users",
            "set-password",
            "alice@example.com",
            "--password-stdin",
        ],
        Some("a brand new long passphrase"),
    );
    let res = http
        .get(authorize_url(&srv, &seed.web_id, CB, &c, &[]))
        .header("cookie", jar.header())
        .send()
        .await
        .unwrap();
    jar.absorb(&res);
    let html = http
        .get(srv.url("/authorize/resume"))
        .header("cookie", jar.header())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("id=\"login\""),
        "the old session must be gone after a password change"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorize_accepts_post_and_printable_state() {
    let srv = TestServer::start();
    let seed = srv.seed();
    let http = srv.http();
    let (_v, c) = pkce();
    let url = authorize_url(&srv, &seed.web_id, CB, &c, &[]);
    let query = url.split_once('?').unwrap().1.to_owned();
    let res = http
        .post(srv.url("/authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(query.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .starts_with("__Host-portcullis-flow="));
    let res = http
        .post(srv.url("/authorize"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    // `state` may hold spaces (RFC 6749 VSCHAR) and comes back exactly, once.
    let res = http
        .get(
            authorize_url(&srv, &seed.web_id, CB, &c, &[("response_type", "token")])
                .replace("state=s1", "state=a+b%26c"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "duplicate response_type refused");
    let mut u = url::Url::parse(&authorize_url(&srv, &seed.web_id, CB, &c, &[])).unwrap();
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| {
            (
                k.clone().into_owned(),
                if k == "state" {
                    "a b&c=d ~".into()
                } else {
                    v.into_owned()
                },
            )
        })
        .filter(|(k, _)| k != "response_type")
        .collect();
    u.query_pairs_mut()
        .clear()
        .extend_pairs(pairs)
        .append_pair("response_type", "token");
    let res = http.get(u.as_str()).send().await.unwrap();
    assert_eq!(res.status(), 302);
    let loc = res.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(query_of(&loc)["state"], "a b&c=d ~");
    assert_eq!(loc.matches("state=").count(), 1);
}
