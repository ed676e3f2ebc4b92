//! The shared attack cases (`shared/cases/CASES.md`) that concern browser-facing defenses, one
//! test per case, against the real server over TLS. Each test covers the whole kind of fault
//! the case comes from, not only the strings it lists. (A08 lives in `negative.rs`, with the
//! other PKCE rules.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

const ALICE: &str = "alice@example.com";

/// Asserts "400, no redirect": our own error page, no `Location`, no flow cookie (so no code
/// can follow).
async fn assert_refused_without_redirect(what: &str, res: reqwest::Response) {
    assert_eq!(res.status(), 400, "{what}");
    assert!(
        res.headers().get("location").is_none(),
        "{what}: redirected"
    );
    assert!(
        res.headers().get("set-cookie").is_none(),
        "{what}: a flow was started"
    );
    let body = res.text().await.unwrap();
    assert!(!body.contains("http-equiv=\"refresh\""), "{what}: {body}");
}

/// Sends `/authorize` for `client_id` with `redirect_uri` (form-encoded once).
async fn authorize(
    srv: &TestServer,
    http: &reqwest::Client,
    client_id: &str,
    redirect_uri: &str,
) -> reqwest::Response {
    let (_v, c) = pkce();
    http.get(authorize_url(srv, client_id, redirect_uri, &c, &[]))
        .send()
        .await
        .unwrap()
}

/// Signs in through `redirect_uri` and returns the `Location` the browser is sent to.
async fn sign_in_to(
    srv: &TestServer,
    http: &reqwest::Client,
    client_id: &str,
    redirect_uri: &str,
) -> String {
    let (_v, c) = pkce();
    let mut jar = Jar::default();
    let res = browser_login(
        srv,
        http,
        &mut jar,
        &authorize_url(srv, client_id, redirect_uri, &c, &[]),
        ALICE,
        PASSWORD,
    )
    .await;
    assert_eq!(res.status(), 303, "{redirect_uri}");
    res.headers()["location"].to_str().unwrap().to_owned()
}

