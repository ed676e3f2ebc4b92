//! OpenID Connect Back-Channel Logout against the real server: a real HTTPS receiver (the
//! test's own TLS listener, with a certificate from the test CA, which the server trusts through
//! `PORTCULLIS_OUTBOUND_CA_FILE`) records every POST. Checks who is notified (only the clients
//! that received tokens in the session, once each), the logout token (header, signature against
//! `/jwks`, claims), retries with a fresh token, redirects not followed, link-local URIs refused,
//! and sessions ended by the CLI and by refresh-token theft.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::receiver::Receiver;
use common::*;
use serde_json::Value;

const ALICE: &str = "alice@example.com";
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// A server that trusts the test CA for outbound calls and polls and retries quickly.
fn server() -> TestServer {
    TestServer::start_with(&[
        ("PORTCULLIS_OUTBOUND_CA_FILE", "ca.pem"),
        ("PORTCULLIS_BACKCHANNEL_POLL_MS", "100"),
        ("PORTCULLIS_BACKCHANNEL_RETRY_BASE", "1"),
        ("PORTCULLIS_REFRESH_REUSE_GRACE", "0"),
    ])
}

fn part(jwt: &str, i: usize) -> Value {
    let p = jwt.split('.').nth(i).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
}

/// Checks a logout token for `client_id` about the session and user of `id_token`, with the
/// `jsonwebtoken` crate against `/jwks`; returns its claims.
async fn check_logout_token(
    srv: &TestServer,
    http: &reqwest::Client,
    token: &str,
    client_id: &str,
    id_token: &str,
) -> Value {
    let header = part(token, 0);
    assert_eq!(header["typ"], "logout+jwt", "{header}");
    let jwks: Value = get_json(http, &srv.url("/jwks")).await;
    let kid = header["kid"].as_str().unwrap();
    let jwk_json = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap_or_else(|| panic!("kid {kid} not in JWKS"));
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk_json.clone()).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
    let alg: jsonwebtoken::Algorithm = header["alg"].as_str().unwrap().parse().unwrap();
    // The same algorithm as the client's ID tokens.
    assert_eq!(header["alg"], part(id_token, 0)["alg"]);
    let mut v = jsonwebtoken::Validation::new(alg);
    v.set_audience(&[client_id]);
    v.set_issuer(&[&srv.issuer]);
    v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    let claims = jsonwebtoken::decode::<Value>(token, &key, &v)
        .expect("the logout token verifies against the JWKS")
        .claims;
    let idt = part(id_token, 1);
    let obj = claims.as_object().unwrap();
    for name in ["iss", "aud", "iat", "exp", "jti", "events", "sid", "sub"] {
        assert!(obj.contains_key(name), "{name} missing: {claims}");
    }
    assert!(!obj.contains_key("nonce"), "{claims}");
    assert_eq!(claims["aud"], client_id);
    assert_eq!(claims["sid"], idt["sid"]);
    assert_eq!(claims["sub"], idt["sub"]);
    assert_eq!(claims["events"], serde_json::json!({ EVENT: {} }));
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert!(exp > iat && exp - iat <= 120, "{claims}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((iat - now).abs() <= 30, "{claims}");
    claims
}

/// A first-party confidential client (silent SSO) with a back-channel logout URI on `port`.
fn bc_client(srv: &TestServer, name: &str, port: u16, path: &str) -> (String, String) {
    create_client(
        srv,
        name,
        CB,
        &[
            "--backchannel-logout-uri",
            &format!("https://localhost:{port}{path}"),
        ],
    )
}

/// Single sign-on with a second client in a browser that is signed in: the code comes back at
/// once; returns the token response.
async fn sso_tokens(
    srv: &TestServer,
    http: &reqwest::Client,
    jar: &mut Jar,
    client: (&str, &str),
) -> Value {
    let (v, c) = pkce();
    let res =
        authorize_and_resume(srv, http, jar, &authorize_url(srv, client.0, CB, &c, &[])).await;
    assert_eq!(res.status(), 302, "silent SSO (a redirect answering a GET)");
    let code = query_of(res.headers()["location"].to_str().unwrap())["code"].clone();
    let (s, t, _) = token_request(
        srv,
        http,
        client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
            ("code_verifier", &v),
        ],
    )
    .await;
    assert_eq!(s, 200, "{t}");
    t
}

async fn rp_logout(srv: &TestServer, http: &reqwest::Client, jar: &mut Jar, id_token: &str) {
    let res = browser_logout(srv, http, jar, &[("id_token_hint", id_token)], &[]).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("id=\"signed-out\""));
}

