//! Router-level tests, without a socket: the whole header set on every kind of answer the
//! server gives (2xx, 3xx, 4xx, 5xx, HEAD), through the real layers and a real SQLite store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::{Request, Response};
use portcullis_core::crypto::KeyBytes;
use portcullis_core::ids::ClientId;
use portcullis_core::model::{Client, ClientKind, GrantType, SigningAlg};
use portcullis_core::store::ClientStore;
use portcullis_server::{app, build_state, config, open_store};
use tower::ServiceExt;

const HOST: &str = "id.example.com";

struct World {
    _dir: tempfile::TempDir,
    app: Router,
    store: portcullis_store::SqliteStore,
    client: ClientId,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let vars: BTreeMap<String, String> = [
        ("PORTCULLIS_ISSUER", format!("https://{HOST}")),
        ("PORTCULLIS_ENCRYPTION_KEY", KeyBytes::generate_hex()),
        ("PORTCULLIS_TOKEN_HASH_KEY", KeyBytes::generate_hex()),
        ("PORTCULLIS_TLS_CERT", "/unused/cert.pem".into()),
        ("PORTCULLIS_TLS_KEY", "/unused/key.pem".into()),
        ("PORTCULLIS_DATA_DIR", dir.path().display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let config = config::load(&vars, false).unwrap();
    let store = open_store(&config).await.unwrap();
    let client = Client {
        id: ClientId::generate(),
        name: "App".into(),
        kind: ClientKind::Public,
        redirect_uris: vec!["https://app.example.com/cb".into()],
        post_logout_redirect_uris: vec![],
        grants: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        apis: vec![],
        scopes: vec![],
        first_party: false,
        id_token_alg: SigningAlg::RS256,
        disabled: false,
        backchannel_logout_uri: None,
        secret_hashes: vec![],
        policy: Default::default(),
        created_at: 0,
    };
    store.create_client(&client).await.unwrap();
    let state = build_state(&config, store.clone()).await.unwrap();
    let routes = app::routes(&state).route(
        "/test/panic",
        get(|| async {
            panic!("a handler bug");
            #[allow(unreachable_code)]
            ""
        }),
    );
    World {
        _dir: dir,
        app: app::layered(routes, state),
        store,
        client: client.id,
    }
}

async fn send(app: &Router, req: Request<Body>) -> Response<Body> {
    app.clone().oneshot(req).await.unwrap()
}

fn req(method: &str, uri: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("host", HOST)
}

fn assert_header_set(what: &str, res: &Response<Body>) {
    let h = res.headers();
    let get = |n: &str| {
        h.get(n)
            .unwrap_or_else(|| panic!("{what} ({}): no {n}", res.status()))
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        get("strict-transport-security"),
        "max-age=31536000; includeSubDomains",
        "{what}"
    );
    assert_eq!(get("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(get("cross-origin-opener-policy"), "same-origin", "{what}");
    assert_eq!(get("x-frame-options"), "DENY", "{what}");
    assert_eq!(
        h.get_all("content-security-policy").iter().count(),
        1,
        "{what}"
    );
    let csp = get("content-security-policy");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    let html = h
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap().starts_with("text/html"));
    if html {
        assert!(
            csp.starts_with("default-src 'self'; script-src 'nonce-"),
            "{what}: {csp}"
        );
        assert_eq!(get("referrer-policy"), "same-origin", "{what}");
        assert_eq!(get("cache-control"), "no-store", "{what}");
    } else {
        assert!(csp.starts_with("default-src 'none'"), "{what}: {csp}");
        assert_eq!(get("referrer-policy"), "no-referrer", "{what}");
        assert!(h.contains_key("cache-control"), "{what}");
    }
}

#[tokio::test]
async fn every_answer_carries_the_header_set() {
    let w = world().await;
    let authorize_bad_type = format!(
        "/authorize?response_type=token&client_id={}&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb&state=s",
        w.client
    );
    let cases: Vec<(&str, Request<Body>, u16)> = vec![
        ("index", req("GET", "/").body(Body::empty()).unwrap(), 200),
        (
            "HEAD index",
            req("HEAD", "/").body(Body::empty()).unwrap(),
            200,
        ),
        (
            "discovery",
            req("GET", "/.well-known/openid-configuration")
                .body(Body::empty())
                .unwrap(),
            200,
        ),
        (
            "HEAD jwks",
            req("HEAD", "/jwks").body(Body::empty()).unwrap(),
            200,
        ),
        (
            "stylesheet",
            req("GET", "/static/portcullis.css")
                .body(Body::empty())
                .unwrap(),
            200,
        ),
        (
            "favicon",
            req("GET", "/favicon.ico").body(Body::empty()).unwrap(),
            204,
        ),
        (
            "error redirect",
            req("GET", &authorize_bad_type).body(Body::empty()).unwrap(),
            302,
        ),
        (
            "error redirect after POST",
            req("POST", "/authorize")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(
                    authorize_bad_type
                        .trim_start_matches("/authorize?")
                        .to_owned(),
                ))
                .unwrap(),
            303,
        ),
        (
            "unknown client page",
            req("GET", "/authorize?client_id=cl_nope")
                .body(Body::empty())
                .unwrap(),
            400,
        ),
        (
            "expired flow page",
            req("GET", "/authorize/resume").body(Body::empty()).unwrap(),
            400,
        ),
        (
            "bad token request",
            req("POST", "/token").body(Body::empty()).unwrap(),
            400,
        ),
        (
            "userinfo without token",
            req("GET", "/userinfo").body(Body::empty()).unwrap(),
            401,
        ),
        (
            "cross-site login post",
            req("POST", "/login")
                .header("origin", "https://evil.example")
                .body(Body::empty())
                .unwrap(),
            403,
        ),
        (
            "not found",
            req("GET", "/nope").body(Body::empty()).unwrap(),
            404,
        ),
        (
            "HEAD not found",
            req("HEAD", "/nope").body(Body::empty()).unwrap(),
            404,
        ),
        (
            "wrong method",
            req("DELETE", "/token").body(Body::empty()).unwrap(),
            405,
        ),
        (
            "oversized body",
            req("POST", "/token")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(vec![b'a'; app::MAX_BODY + 1]))
                .unwrap(),
            413,
        ),
        (
            "other host",
            Request::builder()
                .uri("/")
                .header("host", "evil.example")
                .body(Body::empty())
                .unwrap(),
            421,
        ),
        (
            "panicking handler",
            req("GET", "/test/panic").body(Body::empty()).unwrap(),
            500,
        ),
        (
            "long target",
            req("GET", &format!("/?x={}", "a".repeat(app::MAX_URI)))
                .body(Body::empty())
                .unwrap(),
            414,
        ),
        (
            "many header fields",
            (0..=app::MAX_HEADERS)
                .fold(req("GET", "/"), |r, i| r.header(format!("x-h{i}"), "1"))
                .body(Body::empty())
                .unwrap(),
            431,
        ),
        (
            "two Host headers",
            req("GET", "/")
                .header("host", "evil.example")
                .body(Body::empty())
                .unwrap(),
            400,
        ),
    ];
    for (what, request, want) in cases {
        let res = send(&w.app, request).await;
        assert_eq!(res.status().as_u16(), want, "{what}");
        assert_header_set(what, &res);
    }
    // A client that tried the Authorization header gets the Basic challenge with its 401,
    // whatever scheme it tried (RFC 6749 §5.2).
    for auth in ["Bearer x", "Basic !!!", "Basic Y2xfeDp5"] {
        let res = send(
            &w.app,
            req("POST", "/token")
                .header("authorization", auth)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from("grant_type=client_credentials"))
                .unwrap(),
        )
        .await;
        assert_eq!(res.status(), 401, "{auth}");
        assert_eq!(
            res.headers()["www-authenticate"],
            "Basic realm=\"portcullis\"",
            "{auth}"
        );
    }
    // A storage outage: the answer is an error, never a panic, and still carries the set.
    w.store.pool().close().await;
    let uncached = ClientId::generate();
    let res = send(
        &w.app,
        req("GET", &format!("/authorize?client_id={uncached}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert!(res.status().is_server_error(), "{}", res.status());
    assert_header_set("storage outage", &res);
}
