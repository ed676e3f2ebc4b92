//! RP-initiated logout against the real server over TLS: the shared cases A15 (logout via a
//! cross-site GET) and A19 (hostile JWTs as request objects, client assertions and
//! `id_token_hint`s), expired hints, session-bound refresh tokens, and cookie deletion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use common::*;
use serde_json::{json, Value};

const BYE: &str = "https://app.example.com/bye";
const BYE_Q: &str = "https://app.example.com/bye?from=portcullis";
const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";

struct World {
    srv: TestServer,
    http: reqwest::Client,
    seed: Seed,
    /// A first-party confidential client with the post-logout redirects `BYE` and `BYE_Q`.
    app: (String, String),
}

impl World {
    fn new(env: &[(&str, &str)]) -> Self {
        let srv = TestServer::start_with(env);
        let seed = srv.seed();
        srv.cli(
            &["users", "create", "--email", BOB, "--password-stdin"],
            Some(PASSWORD),
        );
        let app = create_client(
            &srv,
            "Logout <App>",
            CB,
            &[
                "--post-logout-redirect-uri",
                BYE,
                "--post-logout-redirect-uri",
                BYE_Q,
            ],
        );
        let http = srv.http();
        Self {
            srv,
            http,
            seed,
            app,
        }
    }

    fn app(&self) -> (&str, &str) {
        (&self.app.0, &self.app.1)
    }

    /// Signs `email` in through the app in a fresh browser: (jar, token response).
    async fn sign_in(&self, email: &str) -> (Jar, Value) {
        let mut jar = Jar::default();
        let t = sign_in_for_tokens(&self.srv, &self.http, &mut jar, self.app(), CB, email).await;
        (jar, t)
    }

    async fn alive(&self, tokens: &Value) -> bool {
        session_alive(
            &self.srv,
            &self.http,
            tokens["access_token"].as_str().unwrap(),
        )
        .await
    }