/// Waits (up to 10 s) until the server log contains `needle`.
async fn wait_log(srv: &TestServer, needle: &str) {
    for _ in 0..200 {
        if srv.log().contains(needle) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("log lacks {needle}: {}", srv.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_notifies_each_client_that_received_tokens_once() {
    let srv = server();
    srv.seed();
    let http = srv.http();
    let (rx, port) = Receiver::start(&srv).await;
    let a = bc_client(&srv, "RP A", port, "/a");
    let b = bc_client(&srv, "RP B", port, "/b?tenant=b");
    let c = bc_client(&srv, "RP C", port, "/c");

    let discovery: Value = get_json(&http, &srv.url("/.well-known/openid-configuration")).await;
    assert_eq!(discovery["backchannel_logout_supported"], true);
    assert_eq!(discovery["backchannel_logout_session_supported"], true);

    // A and B receive tokens in one browser session; C has a URI but got nothing there.
    let mut jar = Jar::default();
    let ta = sign_in_for_tokens(&srv, &http, &mut jar, (&a.0, &a.1), CB, ALICE).await;
    let tb = sso_tokens(&srv, &http, &mut jar, (&b.0, &b.1)).await;
    assert_eq!(
        part(ta["id_token"].as_str().unwrap(), 1)["sid"],
        part(tb["id_token"].as_str().unwrap(), 1)["sid"],
        "one session"
    );
    rp_logout(&srv, &http, &mut jar, ta["id_token"].as_str().unwrap()).await;

    let got_a = rx.wait_for("/a", 1).await;
    let got_b = rx.wait_for("/b?tenant=b", 1).await;
    // Give a duplicate, or a notice to C, the time to show up.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(rx.posts("/a").len(), 1, "{:?}", rx.all());
    assert_eq!(rx.posts("/b?tenant=b").len(), 1, "{:?}", rx.all());
    assert!(
        rx.posts("/c").is_empty(),
        "C received no tokens: {:?}",
        rx.all()
    );
    for (post, client, t) in [(&got_a[0], &a, &ta), (&got_b[0], &b, &tb)] {
        assert_eq!(post.content_type, "application/x-www-form-urlencoded");
        check_logout_token(
            &srv,
            &http,
            &post.logout_token(),
            &client.0,
            t["id_token"].as_str().unwrap(),
        )
        .await;
    }
    wait_log(&srv, "logout.backchannel_sent").await;

    // A receiver that fails once gets the notice again, with a freshly signed token.
    rx.script("/c", &[500]);
    let mut jar = Jar::default();
    let tc = sign_in_for_tokens(&srv, &http, &mut jar, (&c.0, &c.1), CB, ALICE).await;
    rp_logout(&srv, &http, &mut jar, tc["id_token"].as_str().unwrap()).await;
    let got_c = rx.wait_for("/c", 2).await;
    let idt = tc["id_token"].as_str().unwrap();
    let first = check_logout_token(&srv, &http, &got_c[0].logout_token(), &c.0, idt).await;
    let second = check_logout_token(&srv, &http, &got_c[1].logout_token(), &c.0, idt).await;
    assert_ne!(first["jti"], second["jti"], "re-signed per attempt");
    assert_eq!(first["sid"], second["sid"]);
    wait_log(&srv, "logout.backchannel_retry").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.posts("/c").len(), 2, "delivered: no third attempt");

    // A redirect answer is a failure, and its target is never contacted.
    let r = bc_client(&srv, "RP R", port, "/r");
    rx.script("/r", &[302, 302, 302, 302, 302]);
    let mut jar = Jar::default();
    let tr = sign_in_for_tokens(&srv, &http, &mut jar, (&r.0, &r.1), CB, ALICE).await;
    rp_logout(&srv, &http, &mut jar, tr["id_token"].as_str().unwrap()).await;
    rx.wait_for("/r", 2).await;
    wait_log(&srv, "the receiver answered 302").await;
    assert!(rx.posts("/redirected-here").is_empty(), "{:?}", rx.all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_ended_by_the_cli_or_by_theft_are_notified() {
    let srv = server();
    srv.seed();
    let http = srv.http();
    let (rx, port) = Receiver::start(&srv).await;
    let a = bc_client(&srv, "RP A", port, "/a");

    // A link-local (cloud metadata) URI is refused at registration.
    let out = srv.cli_raw(
        &[
            "clients",
            "create",
            "--name",
            "Metadata",
            "--redirect-uri",
            CB,
            "--backchannel-logout-uri",
            "https://169.254.169.254/latest/meta-data",
        ],
        None,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("link-local or cloud metadata"), "{err}");
    for bad in [
        "http://localhost:1/bc",
        "https://localhost/bc#frag",
        "https://user:pw@localhost/bc",
    ] {
        let out = srv.cli_raw(
            &[
                "clients",
                "create",
                "--name",
                "Bad",
                "--redirect-uri",
                CB,
                "--backchannel-logout-uri",
                bad,
            ],
            None,
        );
        assert!(!out.status.success(), "{bad}");
    }

    // `portcullis sessions revoke`.
    let mut jar = Jar::default();
    let t = sign_in_for_tokens(&srv, &http, &mut jar, (&a.0, &a.1), CB, ALICE).await;
    let sid = part(t["id_token"].as_str().unwrap(), 1)["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    srv.cli(&["sessions", "revoke", &sid], None);
    let got = rx.wait_for("/a", 1).await;
    let claims = check_logout_token(
        &srv,
        &http,
        &got[0].logout_token(),
        &a.0,
        t["id_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(claims["sid"], sid.as_str());

    // Refresh-token theft ends the session inside the rotation.
    let mut jar = Jar::default();
    let t = sign_in_for_tokens(&srv, &http, &mut jar, (&a.0, &a.1), CB, ALICE).await;
    let old = t["refresh_token"].as_str().unwrap().to_owned();
    let (s, _) = refresh(&srv, &http, (&a.0, &a.1), &old).await;
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (s, body) = refresh(&srv, &http, (&a.0, &a.1), &old).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
    wait_log(&srv, "token.reuse_detected").await;
    let got = rx.wait_for("/a", 2).await;
    let claims = check_logout_token(
        &srv,
        &http,
        &got[1].logout_token(),
        &a.0,
        t["id_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(
        claims["sid"],
        part(t["id_token"].as_str().unwrap(), 1)["sid"]
    );

    // `portcullis sessions revoke-all` ends the rest.
    let mut jar = Jar::default();
    let t = sign_in_for_tokens(&srv, &http, &mut jar, (&a.0, &a.1), CB, ALICE).await;
    srv.cli(&["sessions", "revoke-all", ALICE], None);
    let got = rx.wait_for("/a", 3).await;
    check_logout_token(
        &srv,
        &http,
        &got[2].logout_token(),
        &a.0,
        t["id_token"].as_str().unwrap(),
    )
    .await;
}