/// Registering a client with `redirect_uri` must fail, naming the rule, never storing it.
fn assert_registration_refused(srv: &TestServer, flag: &str, uri: &str) {
    let mut args = vec!["clients", "create", "--name", "Bad", "--public"];
    if flag == "--post-logout-redirect-uri" {
        args.extend(["--redirect-uri", CB]);
    }
    args.extend([flag, uri]);
    let out = srv.cli_raw(&args, None);
    assert!(!out.status.success(), "{flag} {uri:?} was accepted");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("redirect URI"), "{uri:?}: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a01_path_traversal_and_path_parameters_never_match() {
    let srv = TestServer::start();
    let seed = srv.seed();
    let http = srv.http();
    for x in [
        "https://app.example.com/cb/..;/x",
        "https://app.example.com/cb/%2e%2e/x",
        "https://app.example.com/cb/%2e%2e%3b/x",
        "https://app.example.com/cb/..%2fx",
        "https://app.example.com/cb/./../x",
        "https://app.example.com/cb;x",
        // The same kind, other spellings.
        "https://app.example.com/cb/..",
        "https://app.example.com/cb/%2E%2E/x",
        "https://app.example.com/cb/.%2e/x",
        "https://app.example.com/cb%2f..%2fx",
        "https://app.example.com/cb/..%5cx",
        "https://app.example.com/cb\\..\\x",
        "https://app.example.com/x/../cb",
        "https://app.example.com/cb%00",
    ] {
        for client in [&seed.public_id, &seed.web_id] {
            assert_refused_without_redirect(x, authorize(&srv, &http, client, x).await).await;
        }
        // Registration refuses the whole kind too.
        assert_registration_refused(&srv, "--redirect-uri", x);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a02_userinfo_and_encoded_authorities_are_refused() {
    let srv = TestServer::start();
    let seed = srv.seed();
    let http = srv.http();
    for x in [
        "https://app.example.com@evil.example/cb",
        "https://a@b@evil.example/cb",
        "https://app.example.com%2F@evil.example/cb",
        "https://app.example.com%252F@evil.example/cb",
        "https://app.example.com:443@evil.example/cb",
        "https://user@app.example.com/cb",
        "https://user:pass@app.example.com/cb",
        "https://app.example.com%40evil.example/cb",
        "https://app.example.com\\@evil.example/cb",
        "https://@app.example.com/cb",
    ] {
        assert_refused_without_redirect(x, authorize(&srv, &http, &seed.public_id, x).await).await;
        assert_registration_refused(&srv, "--redirect-uri", x);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a03_wildcards_and_near_misses_never_match() {
    let srv = TestServer::start();
    let seed = srv.seed();
    let http = srv.http();
    for pattern in [
        "https://app.example.com*",
        "https://*.example.com/cb",
        "https://app.example.com/cb*",
        "https://app.example.com/*",
    ] {
        assert_registration_refused(&srv, "--redirect-uri", pattern);
    }
    for x in [
        "https://app.example.com.evil.example/cb",
        "https://app.example.comevil.example/cb",
        "https://app.example.com:8443/cb",
        "https://app.example.com:443/cb",
        "https://APP.example.com/cb",
        "https://app.example.com/cb/",
        "https://app.example.com/CB",
        "https://\u{0430}pp.example.com/cb",
        "https://xn--pp-8cd.example.com/cb",
        "http://app.example.com/cb",
        "https://app.example.com/cb?",
        "https://app.example.com/cb?x=1",
        "https://app.example.com./cb",
        " https://app.example.com/cb",
        "https://app.example.com/cb ",
        "https://app.example.com/c%62",
    ] {
        assert_refused_without_redirect(x, authorize(&srv, &http, &seed.public_id, x).await).await;
    }
    // The exact registered string: the code goes to exactly that URI.
    let loc = sign_in_to(&srv, &http, &seed.public_id, CB).await;
    assert!(loc.starts_with(&format!("{CB}?code=")), "{loc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a04_loopback_port_freedom_is_the_only_freedom() {
    let srv = TestServer::start();
    let seed = srv.seed();
    let http = srv.http();
    let native = srv.cli_json(
        &[
            "clients",
            "create",
            "--name",
            "Native",
            "--public",
            "--redirect-uri",
            "http://127.0.0.1/cb",
            "--redirect-uri",
            "http://[::1]/cb",
        ],
        None,
    );
    let n1 = native["client_id"].as_str().unwrap();
    for ok in ["http://127.0.0.1:51004/cb", "http://127.0.0.1/cb"] {
        let loc = sign_in_to(&srv, &http, n1, ok).await;
        assert!(loc.starts_with(&format!("{ok}?code=")), "{ok}: {loc}");
    }
    for x in [
        "http://127.0.0.1.evil.example/cb",
        "http://127.0.0.1:51004@evil.example/cb",
        "http://127.0.0.1:51004/other",
        "http://127.0.0.1:51004/cb/../x",
        "http://localhost.evil.example/cb",
        "https://evil.example/cb",
        "http://127.0.0.1:51004/cb?extra=1",
        // The same kind: other hosts, other loopback spellings, malformed ports.
        "http://localhost:51004/cb",
        "http://127.0.0.2:51004/cb",
        "http://127.1:51004/cb",
        "http://2130706433:51004/cb",
        "http://0x7f000001:51004/cb",
        "http://127.0.0.1:051004/cb",
        "http://127.0.0.1:99999/cb",
        "http://127.0.0.1:/cb",
        "http://127.0.0.1:51004:1/cb",
        "https://127.0.0.1:51004/cb",
        "http://[::1].evil.example/cb",
        "http://[::ffff:127.0.0.1]:51004/cb",
    ] {
        assert_refused_without_redirect(x, authorize(&srv, &http, n1, x).await).await;
    }
    // Port freedom is for loopback only.
    assert_refused_without_redirect(
        "web client with a port",
        authorize(
            &srv,
            &http,
            &seed.web_id,
            "https://app.example.com:51004/cb",
        )
        .await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a05_fragments_and_response_parameters_cannot_be_injected() {
    let srv = TestServer::start();
    let seed = srv.seed();
    let http = srv.http();
    for bad in [
        "https://app.example.com/cb#x",
        "https://app.example.com/cb#",
        "https://app.example.com/cb?code=x",
        "https://app.example.com/cb?state=x",
        "https://app.example.com/cb?iss=x",
        "https://app.example.com/cb?a=1&error=x",
        "https://app.example.com/cb?Code=1",
        "https://app.example.com/cb?x=1;code=2",
        "https://app.example.com/cb?code[]=1",
    ] {
        assert_registration_refused(&srv, "--redirect-uri", bad);
    }
    for x in [
        "https://app.example.com/cb#code=ATT&state=s0&iss=https://evil.example",
        "https://app.example.com/cb?code=ATT&state=s0",
        "https://app.example.com/cb#",
    ] {
        assert_refused_without_redirect(x, authorize(&srv, &http, &seed.public_id, x).await).await;
    }
    // A registered query survives, and the response parameters appear exactly once.
    let tenant = srv.cli_json(
        &[
            "clients",
            "create",
            "--name",
            "Tenant",
            "--public",
            "--redirect-uri",
            "https://app.example.com/cb?tenant=1",
        ],
        None,
    );
    let loc = sign_in_to(
        &srv,
        &http,
        tenant["client_id"].as_str().unwrap(),
        "https://app.example.com/cb?tenant=1",
    )
    .await;
    let u = url::Url::parse(&loc).unwrap();
    assert_eq!(u.fragment(), None);
    let pairs: Vec<(String, String)> = u.query_pairs().map(|(k, v)| (k.into(), v.into())).collect();
    let count = |k: &str| pairs.iter().filter(|(n, _)| n == k).count();
    assert_eq!(pairs[0], ("tenant".to_owned(), "1".to_owned()), "{loc}");
    for k in ["tenant", "code", "state", "iss"] {
        assert_eq!(count(k), 1, "{k} in {loc}");
    }
    assert_eq!(pairs.len(), 4, "{loc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a06_dangerous_schemes_are_refused_in_every_spelling() {
    let srv = TestServer::start();
    let seed = srv.seed();
    let http = srv.http();
    for x in [
        "JaVaScRiPt:alert(1)",
        "DATA:text/html,x",
        "vbscript:x",
        " javascript:x",
        "java%0Ascript:x",
        "javascript%3Ax",
        "java\tscript:alert(1)",
        "javascript://app.example.com/%0Aalert(1)",
        "jav&#x09;ascript:alert(1)",
        "file:///etc/passwd",
        "blob:https://app.example.com/x",
        "ftp://app.example.com/cb",
        "ws://app.example.com/cb",
        "//app.example.com/cb",
        "/cb",
    ] {
        assert_registration_refused(&srv, "--redirect-uri", x);
        assert_registration_refused(&srv, "--post-logout-redirect-uri", x);
    }
    // At logout, a dangerous post-logout URI is never registered, so never followed: 400, our
    // own page, echoing nothing (with a malformed, an unknown and a real client id).
    for client in ["c1", "cl_nobody", seed.web_id.as_str()] {
        for x in [
            "JAVASCRIPT:alert(1)",
            "javascript:alert(1)",
            "data:text/html,x",
        ] {
            let mut u = url::Url::parse(&srv.url("/logout")).unwrap();
            u.query_pairs_mut()
                .append_pair("client_id", client)
                .append_pair("post_logout_redirect_uri", x);
            let res = http.get(u.as_str()).send().await.unwrap();
            assert_eq!(res.status(), 400, "{client} {x}");
            assert!(res.headers().get("location").is_none());
            let body = res.text().await.unwrap().to_ascii_lowercase();
            assert!(
                !body.contains("javascript") && !body.contains("data:"),
                "{body}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a07_login_takes_no_return_url() {
    let srv = TestServer::start();
    let seed = srv.seed();
    let http = srv.http();
    for x in [
        "//evil.example",
        "/\\evil.example",
        "/%09/evil.example",
        "/%0A/evil.example",
        "/%0D/evil.example",
        "/%0B/evil.example",
        "/%5Cevil.example",
        "%2F%2Fevil.example",
        "https:evil.example",
        "\\\\evil.example",
        "https://evil.example/",
    ] {
        for name in [
            "return_to",
            "returnTo",
            "next",
            "redirect",
            "continue",
            "url",
        ] {
            // A fresh flow for every attempt, so each one really signs in.
            let (_v, c) = pkce();
            let mut jar = Jar::default();
            let res = authorize_and_resume(
                &srv,
                &http,
                &mut jar,
                &authorize_url(&srv, &seed.web_id, CB, &c, &[(name, x)]),
            )
            .await;
            let html = res.text().await.unwrap();
            assert!(!html.contains("evil.example"), "{name} echoed: {html}");
            let csrf = csrf_of(&html);
            let res = http
                .post(srv.url("/login"))
                .header("cookie", jar.header())
                .header("origin", &srv.issuer)
                .form(&[
                    ("csrf_token", csrf.as_str()),
                    ("email", ALICE),
                    ("password", PASSWORD),
                    (name, x),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 303, "{name}={x}");
            let loc = res.headers()["location"].to_str().unwrap();
            assert!(loc.starts_with(&format!("{CB}?code=")), "{name}={x}: {loc}");
            assert!(!loc.contains("evil.example"), "{name}={x}: {loc}");
            assert!(!loc.bytes().any(|b| b.is_ascii_control()), "{loc:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a14_flows_cannot_be_fixed_or_restarted_into_a_victims_session() {
    let srv = TestServer::start();
    let seed = srv.seed();
    let http = srv.http();
    let (_v, c) = pkce();

    // 1. The attacker starts a flow and holds its pre-authentication cookie A.
    let mut attacker = Jar::default();
    let res = http
        .get(authorize_url(&srv, &seed.web_id, CB, &c, &[]))
        .send()
        .await
        .unwrap();
    attacker.absorb(&res);
    let a = attacker.cookies["__Host-portcullis-flow"].clone();

    // 2. A signed-in victim follows links carrying the flow id: nothing takes it from a URL.
    let victim = signed_in_jar(&srv, &http, &seed).await;
    for path in [
        format!("/login/restart?flow={a}"),
        format!("/authorize/restart?flow={a}"),
        format!("/authorize/resume?flow={a}"),
        format!("/authorize/resume?__Host-portcullis-flow={a}"),
    ] {
        let res = http
            .get(srv.url(&path))
            .header("cookie", victim.header())
            .send()
            .await
            .unwrap();
        assert!(
            res.status() == 400 || res.status() == 404,
            "{path}: {}",
            res.status()
        );
        assert!(res.headers().get("location").is_none(), "{path}");
    }
    // The attacker's flow is still not bound to anyone: resuming it shows a login form.
    let res = http
        .get(srv.url("/authorize/resume"))
        .header("cookie", attacker.header())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let attacker_csrf = csrf_of(&res.text().await.unwrap());

    // 4. Posts without a token, with another flow's token, or cross-site are refused.
    let mut victim_flow = victim.clone();
    let res = authorize_and_resume(
        &srv,
        &http,
        &mut victim_flow,
        &authorize_url(&srv, &seed.web_id, CB, &c, &[("prompt", "login")]),
    )
    .await;
    let victim_csrf = csrf_of(&res.text().await.unwrap());
    let session_before = victim_flow.cookies["__Host-portcullis-session"].clone();
    let flow_before = victim_flow.cookies["__Host-portcullis-flow"].clone();
    for (what, token, origin, site) in [
        ("no token", None, Some(srv.issuer.as_str()), None),
        (
            "another flow's token",
            Some(attacker_csrf.as_str()),
            Some(srv.issuer.as_str()),
            None,
        ),
        (
            "evil origin",
            Some(victim_csrf.as_str()),
            Some("https://evil.example"),
            None,
        ),
        (
            "null origin",
            Some(victim_csrf.as_str()),
            Some("null"),
            None,
        ),
        (
            "cross-site fetch",
            Some(victim_csrf.as_str()),
            None,
            Some("cross-site"),
        ),
        (
            "same-site fetch",
            Some(victim_csrf.as_str()),
            None,
            Some("same-site"),
        ),
        (
            "same-origin fetch with an evil origin",
            Some(victim_csrf.as_str()),
            Some("https://evil.example"),
            Some("same-origin"),
        ),
        ("no origin at all", Some(victim_csrf.as_str()), None, None),
    ] {
        let mut form = vec![("email", ALICE), ("password", PASSWORD)];
        if let Some(t) = token {
            form.push(("csrf_token", t));
        }
        let mut req = http
            .post(srv.url("/login"))
            .header("cookie", victim_flow.header())
            .form(&form);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(s) = site {
            req = req.header("sec-fetch-site", s);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 403, "{what}");
        assert!(res.headers().get("set-cookie").is_none(), "{what}");
        assert!(res.headers().get("location").is_none(), "{what}");
    }

    // 3. A valid sign-in through the victim's own flow: a new session id, unlike the old one
    // and unlike the attacker's pre-authentication cookie; the old session is over.
    let res = http
        .post(srv.url("/login"))
        .header("cookie", victim_flow.header())
        .header("origin", &srv.issuer)
        .form(&[
            ("csrf_token", victim_csrf.as_str()),
            ("email", ALICE),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    victim_flow.absorb(&res);
    let session_after = victim_flow.cookies["__Host-portcullis-session"].clone();
    assert_ne!(session_after, session_before);
    assert_ne!(session_after, a);
    // The spent flow cookie resumes nothing.
    assert!(
        res.headers()
            .get_all("set-cookie")
            .iter()
            .any(|v| v.to_str().unwrap().starts_with("__Host-portcullis-flow=;")),
        "the spent flow cookie is deleted at the redirect"
    );
    let mut spent = Jar::default();
    spent
        .cookies
        .insert("__Host-portcullis-flow".into(), flow_before);
    let res = http
        .get(srv.url("/authorize/resume"))
        .header("cookie", spent.header())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    // The old session no longer signs anyone in: with it, a new authorization asks again.
    let mut old = Jar::default();
    old.cookies
        .insert("__Host-portcullis-session".into(), session_before);
    let res = authorize_and_resume(
        &srv,
        &http,
        &mut old,
        &authorize_url(&srv, &seed.web_id, CB, &c, &[]),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("name=\"password\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a16_every_cookie_is_secure_host_only_and_deleted_alike() {
    let srv = TestServer::start();
    let seed = srv.seed();
    let http = srv.http();
    let (v, c) = pkce();
    let mut jar = Jar::default();

    // Sign in (authorize, hop, login), then "Continue as" for the public client, a failed
    // login, a refused flow, a token request, and a logout attempt.
    let res = browser_login(
        &srv,
        &http,
        &mut jar,
        &authorize_url(&srv, &seed.web_id, CB, &c, &[]),
        ALICE,
        PASSWORD,
    )
    .await;
    let code = query_of(res.headers()["location"].to_str().unwrap())["code"].clone();
    let res = authorize_and_resume(
        &srv,
        &http,
        &mut jar,
        &authorize_url(&srv, &seed.public_id, CB, &c, &[]),
    )
    .await;
    let csrf = csrf_of(&res.text().await.unwrap());
    let res = http
        .post(srv.url("/authorize/continue"))
        .header("cookie", jar.header())
        .header("origin", &srv.issuer)
        .form(&[("csrf_token", csrf.as_str()), ("action", "continue")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    jar.absorb(&res);
    let mut failed = Jar::default();
    let res = browser_login(
        &srv,
        &http,
        &mut failed,
        &authorize_url(&srv, &seed.web_id, CB, &c, &[]),
        ALICE,
        "a wrong password of some length",
    )
    .await;
    assert_eq!(res.status(), 401);
    jar.set_cookie_lines.extend(failed.set_cookie_lines);
    for res in [
        http.post(srv.url("/token"))
            .basic_auth(&seed.web_id, Some(&seed.web_secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", CB),
                ("code_verifier", v.as_str()),
            ])
            .send()
            .await
            .unwrap(),
        http.get(srv.url("/authorize/resume")).send().await.unwrap(),
    ] {
        jar.absorb(&res);
    }
    // Logout: the confirmation page, then its form (which expires the session cookie).
    let res = browser_logout(&srv, &http, &mut jar, &[], &[]).await;
    let csrf = csrf_of(&res.text().await.unwrap());
    let res = http
        .post(srv.url("/logout"))
        .header("cookie", jar.header())
        .header("origin", &srv.issuer)
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    jar.absorb(&res);
    assert!(jar
        .set_cookie_lines
        .iter()
        .any(|l| l.starts_with("__Host-portcullis-session=;")));

    assert!(
        jar.set_cookie_lines.len() >= 4,
        "{:?}",
        jar.set_cookie_lines
    );
    let mut shapes: std::collections::HashMap<String, Vec<Vec<String>>> = Default::default();
    for line in &jar.set_cookie_lines {
        let (name, _value, attrs) = parse_set_cookie(line);
        assert!(name.starts_with("__Host-"), "{line}");
        for must in ["secure", "httponly", "path=/"] {
            assert!(attrs.iter().any(|a| a == must), "{line}: no {must}");
        }
        assert!(
            attrs
                .iter()
                .any(|a| a == "samesite=lax" || a == "samesite=strict"),
            "{line}"
        );
        assert!(!attrs.iter().any(|a| a.starts_with("domain")), "{line}");
        assert!(!attrs.iter().any(|a| a == "samesite=none"), "{line}");
        // Compare set and delete: the same attributes apart from the lifetime.
        let shape = attrs
            .into_iter()
            .filter(|a| !a.starts_with("max-age") && !a.starts_with("expires"))
            .collect::<Vec<_>>();
        shapes.entry(name).or_default().push(shape);
    }
    assert!(shapes.contains_key("__Host-portcullis-flow"));
    assert!(shapes.contains_key("__Host-portcullis-session"));
    for (name, variants) in shapes {
        assert!(
            variants.windows(2).all(|w| w[0] == w[1]),
            "{name}: set and delete differ: {variants:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a17_hsts_on_every_https_response_and_plain_http_only_redirects() {
    let rport = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{rport}");
    let srv = TestServer::start_with(&[("PORTCULLIS_HTTP_REDIRECT_LISTEN", &listen)]);
    let seed = srv.seed();
    let http = srv.http();
    let (_v, c) = pkce();
    let mut requests: Vec<(String, reqwest::RequestBuilder)> = vec![];
    for path in [
        "/".to_owned(),
        "/.well-known/openid-configuration".to_owned(),
        "/jwks".to_owned(),
        authorize_url(&srv, &seed.web_id, CB, &c, &[]).replace(&srv.issuer, ""),
        authorize_url(&srv, "cl_unknown", CB, &c, &[]).replace(&srv.issuer, ""),
        "/authorize/resume".to_owned(),
        "/nope".to_owned(),
        "/userinfo".to_owned(),
    ] {
        requests.push((format!("GET {path}"), http.get(srv.url(&path))));
        requests.push((format!("HEAD {path}"), http.head(srv.url(&path))));
    }
    requests.push((
        "POST /login".into(),
        http.post(srv.url("/login")).form(&[("a", "b")]),
    ));
    requests.push((
        "bad POST /token".into(),
        http.post(srv.url("/token")).form(&[("grant_type", "x")]),
    ));
    requests.push((
        "unauthenticated POST /token".into(),
        http.post(srv.url("/token"))
            .basic_auth(&seed.web_id, Some("wrong"))
            .form(&[("grant_type", "client_credentials")]),
    ));
    requests.push(("DELETE /token (405)".into(), http.delete(srv.url("/token"))));
    // Oversized heads are refused by the router, so they carry the headers too (hyper's own
    // limits, beyond 64 KiB targets or 1,000 fields, are far past ours).
    requests.push((
        "long target (414)".into(),
        http.get(srv.url(&format!("/jwks?x={}", "a".repeat(20_000)))),
    ));
    let mut many = http.get(srv.url("/"));
    for i in 0..150 {
        many = many.header(format!("x-filler-{i}"), "1");
    }
    requests.push(("150 header fields (431)".into(), many));
    requests.push(("GET /login (405)".into(), http.get(srv.url("/login"))));
    requests.push((
        "wrong Host (421)".into(),
        http.get(srv.url("/")).header("host", "evil.example"),
    ));
    let mut statuses = std::collections::BTreeSet::new();
    for (what, req) in requests {
        let res = req.send().await.unwrap();
        statuses.insert(res.status().as_u16());
        assert_eq!(
            res.headers()
                .get("strict-transport-security")
                .map(|v| v.to_str().unwrap()),
            Some("max-age=31536000; includeSubDomains"),
            "{what} ({})",
            res.status()
        );
    }
    for s in [200, 400, 401, 403, 404, 405, 414, 421, 431] {
        assert!(statuses.contains(&s), "no {s} among {statuses:?}");
    }
    // The same oversized heads over HTTP/2 (what browsers speak) reach our layers too.
    let ca = srv.dir.path().join("test-ca.pem");
    std::fs::write(&ca, &srv.ca_pem).unwrap();
    let long = srv.url(&format!("/jwks?x={}", "a".repeat(20_000)));
    let big_header = format!("x-big: {}", "b".repeat(20_000));
    for (what, args, want) in [
        ("HTTP/2 long target", vec![long.as_str()], "414"),
        (
            "HTTP/2 20 KB header",
            vec!["-H", big_header.as_str(), "--url", srv.issuer.as_str()],
            "200",
        ),
    ] {
        let out = std::process::Command::new("curl")
            .args(["--http2", "-s", "-o", "/dev/null", "-D", "-", "--cacert"])
            .arg(&ca)
            .args(&args)
            .output()
            .unwrap();
        let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
        assert!(
            head.starts_with(&format!("http/2 {want}")),
            "{what}: {head}"
        );
        assert!(
            head.contains("strict-transport-security: max-age=31536000; includesubdomains"),
            "{what}: {head}"
        );
    }
    // Plain HTTP: a bodiless, cookieless redirect to the https URL.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = plain
        .get(format!("http://127.0.0.1:{rport}/login"))
        .send()
        .await
        .unwrap();
    assert!(res.status() == 301 || res.status() == 308);
    assert_eq!(res.headers()["location"], srv.url("/login"));
    assert!(res.headers().get("set-cookie").is_none());
    assert!(res.bytes().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a18_every_page_has_a_strict_csp_and_escapes_what_it_shows() {
    let srv = TestServer::start();
    let seed = srv.seed();
    let http = srv.http();
    let (_v, c) = pkce();
    // (No event-handler text: the page check refuses " onerror=" even as escaped text.)
    let hostile = "<script>alert(1)</script>\"'><img src=x>";

    // The login page, with a hostile login_hint (rejected or rendered as text).
    let mut jar = Jar::default();
    let res = authorize_and_resume(
        &srv,
        &http,
        &mut jar,
        &authorize_url(&srv, &seed.web_id, CB, &c, &[("login_hint", hostile)]),
    )
    .await;
    if res.status() == 200 {
        let html = check_html_page("login page", res, Some("https://app.example.com")).await;
        assert!(!html.contains("<script>alert(1)"), "{html}");
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(
            html.contains("&lt;script&gt;"),
            "the hint is shown escaped: {html}"
        );
    } else {
        panic!("login_hint made the flow fail: {}", res.status());
    }

    // The "Continue as" page, the error page, the expired-flow page, and the index.
    let mut sso = signed_in_jar(&srv, &http, &seed).await;
    let res = authorize_and_resume(
        &srv,
        &http,
        &mut sso,
        &authorize_url(&srv, &seed.public_id, CB, &c, &[]),
    )
    .await;
    check_html_page("continue page", res, Some("https://app.example.com")).await;
    let res = http
        .get(authorize_url(&srv, "cl_<script>", CB, &c, &[]))
        .send()
        .await
        .unwrap();
    let html = check_html_page("error page", res, None).await;
    assert!(!html.contains("<script>"));
    let res = http.get(srv.url("/authorize/resume")).send().await.unwrap();
    check_html_page("expired page", res, None).await;
    let res = http.get(srv.url("/")).send().await.unwrap();
    check_html_page("index", res, None).await;
    // The logout pages: the same-site step, the confirmation, the signed-out page, and a
    // refusal. (The confirmation with an app's redirect is checked in `logout.rs`.)
    let res = http.get(srv.url("/logout")).send().await.unwrap();
    check_html_page("logout step", res, None).await;
    let res = browser_logout(&srv, &http, &mut sso, &[], &[]).await;
    check_html_page("logout confirmation", res, None).await;
    let res = browser_logout(&srv, &http, &mut Jar::default(), &[], &[]).await;
    check_html_page("signed-out page", res, None).await;
    let res = http
        .get(
            srv.url(
                "/logout?post_logout_redirect_uri=https%3A%2F%2Fapp.example.com%2F%3Cscript%3E",
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let html = check_html_page("logout refusal", res, None).await;
    assert!(!html.contains("<script>"));
    // Password reset does not exist yet: 404, still with the headers.
    let res = http.get(srv.url("/password-reset")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert!(res.headers().contains_key("content-security-policy"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_loopback_redirects_go_through_an_interstitial_page() {
    // No CSP source expression can name `http://[::1]:port`, so after the login POST the
    // browser is sent on by a page of ours (meta refresh + link), not by a blocked redirect.
    let srv = TestServer::start();
    let _seed = srv.seed();
    let http = srv.http();
    let native = srv.cli_json(
        &[
            "clients",
            "create",
            "--name",
            "Native6",
            "--public",
            "--redirect-uri",
            "http://[::1]/cb",
        ],
        None,
    );
    let id = native["client_id"].as_str().unwrap();
    let (_v, c) = pkce();
    let mut jar = Jar::default();
    let res = browser_login(
        &srv,
        &http,
        &mut jar,
        &authorize_url(&srv, id, "http://[::1]:40123/cb", &c, &[]),
        ALICE,
        PASSWORD,
    )
    .await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("location").is_none());
    let html = check_html_page("returning page", res, None)
        .await
        .replace("&#x2f;", "/")
        .replace("&amp;", "&");
    assert!(
        html.contains("content=\"0;url=http://[::1]:40123/cb?code="),
        "{html}"
    );
    assert!(html.contains("id=\"return-link\" href=\"http://[::1]:40123/cb?code="));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_follows_the_redirect_origins_of_enabled_public_clients() {
    let srv = TestServer::start();
    let seed = srv.seed(); // the public "SPA" client redirects to https://app.example.com/cb
    let http = srv.http();
    let conf = "https://confidential.example.com";
    srv.cli(
        &[
            "clients",
            "create",
            "--name",
            "Server app",
            "--redirect-uri",
            &format!("{conf}/cb"),
        ],
        None,
    );
    let gone = srv.cli_json(
        &[
            "clients",
            "create",
            "--name",
            "Old SPA",
            "--public",
            "--redirect-uri",
            "https://gone.example.com/cb",
        ],
        None,
    );
    srv.cli(
        &["clients", "disable", gone["client_id"].as_str().unwrap()],
        None,
    );
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;

    let preflight = |path: &str, origin: &str, method: &str| {
        http.request(reqwest::Method::OPTIONS, srv.url(path))
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let acao = |res: &reqwest::Response| {
        res.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let app = "https://app.example.com";
    // Introspection is for servers: no CORS at all.
    let res = preflight("/introspect", app, "POST").await.unwrap();
    assert_eq!(acao(&res), None, "/introspect");
    for (path, method) in [
        ("/token", "POST"),
        ("/revoke", "POST"),
        ("/userinfo", "GET"),
    ] {
        let res = preflight(path, app, method).await.unwrap();
        assert!(res.status().is_success(), "{path}: {}", res.status());
        assert_eq!(acao(&res).as_deref(), Some(app), "{path}");
        let h = res.headers();
        assert!(h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains(method));
        assert!(h["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("authorization"));
        assert!(
            !h.contains_key("access-control-allow-credentials"),
            "{path}"
        );
        for refused in [
            conf,
            "https://gone.example.com",
            "null",
            "https://evil.example",
            "https://app.example.com.evil.example",
            "http://app.example.com",
            "https://app.example.com:8443",
        ] {
            let res = preflight(path, refused, method).await.unwrap();
            assert_eq!(acao(&res), None, "{path} from {refused}");
        }
    }
    // The actual request from the SPA: allowed, varied by origin, never with credentials.
    let res = http
        .post(srv.url("/token"))
        .header("origin", app)
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "pcr_x"),
            ("client_id", &seed.public_id),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(acao(&res).as_deref(), Some(app));
    assert!(res.headers()["vary"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase()
        .contains("origin"));
    assert!(!res
        .headers()
        .contains_key("access-control-allow-credentials"));
    let res = http
        .post(srv.url("/token"))
        .header("origin", "https://evil.example")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(acao(&res), None);
    // Public documents: any origin.
    for path in ["/jwks", "/.well-known/openid-configuration"] {
        let res = http
            .get(srv.url(path))
            .header("origin", "https://anyone.example")
            .send()
            .await
            .unwrap();
        assert_eq!(acao(&res).as_deref(), Some("*"), "{path}");
        assert!(!res
            .headers()
            .contains_key("access-control-allow-credentials"));
    }
    // Everything else: no CORS headers at all, even for the SPA's origin.
    let (_v, c) = pkce();
    for res in [
        http.get(authorize_url(&srv, &seed.public_id, CB, &c, &[]))
            .header("origin", app)
            .send()
            .await
            .unwrap(),
        http.post(srv.url("/login"))
            .header("origin", app)
            .send()
            .await
            .unwrap(),
        preflight("/login", app, "POST").await.unwrap(),
        http.get(srv.url("/"))
            .header("origin", app)
            .send()
            .await
            .unwrap(),
    ] {
        assert!(
            !res.headers()
                .keys()
                .any(|k| k.as_str().starts_with("access-control-")),
            "{}",
            res.url()
        );
    }
}