    /// `POST /logout` as our own page does (the issuer's `Origin`) unless `headers` say
    /// otherwise.
    async fn post_logout(
        &self,
        jar: &Jar,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(self.srv.url("/logout"))
            .header("cookie", jar.header())
            .form(form);
        if !headers.iter().any(|(k, _)| *k == "origin") {
            req = req.header("origin", &self.srv.issuer);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }
}

fn id_token(t: &Value) -> &str {
    t["id_token"].as_str().unwrap()
}

fn location(res: &reqwest::Response) -> String {
    res.headers()["location"].to_str().unwrap().to_owned()
}

/// The `Set-Cookie` lines of a response.
fn set_cookies(res: &reqwest::Response) -> Vec<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// The response expires the session cookie with exactly the attributes it was set with.
fn assert_session_cookie_expired(what: &str, res: &reqwest::Response, jar: &Jar) {
    let set = jar
        .set_cookie_lines
        .iter()
        .find(|l| l.starts_with("__Host-portcullis-session=") && !l.contains("Max-Age=0"))
        .expect("the session cookie was set");
    let deleted = set_cookies(res)
        .into_iter()
        .find(|l| l.starts_with("__Host-portcullis-session="))
        .unwrap_or_else(|| panic!("{what}: the session cookie is not expired"));
    let (_, value, attrs) = parse_set_cookie(&deleted);
    assert_eq!(value, "", "{what}: {deleted}");
    assert!(attrs.iter().any(|a| a == "max-age=0"), "{what}: {deleted}");
    assert_eq!(
        cookie_shape(set),
        cookie_shape(&deleted),
        "{what}: {set} / {deleted}"
    );
    let (_, shape) = cookie_shape(&deleted);
    for must in ["secure", "httponly", "samesite=strict", "path=/"] {
        assert!(
            shape.iter().any(|a| a == must),
            "{what}: {deleted} lacks {must}"
        );
    }
    assert!(!shape.iter().any(|a| a.starts_with("domain")), "{what}");
}

/// 400, our own page: no `Location`, no cookie set or expired, no meta refresh.
async fn assert_refused(what: &str, res: reqwest::Response) {
    assert_eq!(res.status(), 400, "{what}");
    assert!(
        res.headers().get("location").is_none(),
        "{what}: redirected"
    );
    assert!(
        set_cookies(&res).is_empty(),
        "{what}: {:?}",
        set_cookies(&res)
    );
    let body = res.text().await.unwrap();
    assert!(!body.contains("http-equiv=\"refresh\""), "{what}");
    assert!(
        !body.contains("id=\"logout\""),
        "{what}: a confirmation page"
    );
}

/// The confirmation page: a form posting to /logout with a token, and nothing expired.
async fn assert_confirmation(
    what: &str,
    res: reqwest::Response,
    app_origin: Option<&str>,
) -> String {
    assert_eq!(res.status(), 200, "{what}");
    assert!(
        set_cookies(&res).is_empty(),
        "{what}: {:?}",
        set_cookies(&res)
    );
    let html = check_html_page(what, res, app_origin).await;
    assert!(
        html.contains("<form id=\"logout\" method=\"post\" action=\"/logout\">"),
        "{what}: {html}"
    );
    assert!(!html.contains("http-equiv=\"refresh\""), "{what}");
    csrf_of(&html);
    html
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a15_logout_via_cross_site_get_never_ends_a_session() {
    let w = World::new(&[]);
    let (srv, http) = (&w.srv, &w.http);
    let meta: Value = get_json(http, &srv.url("/.well-known/openid-configuration")).await;
    assert_eq!(
        meta["end_session_endpoint"],
        format!("{}/logout", srv.issuer)
    );

    // A cross-site GET without a hint (an <img>, a link on any site): the confirmation page.
    let (mut jar, t) = w.sign_in(ALICE).await;
    let res = http
        .get(srv.url("/logout"))
        .header("cookie", jar.header())
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    let html = assert_confirmation("cross-site GET", res, None).await;
    let csrf = csrf_of(&html);
    assert!(html.contains(ALICE), "{html}");
    assert!(w.alive(&t).await, "a GET without a hint ended the session");
    // The same when the browser withholds its Strict cookie: our same-site step first, which
    // ends nothing, then the confirmation page.
    let res = http
        .get(srv.url("/logout"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(set_cookies(&res).is_empty());
    let hop = check_html_page("logout step", res, None).await;
    assert!(hop.contains("http-equiv=\"refresh\"") && !hop.contains("id=\"logout\""));
    let res = browser_logout(srv, http, &mut Jar::default(), &[], &[]).await;
    let body = res.text().await.unwrap();
    assert!(
        body.contains("id=\"signed-out\""),
        "no session, nothing to confirm: {body}"
    );
    let next = refresh_target(&hop).unwrap();
    assert_eq!(next, "/logout/resume");
    let res = http
        .get(srv.url(&next))
        .header("cookie", jar.header())
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_confirmation("after the step", res, None).await;
    assert!(w.alive(&t).await);

    // POST without a token, with a forged one, another session's, or cross-site: 403.
    let (mut other, other_t) = w.sign_in(ALICE).await;
    let res = browser_logout(srv, http, &mut other, &[], &[]).await;
    let other_csrf = csrf_of(&assert_confirmation("other", res, None).await);
    assert_ne!(other_csrf, csrf);
    let issuer = srv.issuer.as_str();
    for (what, form, headers) in [
        ("no token", vec![], vec![]),
        ("empty token", vec![("csrf_token", "")], vec![]),
        ("forged token", vec![("csrf_token", "forged")], vec![]),
        (
            "other session's token",
            vec![("csrf_token", other_csrf.as_str())],
            vec![],
        ),
        (
            "evil origin",
            vec![("csrf_token", csrf.as_str())],
            vec![("origin", "https://evil.example")],
        ),
        (
            "null origin",
            vec![("csrf_token", csrf.as_str())],
            vec![("origin", "null")],
        ),
        (
            "cross-site fetch",
            vec![("csrf_token", csrf.as_str())],
            vec![("origin", issuer), ("sec-fetch-site", "cross-site")],
        ),
    ] {
        let res = w.post_logout(&jar, &form, &headers).await;
        assert_eq!(res.status(), 403, "{what}");
        assert!(set_cookies(&res).is_empty(), "{what}");
        assert!(res.headers().get("location").is_none(), "{what}");
        assert!(w.alive(&t).await, "{what}: the session ended");
    }
    // Neither Origin nor Sec-Fetch-Site: refused too.
    let res = http
        .post(srv.url("/logout"))
        .header("cookie", jar.header())
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(w.alive(&t).await);

    // POST with the token, from a confirmation page that carries the app and its redirect:
    // this session ends (not the other one), 303 to the registered URI with `state`, and the
    // cookie is expired with the attributes it was set with.
    let state_ascii = "a b&c=d/?%20+<\"'>";
    let res = browser_logout(
        srv,
        http,
        &mut jar,
        &[
            ("client_id", &w.app.0),
            ("post_logout_redirect_uri", BYE),
            ("state", state_ascii),
        ],
        &[],
    )
    .await;
    let html = assert_confirmation("with redirect", res, Some("https://app.example.com")).await;
    let form: Vec<(String, String)> = [
        "csrf_token",
        "client_id",
        "post_logout_redirect_uri",
        "state",
    ]
    .iter()
    .map(|k| {
        (
            k.to_string(),
            hidden_field(&html, k).unwrap_or_else(|| panic!("{k}: {html}")),
        )
    })
    .collect();
    assert_eq!(form[3].1, state_ascii);
    let form_ref: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let res = w.post_logout(&jar, &form_ref, &[]).await;
    assert_eq!(res.status(), 303);
    let loc = location(&res);
    assert!(
        loc.starts_with("https://app.example.com/bye?state="),
        "{loc}"
    );
    assert_eq!(query_of(&loc)["state"], state_ascii);
    assert_eq!(query_of(&loc).len(), 1, "{loc}");
    assert_session_cookie_expired("confirmed POST", &res, &jar);
    jar.absorb(&res);
    assert!(
        !w.alive(&t).await,
        "the session survived the confirmed logout"
    );
    assert!(w.alive(&other_t).await, "another browser's session ended");
    // Signed out here: /authorize asks for the password again.
    let (_v, c) = pkce();
    let res = authorize_and_resume(
        srv,
        http,
        &mut jar,
        &authorize_url(srv, &w.app.0, CB, &c, &[]),
    )
    .await;
    assert!(res.text().await.unwrap().contains("name=\"password\""));

    // A valid hint with a registered redirect: signed out at once, 302 to that URI only.
    let (mut jar3, t3) = w.sign_in(ALICE).await;
    let res = browser_logout(
        srv,
        http,
        &mut jar3,
        &[
            ("id_token_hint", id_token(&t3)),
            ("post_logout_redirect_uri", BYE_Q),
            ("state", "s3"),
            ("logout_hint", "someone-else@example.com"),
            ("ui_locales", "fr-CA"),
        ],
        &[("sec-fetch-site", "cross-site")],
    )
    .await;
    assert_eq!(res.status(), 302);
    assert_eq!(location(&res), format!("{BYE_Q}&state=s3"));
    assert_session_cookie_expired("hint", &res, &jar3);
    assert!(!w.alive(&t3).await);
    assert!(w.alive(&other_t).await);

    // Unregistered or unidentifiable redirects: 400, no redirect, and nothing ends (the check
    // runs before anything is done).
    let (mut jar4, t4) = w.sign_in(ALICE).await;
    let hint4 = id_token(&t4).to_owned();
    let at4 = t4["access_token"].as_str().unwrap().to_owned();
    for uri in [
        "https://evil.example/bye",
        "https://app.example.com/bye/",
        "https://app.example.com/BYE",
        "https://app.example.com/bye#x",
        "https://app.example.com/bye?from=portcullis&x=1",
        "https://app.example.com/bye/../cb",
        "https://app.example.com.evil.example/bye",
        CB,
        "javascript:alert(1)",
    ] {
        for q in [
            vec![
                ("id_token_hint", hint4.as_str()),
                ("post_logout_redirect_uri", uri),
            ],
            vec![
                ("client_id", w.app.0.as_str()),
                ("post_logout_redirect_uri", uri),
            ],
        ] {
            let res = browser_logout(srv, http, &mut jar4, &q, &[]).await;
            assert_refused(uri, res).await;
            assert!(w.alive(&t4).await, "{uri}: the session ended");
        }
    }
    let web = w.seed.web_id.as_str();
    let mismatch: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("no client", vec![("post_logout_redirect_uri", BYE)]),
        (
            "access token as the only client proof",
            vec![
                ("id_token_hint", at4.as_str()),
                ("post_logout_redirect_uri", BYE),
            ],
        ),
        (
            "client without that redirect",
            vec![("client_id", web), ("post_logout_redirect_uri", BYE)],
        ),
        (
            "client_id differs from the hint",
            vec![("id_token_hint", hint4.as_str()), ("client_id", web)],
        ),
        (
            "unknown client",
            vec![
                ("client_id", "cl_nobody"),
                ("post_logout_redirect_uri", BYE),
            ],
        ),
        ("malformed client", vec![("client_id", "c1")]),
        (
            "repeated hint",
            vec![
                ("id_token_hint", hint4.as_str()),
                ("id_token_hint", hint4.as_str()),
            ],
        ),
        (
            "repeated redirect",
            vec![
                ("client_id", w.app.0.as_str()),
                ("post_logout_redirect_uri", BYE),
                ("post_logout_redirect_uri", BYE),
            ],
        ),
    ];
    for (what, q) in mismatch {
        let res = browser_logout(srv, http, &mut jar4, &q, &[]).await;
        assert_refused(what, res).await;
        assert!(w.alive(&t4).await, "{what}: the session ended");
    }

    // An access token offered as the hint is no hint: the confirmation page.
    for q in [
        vec![("id_token_hint", at4.as_str())],
        vec![
            ("id_token_hint", at4.as_str()),
            ("client_id", w.app.0.as_str()),
            ("post_logout_redirect_uri", BYE),
        ],
    ] {
        let res = browser_logout(srv, http, &mut jar4, &q, &[]).await;
        let origin = (q.len() > 1).then_some("https://app.example.com");
        assert_confirmation("access token as hint", res, origin).await;
        assert!(w.alive(&t4).await);
    }

    // Another user's valid hint: asked, nothing ends silently.
    let (mut bob_jar, bob_t) = w.sign_in(BOB).await;
    let res = browser_logout(
        srv,
        http,
        &mut bob_jar,
        &[("id_token_hint", &hint4), ("post_logout_redirect_uri", BYE)],
        &[],
    )
    .await;
    let html =
        assert_confirmation("another user's hint", res, Some("https://app.example.com")).await;
    assert!(
        html.contains(BOB) && html.contains("different account"),
        "{html}"
    );
    assert!(w.alive(&bob_t).await && w.alive(&t4).await);

    // A valid hint from a browser without a session (cookies cleared, another device, or an
    // attacker holding a leaked ID token): after the same-site step the app gets its redirect,
    // but the session the hint names lives on. Only the browser holding a session ends it.
    let res = browser_logout(
        srv,
        http,
        &mut Jar::default(),
        &[("id_token_hint", &hint4), ("post_logout_redirect_uri", BYE)],
        &[],
    )
    .await;
    assert_eq!(res.status(), 302);
    assert_eq!(location(&res), BYE);
    assert!(
        set_cookies(&res).is_empty(),
        "no cookie was sent, none to expire"
    );
    assert!(w.alive(&t4).await, "a hint alone ends nothing");
    assert!(w.alive(&bob_t).await);
    // The hint in Bob's browser: still another user's hint, so asked, and nothing ends.
    let res = browser_logout(srv, http, &mut bob_jar, &[("id_token_hint", &hint4)], &[]).await;
    let html = assert_confirmation("spent hint, other user", res, None).await;
    assert!(html.contains(BOB));
    assert!(w.alive(&bob_t).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_bound_refresh_tokens_stop_working_after_logout() {
    let w = World::new(&[]);
    let app = w.app();
    // Through the confirmation form.
    let (mut jar, t) = w.sign_in(ALICE).await;
    let (s, rotated) = refresh(&w.srv, &w.http, app, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(s, 200, "{rotated}");
    let res = browser_logout(&w.srv, &w.http, &mut jar, &[], &[]).await;
    let csrf = csrf_of(&assert_confirmation("confirm", res, None).await);
    let res = w.post_logout(&jar, &[("csrf_token", &csrf)], &[]).await;
    assert_eq!(res.status(), 200);
    assert_session_cookie_expired("confirmed", &res, &jar);
    assert!(res.text().await.unwrap().contains("id=\"signed-out\""));
    let (s, body) = refresh(
        &w.srv,
        &w.http,
        app,
        rotated["refresh_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    // Through a hint.
    let (mut jar, t) = w.sign_in(ALICE).await;
    let res = browser_logout(
        &w.srv,
        &w.http,
        &mut jar,
        &[("id_token_hint", id_token(&t))],
        &[],
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_session_cookie_expired("hint", &res, &jar);
    let (s, body) = refresh(&w.srv, &w.http, app, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_may_post_its_logout_request_with_a_valid_hint() {
    let w = World::new(&[]);
    let (jar, t) = w.sign_in(ALICE).await;
    // Cross-site form post from the app, no csrf_token: the hint is the proof.
    let res = w
        .post_logout(
            &jar,
            &[
                ("id_token_hint", id_token(&t)),
                ("post_logout_redirect_uri", BYE),
                ("state", "p"),
            ],
            &[
                ("origin", "https://app.example.com"),
                ("sec-fetch-site", "cross-site"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), format!("{BYE}?state=p"));
    assert_session_cookie_expired("posted hint", &res, &jar);
    assert!(!w.alive(&t).await);
    // Without a valid hint, the same post is refused.
    let (jar, t) = w.sign_in(ALICE).await;
    let res = w
        .post_logout(
            &jar,
            &[
                ("id_token_hint", t["access_token"].as_str().unwrap()),
                ("client_id", &w.app.0),
            ],
            &[("origin", "https://app.example.com")],
        )
        .await;
    assert_eq!(res.status(), 403);
    assert!(w.alive(&t).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_id_token_is_still_a_valid_hint() {
    let w = World::new(&[]);
    let (mut jar, t) = w.sign_in(ALICE).await;
    // The same ID token as the server issued, but issued an hour ago and long expired: signed
    // with the server's own key (read from its database with its encryption key), so only
    // `exp` stands between it and a valid hint. No waiting for a real token to expire.
    let issued = id_token(&t);
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(issued.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    let mut claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(issued.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    claims["iat"] = (now - 3600).into();
    claims["exp"] = (now - 3300).into();
    let hint = sign_as_server(&w.srv, header["kid"].as_str().unwrap(), &claims).await;
    // Refresh keeps the session (and its access tokens) going past the ID token's life.
    let (s, fresh) = refresh(
        &w.srv,
        &w.http,
        w.app(),
        t["refresh_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(s, 200, "{fresh}");
    assert!(w.alive(&fresh).await);
    let res = browser_logout(
        &w.srv,
        &w.http,
        &mut jar,
        &[("id_token_hint", &hint), ("post_logout_redirect_uri", BYE)],
        &[],
    )
    .await;
    assert_eq!(res.status(), 302);
    assert_eq!(location(&res), BYE);
    assert_session_cookie_expired("expired hint", &res, &jar);
    assert!(!w.alive(&fresh).await);
}

// ---------------------------------------------------------------------------------------------
// A19: hostile JWTs
// ---------------------------------------------------------------------------------------------

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

fn der(tag: u8, body: &[u8]) -> Vec<u8> {
    let n = body.len();
    let mut out = vec![tag];
    if n < 128 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(body);
    out
}

fn der_uint(b: &[u8]) -> Vec<u8> {
    let mut v = b.to_vec();
    if v[0] & 0x80 != 0 {
        v.insert(0, 0);
    }
    der(0x02, &v)
}

fn pem(label: &str, der: &[u8]) -> String {
    let b = STANDARD.encode(der);
    let lines: Vec<&str> = b
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// The ways a public JWK is commonly written down, each a candidate HMAC secret for the
/// HS256-with-the-public-key confusion.
fn public_key_encodings(jwk: &Value, jwks_body: &[u8]) -> Vec<Vec<u8>> {
    let d = |k: &str| URL_SAFE_NO_PAD.decode(jwk[k].as_str().unwrap()).unwrap();
    let mut out = vec![
        serde_json::to_vec(jwk).unwrap(),
        serde_json::to_string_pretty(jwk).unwrap().into_bytes(),
        jwks_body.to_vec(),
    ];
    let spki = if jwk["kty"] == "RSA" {
        let pkcs1 = der(0x30, &[der_uint(&d("n")), der_uint(&d("e"))].concat());
        out.push(pkcs1.clone());
        out.push(pem("RSA PUBLIC KEY", &pkcs1).into_bytes());
        out.push(jwk["n"].as_str().unwrap().as_bytes().to_vec());
        out.push(d("n"));
        let alg = der(
            0x30,
            &[
                der(
                    0x06,
                    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01],
                ),
                der(0x05, &[]),
            ]
            .concat(),
        );
        der(
            0x30,
            &[alg, der(0x03, &[&[0u8][..], &pkcs1].concat())].concat(),
        )
    } else if jwk["kty"] == "OKP" {
        // Ed25519 (RFC 8037): the raw 32-byte key, and SubjectPublicKeyInfo with OID 1.3.101.112.
        let raw = d("x");
        out.push(jwk["x"].as_str().unwrap().as_bytes().to_vec());
        out.push(raw.clone());
        let alg = der(0x30, &der(0x06, &[0x2b, 0x65, 0x70]));
        der(
            0x30,
            &[alg, der(0x03, &[&[0u8][..], &raw].concat())].concat(),
        )
    } else {
        let point = [vec![4u8], d("x"), d("y")].concat();
        out.push(point.clone());
        let alg = der(
            0x30,
            &[
                der(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]),
                der(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]),
            ]
            .concat(),
        );
        der(
            0x30,
            &[alg, der(0x03, &[&[0u8][..], &point].concat())].concat(),
        )
    };
    let p = pem("PUBLIC KEY", &spki);
    out.push(spki);
    out.push(p.trim_end().as_bytes().to_vec());
    out.push(p.into_bytes());
    out
}

/// HMAC-SHA256 (RFC 2104) over the `sha2` crate, so that any key works, the empty one too.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    let mut k = if key.len() > 64 {
        sha2::Sha256::digest(key).to_vec()
    } else {
        key.to_vec()
    };
    k.resize(64, 0);
    let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
    let inner = sha2::Sha256::digest([pad(0x36), msg.to_vec()].concat());
    sha2::Sha256::digest([pad(0x5c), inner.to_vec()].concat()).to_vec()
}

/// An HS256 JWT with header `{"alg":"HS256","typ":"JWT","kid":kid}` keyed with `secret`.
fn hs256(kid: &str, claims: &Value, secret: &[u8]) -> String {
    let signing_input = format!(
        "{}.{}",
        b64(&json!({"alg": "HS256", "typ": "JWT", "kid": kid})),
        b64(claims)
    );
    let tag = hmac_sha256(secret, signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// Every hostile token of case A19, each with a label: unsigned (`none` in three spellings),
/// empty signatures, HS256 keyed with our public keys, `kid` tricks, and `jku`/`x5u` headers
/// (signed by an attacker's own key, whose JWKS lives at those URLs).
fn hostile_tokens(
    jwks: &Value,
    jwks_body: &[u8],
    claims: &Value,
    fetch_probe: &str,
) -> Vec<(String, String)> {
    let body = b64(claims);
    let mut out = Vec::new();
    let keys = jwks["keys"].as_array().unwrap();
    let rs_kid = keys.iter().find(|k| k["kty"] == "RSA").unwrap()["kid"]
        .as_str()
        .unwrap();
    let es_kid = keys.iter().find(|k| k["kty"] == "EC").unwrap()["kid"]
        .as_str()
        .unwrap();
    let ed_kid = keys.iter().find(|k| k["kty"] == "OKP").unwrap()["kid"]
        .as_str()
        .unwrap();
    for alg in ["none", "None", "NONE"] {
        out.push((
            format!("alg {alg}"),
            format!("{}.{body}.", b64(&json!({"alg": alg}))),
        ));
        out.push((
            format!("alg {alg} with our kid"),
            format!(
                "{}.{body}.",
                b64(&json!({"alg": alg, "typ": "JWT", "kid": rs_kid}))
            ),
        ));
    }
    out.push((
        "RS256, empty signature".into(),
        format!(
            "{}.{body}.",
            b64(&json!({"alg": "RS256", "typ": "JWT", "kid": rs_kid}))
        ),
    ));
    out.push((
        "ES256, empty signature".into(),
        format!(
            "{}.{body}.",
            b64(&json!({"alg": "ES256", "typ": "JWT", "kid": es_kid}))
        ),
    ));
    // The Ed25519 key signs access tokens only: an EdDSA "ID token" (empty signature, or
    // named with the RFC 9864 spelling) is no hint.
    for alg in ["EdDSA", "Ed25519"] {
        out.push((
            format!("{alg}, empty signature, our Ed25519 kid"),
            format!(
                "{}.{body}.",
                b64(&json!({"alg": alg, "typ": "JWT", "kid": ed_kid}))
            ),
        ));
    }
    for jwk in keys {
        for (i, secret) in public_key_encodings(jwk, jwks_body).iter().enumerate() {
            out.push((
                format!("HS256 keyed with {} encoding {i}", jwk["kty"]),
                hs256(jwk["kid"].as_str().unwrap(), claims, secret),
            ));
        }
    }
    for kid in [
        "../../dev/null",
        "x' OR '1'='1",
        "/dev/null",
        "'; DROP TABLE signing_keys; --",
    ] {
        out.push((
            format!("kid {kid:?}, HS256 empty key"),
            hs256(kid, claims, b""),
        ));
        out.push((
            format!("kid {kid:?}, HS256 key 1"),
            hs256(kid, claims, b"1"),
        ));
        out.push((
            format!("kid {kid:?}, RS256 empty signature"),
            format!(
                "{}.{body}.",
                b64(&json!({"alg": "RS256", "typ": "JWT", "kid": kid}))
            ),
        ));
    }
    // An attacker's own key, "published" at the URLs the header names.
    let attacker = rcgen::KeyPair::generate().unwrap();
    let key = jsonwebtoken::EncodingKey::from_ec_der(&attacker.serialize_der());
    for (kid, url) in [
        ("attacker", "https://evil.example/jwks.json"),
        (es_kid, "https://evil.example/jwks.json"),
        ("attacker", fetch_probe),
        (es_kid, fetch_probe),
    ] {
        for field in ["jku", "x5u"] {
            let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
            h.kid = Some(kid.into());
            match field {
                "jku" => h.jku = Some(url.into()),
                _ => h.x5u = Some(url.into()),
            }
            out.push((
                format!("{field} {url} kid {kid}"),
                jsonwebtoken::encode(&h, claims, &key).unwrap(),
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a19_hostile_jwts_are_refused_as_request_objects_client_assertions_and_hints() {
    let w = World::new(&[]);
    let (srv, http) = (&w.srv, &w.http);
    // A listener that would see any fetch of a URL from a token header.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.set_nonblocking(true).unwrap();
    let probe_url = format!(
        "https://127.0.0.1:{}/jwks.json",
        probe.local_addr().unwrap().port()
    );

    let (mut jar, t) = w.sign_in(ALICE).await;
    let real = id_token(&t).to_owned();
    let jwks_body = http
        .get(srv.url("/jwks"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let jwks: Value = serde_json::from_slice(&jwks_body).unwrap();
    // The real ID token's claims (so only the signature is wrong), plus what a request object
    // and a client assertion would carry, trying to override the query.
    let mut claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(real.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    let token_url = srv.url("/token");
    for (k, v) in [
        ("client_id", json!(w.seed.web_id)),
        ("response_type", json!("code")),
        ("redirect_uri", json!("https://evil.example/cb")),
        ("scope", json!("openid admin")),
        ("state", json!("evil")),
        ("nonce", json!("evil")),
        ("jti", json!("j1")),
    ] {
        claims[k] = v;
    }
    let tokens = hostile_tokens(&jwks, &jwks_body, &claims, &probe_url);
    assert!(tokens.len() > 30);
    let (_v, c) = pkce();
    for (what, jwt) in &tokens {
        // As a request object: refused, and its claims override nothing.
        let res = http
            .get(authorize_url(
                srv,
                &w.seed.web_id,
                CB,
                &c,
                &[("request", jwt)],
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 302, "{what}");
        let loc = location(&res);
        assert!(loc.starts_with(CB), "{what}: {loc}");
        let q = query_of(&loc);
        assert_eq!(q["error"], "request_not_supported", "{what}");
        assert_eq!(q["state"], "s1", "{what}");
        assert!(!q.contains_key("code"), "{what}");

        // As a client assertion: client authentication fails (assertions are not a supported
        // method: a confidential client must present its secret).
        let mut assertion = vec![
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", jwt.as_str()),
        ];
        assertion.push(("client_id", w.seed.machine_id.as_str()));
        let res = http.post(&token_url).form(&assertion).send().await.unwrap();
        assert_eq!(res.status(), 401, "{what}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client", "{what}");
        assert!(body.get("access_token").is_none(), "{what}");

        // As an id_token_hint: no hint, so the confirmation page, and the session stays.
        let res = browser_logout(srv, http, &mut jar, &[("id_token_hint", jwt)], &[]).await;
        assert_confirmation(what, res, None).await;
        // With a redirect and nothing else naming the client: refused, nothing ends.
        let res = browser_logout(
            srv,
            http,
            &mut jar,
            &[("id_token_hint", jwt), ("post_logout_redirect_uri", BYE)],
            &[],
        )
        .await;
        assert_refused(what, res).await;
        // A hostile hint never redirects, even with a client_id that has this URI: the user
        // confirms first.
        let res = browser_logout(
            srv,
            http,
            &mut jar,
            &[
                ("id_token_hint", jwt),
                ("client_id", &w.app.0),
                ("post_logout_redirect_uri", BYE),
            ],
            &[],
        )
        .await;
        assert_confirmation(what, res, Some("https://app.example.com")).await;
    }
    // Without client_id the assertion identifies no client: failed client authentication.
    let res = http
        .post(&token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", tokens[0].1.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );

    assert!(w.alive(&t).await, "a hostile hint ended the session");
    match probe.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the server fetched a URL from a token header: {other:?}"),
    }
    // The control: the real token, with the same claims the forgeries carried, ends it.
    let res = browser_logout(srv, http, &mut jar, &[("id_token_hint", &real)], &[]).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("id=\"signed-out\""));
    assert!(!w.alive(&t).await);
    let log = srv.log();
    assert!(log.contains("logout.hint_refused"), "refusals are logged");
    assert!(!log.contains(&real), "a token was written to the log");
}

#[test]
fn the_forging_hmac_is_real_hmac_sha256() {
    // RFC 4231 test case 2, so the HS256 forgeries above are what an attacker would send.
    let tag = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

/// Signs `claims` as an ID token with the server's stored key `kid` (decrypted with the test
/// server's encryption key).
async fn sign_as_server(srv: &TestServer, kid: &str, claims: &Value) -> String {
    use portcullis_core::store::SigningKeyStore;
    let store = portcullis_store::connect(srv.db_path().to_str().unwrap())
        .await
        .unwrap();
    let stored = store
        .list_signing_keys()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.kid.as_str() == kid)
        .unwrap();
    let enc = portcullis_core::crypto::Encrypter::new(
        &portcullis_core::crypto::KeyBytes::from_hex(&srv.env["PORTCULLIS_ENCRYPTION_KEY"])
            .unwrap(),
        None,
    )
    .unwrap();
    let key = portcullis_core::keys::load(&stored, &enc).unwrap();
    portcullis_core::jwt::sign(&key, portcullis_core::jwt::TYP_ID_TOKEN, claims).unwrap()
}
