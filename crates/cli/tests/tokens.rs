//! Token management against the real server: refresh families and theft detection (case A09),
//! revocation (RFC 7009), introspection (RFC 7662), offline tokens, and the shared limit on
//! failed client authentication.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::Value;

const ALICE: &str = "alice@example.com";

fn web(seed: &Seed) -> (&str, &str) {
    (&seed.web_id, &seed.web_secret)
}

/// Signs alice in through the web client and returns its tokens (access, refresh, ID).
async fn web_tokens(srv: &TestServer, http: &reqwest::Client, seed: &Seed) -> Value {
    let t = signed_in_tokens(srv, http, &seed.web_id, web(seed)).await;
    assert!(t["refresh_token"].is_string(), "{t}");
    t
}

async fn refresh(srv: &TestServer, http: &reqwest::Client, seed: &Seed, rt: &str) -> (u16, Value) {
    let (s, v, _) = token_request(
        srv,
        http,
        web(seed),
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
    .await;
    (s, v)
}

async fn introspect(
    srv: &TestServer,
    http: &reqwest::Client,
    auth: (&str, &str),
    token: &str,
) -> Value {
    let (s, v, h) = post_form(srv, http, "/introspect", Some(auth), &[("token", token)]).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(h["cache-control"], "no-store");
    v
}

async fn revoke(
    srv: &TestServer,
    http: &reqwest::Client,
    auth: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> u16 {
    post_form(srv, http, "/revoke", auth, form).await.0
}

async fn userinfo_status(srv: &TestServer, http: &reqwest::Client, at: &str) -> u16 {
    http.get(srv.url("/userinfo"))
        .bearer_auth(at)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// An authorization URL asking for `openid offline_access`.
fn offline_url(srv: &TestServer, client: &str, challenge: &str, extra: &[(&str, &str)]) -> String {
    let url = authorize_url(srv, client, CB, challenge, extra);
    assert!(url.contains("scope=openid+email"));
    url.replace("scope=openid+email", "scope=openid+offline_access")
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a09_refresh_reuse_after_the_grace_window_revokes_the_family_and_the_session() {
    // Grace 0: every reuse of a rotated token is theft (the default 2 s is covered below).
    let srv = TestServer::start_with(&[("PORTCULLIS_REFRESH_REUSE_GRACE", "0")]);
    let seed = srv.seed();
    let http = srv.http();
    let t0 = web_tokens(&srv, &http, &seed).await;
    let rt0 = s(&t0, "refresh_token");
    let (st, t1) = refresh(&srv, &http, &seed, rt0).await;
    assert_eq!(st, 200, "{t1}");
    let (at1, rt1) = (s(&t1, "access_token"), s(&t1, "refresh_token"));
    assert_ne!(rt1, rt0, "every refresh rotates");
    assert_eq!(
        introspect(&srv, &http, web(&seed), at1).await["active"],
        true
    );
    // Times are whole seconds: with a grace of 0, reuse is theft from the next second on.
    next_second().await;

    // The replay: refused, and the whole family with its session is revoked.
    let (st, e) = refresh(&srv, &http, &seed, rt0).await;
    assert_eq!((st, s(&e, "error")), (400, "invalid_grant"), "{e}");
    let (st, e) = refresh(&srv, &http, &seed, rt1).await;
    assert_eq!((st, s(&e, "error")), (400, "invalid_grant"), "{e}");
    for at in [at1, s(&t0, "access_token")] {
        assert_eq!(
            introspect(&srv, &http, web(&seed), at).await,
            serde_json::json!({"active": false})
        );
        assert_eq!(userinfo_status(&srv, &http, at).await, 401);
    }
    assert!(
        srv.log().contains("token.reuse_detected"),
        "the theft is logged as an audit event"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a09_parallel_refreshes_with_one_token_have_exactly_one_winner() {
    let srv = TestServer::start();
    let seed = srv.seed();
    let http = srv.http();
    let t = web_tokens(&srv, &http, &seed).await;
    let rt = s(&t, "refresh_token").to_owned();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (srv_url, http, id, secret, rt) = (
            srv.url("/token"),
            http.clone(),
            seed.web_id.clone(),
            seed.web_secret.clone(),
            rt.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let res = http
                .post(srv_url)
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", "refresh_token"), ("refresh_token", &rt)])
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            200 => winners.push(body),
            400 => assert_eq!(s(&body, "error"), "invalid_grant", "{body}"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one refresh wins");
    // Within the default 2 s grace the losers were only refused: the winner's chain lives on.
    let next = s(&winners[0], "refresh_token");
    let (st, body) = refresh(&srv, &http, &seed, next).await;
    assert_eq!(st, 200, "{body}");
    // And the original token, replayed inside the window, is still just invalid_grant.
    let (st, e) = refresh(&srv, &http, &seed, &rt).await;
    assert_eq!((st, s(&e, "error")), (400, "invalid_grant"));
    assert!(!srv.log().contains("token.reuse_detected"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_is_immediate_owner_only_and_survives_a_restart() {
    let mut srv = TestServer::start();
    let seed = srv.seed();
    let http = srv.http();
    let meta: Value = get_json(&http, &srv.url("/.well-known/openid-configuration")).await;
    assert_eq!(meta["revocation_endpoint"], srv.url("/revoke"));
    assert_eq!(meta["introspection_endpoint"], srv.url("/introspect"));

    let t = web_tokens(&srv, &http, &seed).await;
    let (at, rt) = (s(&t, "access_token"), s(&t, "refresh_token"));
    assert_eq!(userinfo_status(&srv, &http, at).await, 200);

    // Another client cannot revoke them: same answer as for an unknown token, nothing changes.
    let machine = (seed.machine_id.as_str(), seed.machine_secret.as_str());
    for token in [at, rt, "pcr_unknown", "not-a-token"] {
        assert_eq!(
            revoke(&srv, &http, Some(machine), &[("token", token)]).await,
            200
        );
    }
    assert_eq!(
        introspect(&srv, &http, web(&seed), at).await["active"],
        true
    );

    // The owner revokes the access token: dead at once for introspection and userinfo.
    let res = http
        .post(srv.url("/revoke"))
        .basic_auth(&seed.web_id, Some(&seed.web_secret))
        .form(&[("token", at), ("token_type_hint", "access_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert!(res.text().await.unwrap().is_empty());
    assert_eq!(
        introspect(&srv, &http, web(&seed), at).await["active"],
        false
    );
    assert_eq!(userinfo_status(&srv, &http, at).await, 401);
    // Revoking twice, or with a hint of the other kind or an unknown one, is still a 200.
    for hint in ["refresh_token", "id_token", "access_token"] {
        assert_eq!(
            revoke(
                &srv,
                &http,
                Some(web(&seed)),
                &[("token", at), ("token_type_hint", hint)]
            )
            .await,
            200
        );
    }

    // The refresh token: rotate once, then revoke the new link; the family and the access
    // tokens it produced end.
    let (st, t2) = refresh(&srv, &http, &seed, rt).await;
    assert_eq!(st, 200);
    let (at2, rt2) = (s(&t2, "access_token"), s(&t2, "refresh_token"));
    assert_eq!(
        revoke(&srv, &http, Some(web(&seed)), &[("token", rt2)]).await,
        200
    );
    let (st, e) = refresh(&srv, &http, &seed, rt2).await;
    assert_eq!((st, s(&e, "error")), (400, "invalid_grant"));
    assert_eq!(
        introspect(&srv, &http, web(&seed), at2).await["active"],
        false
    );
    assert_eq!(userinfo_status(&srv, &http, at2).await, 401);

    // Revocation is stored: it survives a restart.
    srv.restart();
    assert_eq!(
        introspect(&srv, &http, web(&seed), at).await["active"],
        false
    );
    assert_eq!(userinfo_status(&srv, &http, at2).await, 401);

    // Bad requests: a missing token is invalid_request; no credentials is invalid_client
    // (and counts against the address).
    let (st, e, _) = post_form(&srv, &http, "/revoke", Some(web(&seed)), &[]).await;
    assert_eq!((st, s(&e, "error")), (400, "invalid_request"));
    let (st, e, h) = post_form(&srv, &http, "/revoke", None, &[("token", rt2)]).await;
    assert_eq!((st, s(&e, "error")), (401, "invalid_client"), "{e}");
    assert!(
        h.contains_key("ratelimit"),
        "counted as a failed client authentication"
    );
    let (st, e, h) = post_form(
        &srv,
        &http,
        "/revoke",
        Some((&seed.web_id, "pcs_wrong")),
        &[("token", rt2)],
    )
    .await;
    assert_eq!((st, s(&e, "error")), (401, "invalid_client"));
    assert!(h.contains_key("www-authenticate"));
    let (st, e, _) = post_form(
        &srv,
        &http,
        "/revoke",
        Some(web(&seed)),
        &[("token", "a"), ("token", "b")],
    )
    .await;
    assert_eq!((st, s(&e, "error")), (400, "invalid_request"), "{e}");
    let long = "x".repeat(9000);
    let (st, _, _) = post_form(
        &srv,
        &http,
        "/revoke",
        Some(web(&seed)),
        &[("token", &long)],
    )
    .await;
    assert_eq!(st, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_clients_revoke_with_their_client_id_and_only_their_own_tokens() {
    let srv = TestServer::start();
    let seed = srv.seed();
    let http = srv.http();
    let (v, c) = pkce();
    let code = get_code(&srv, &http, &seed.public_id, CB, &c).await;
    let (st, t, _) = post_form(
        &srv,
        &http,
        "/token",
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
    assert_eq!(st, 200, "{t}");
    let rt = s(&t, "refresh_token");
    let web_t = web_tokens(&srv, &http, &seed).await;
    let public_id = [("client_id", seed.public_id.as_str())];

    // The public client cannot touch the web client's refresh token.
    let web_rt = s(&web_t, "refresh_token");
    let form = [public_id[0], ("token", web_rt)];
    assert_eq!(revoke(&srv, &http, None, &form).await, 200);
    let (st, _) = refresh(&srv, &http, &seed, web_rt).await;
    assert_eq!(st, 200, "another client's token is untouched");

    // Its own: revoked with client_id alone. The access token of the same code exchange
    // ends with the family (`fid`), at userinfo at once.
    let first_at = s(&t, "access_token");
    assert_eq!(userinfo_status(&srv, &http, first_at).await, 200);
    let form = [public_id[0], ("token", rt)];
    assert_eq!(revoke(&srv, &http, None, &form).await, 200);
    assert_eq!(userinfo_status(&srv, &http, first_at).await, 401);
    let (st, e, _) = post_form(
        &srv,
        &http,
        "/token",
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", &seed.public_id),
        ],
    )
    .await;
    assert_eq!((st, s(&e, "error")), (400, "invalid_grant"));

    // Public clients may not introspect (their client_id proves nothing).
    let (st, e, _) = post_form(
        &srv,
        &http,
        "/introspect",
        None,
        &[public_id[0], ("token", s(&t, "access_token"))],
    )
    .await;
    assert_eq!((st, s(&e, "error")), (401, "invalid_client"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_answers_the_tokens_client_and_apis_in_its_audience_only() {
    let srv = TestServer::start();
    let seed = srv.seed();
    let http = srv.http();
    let api_secret = srv.cli_json(&["apis", "rotate-secret", API], None)["api_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(api_secret.starts_with("pci_"));
    assert!(
        srv.cli_raw(&["apis", "rotate-secret", "https://absent.example"], None)
            .status
            .code()
            != Some(0)
    );
    let t = web_tokens(&srv, &http, &seed).await;
    let (at, rt) = (s(&t, "access_token"), s(&t, "refresh_token"));

    // The token's own client: every RFC 7662 field.
    let v = introspect(&srv, &http, web(&seed), at).await;
    assert_eq!(v["active"], true);
    assert_eq!(v["client_id"], seed.web_id.as_str());
    assert_eq!(v["sub"], seed.user_id.as_str());
    assert_eq!(v["iss"], srv.issuer.as_str());
    assert_eq!(v["token_type"], "Bearer");
    assert!(v["scope"].as_str().unwrap().contains("openid"));
    assert!(v["exp"].as_i64().unwrap() > v["iat"].as_i64().unwrap());
    assert!(v["aud"].to_string().contains(API));
    assert!(v.get("fid").is_none() && v.get("sid").is_none());
    let v = introspect(&srv, &http, web(&seed), rt).await;
    assert_eq!(v["active"], true);
    assert!(
        v.get("token_type").is_none(),
        "refresh tokens have no RFC 6749 token type"
    );
    assert_eq!(v["client_id"], seed.web_id.as_str());

    // The API named in `aud`, with its own credentials in the body or (form-encoded) Basic.
    for token in [at] {
        let (st, v, _) = post_form(
            &srv,
            &http,
            "/introspect",
            None,
            &[
                ("client_id", API),
                ("client_secret", &api_secret),
                ("token", token),
            ],
        )
        .await;
        assert_eq!((st, v["active"].clone()), (200, Value::Bool(true)), "{v}");
        let encoded: String = url::form_urlencoded::byte_serialize(API.as_bytes()).collect();
        let v = introspect(&srv, &http, (&encoded, &api_secret), token).await;
        assert_eq!(v["active"], true, "{v}");
    }
    // Refresh tokens are the client's business only.
    let (_, v, _) = post_form(
        &srv,
        &http,
        "/introspect",
        None,
        &[
            ("client_id", API),
            ("client_secret", &api_secret),
            ("token", rt),
        ],
    )
    .await;
    assert_eq!(v, serde_json::json!({"active": false}));
    // A wrong API secret or an unknown API is invalid_client.
    for (id, secret) in [
        (API, "pci_wrong"),
        ("https://other.example", api_secret.as_str()),
    ] {
        let (st, e, _) = post_form(
            &srv,
            &http,
            "/introspect",
            None,
            &[("client_id", id), ("client_secret", secret), ("token", at)],
        )
        .await;
        assert_eq!((st, s(&e, "error")), (401, "invalid_client"), "{id}");
    }
    // Another client learns nothing about the web client's tokens.
    let machine = (seed.machine_id.as_str(), seed.machine_secret.as_str());
    for token in [at, rt] {
        assert_eq!(
            introspect(&srv, &http, machine, token).await,
            serde_json::json!({"active": false})
        );
    }
    // Forged and foreign tokens are simply inactive.
    let parts: Vec<&str> = at.split('.').collect();
    let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.{}.", parts[1]);
    for token in [unsigned.as_str(), "pcr_AAAA", "", "e30.e30.e30"] {
        let (st, v, _) = post_form(
            &srv,
            &http,
            "/introspect",
            Some(web(&seed)),
            &[("token", token)],
        )
        .await;
        if token.is_empty() {
            assert_eq!(st, 400, "an empty token is a missing parameter");
        } else {
            assert_eq!(v, serde_json::json!({"active": false}), "{token}");
        }
    }
    // The machine client's own client-credentials token: active for it and for the API.
    let (st, cc, _) = token_request(
        &srv,
        &http,
        machine,
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(st, 200, "{cc}");
    let v = introspect(&srv, &http, machine, s(&cc, "access_token")).await;
    assert_eq!(v["active"], true);
    assert_eq!(v["sub"], seed.machine_id.as_str());
    // Disabling the client ends it at once.
    srv.cli(&["clients", "disable", &seed.machine_id], None);
    let (_, v, _) = post_form(
        &srv,
        &http,
        "/introspect",
        None,
        &[
            ("client_id", API),
            ("client_secret", &api_secret),
            ("token", s(&cc, "access_token")),
        ],
    )
    .await;
    assert_eq!(v["active"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_client_authentication_is_limited_across_token_revoke_and_introspect() {
    let srv = TestServer::start_with(&[("PORTCULLIS_CLIENT_AUTH_MAX_FAILURES", "3")]);
    let seed = srv.seed();
    let http = srv.http();
    let wrong = (seed.web_id.as_str(), "pcs_wrong");
    for path in ["/token", "/revoke", "/introspect"] {
        let (st, e, h) = post_form(
            &srv,
            &http,
            path,
            Some(wrong),
            &[("token", "x"), ("grant_type", "client_credentials")],
        )
        .await;
        assert_eq!((st, s(&e, "error")), (401, "invalid_client"), "{path}");
        assert!(h.contains_key("ratelimit"), "{path}");
    }
    for path in ["/token", "/revoke", "/introspect"] {
        // Even the right credentials wait now: the limit is per address, for every endpoint.
        let (st, e, h) = post_form(
            &srv,
            &http,
            path,
            Some(web(&seed)),
            &[("token", "x"), ("grant_type", "client_credentials")],
        )
        .await;
        assert_eq!(st, 429, "{path}: {e}");
        assert_eq!(s(&e, "error"), "temporarily_unavailable");
        assert!(h["retry-after"].to_str().unwrap().parse::<u64>().unwrap() > 0);
        assert!(h.contains_key("ratelimit-policy"));
        assert!(h.contains_key("strict-transport-security"), "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_tokens_need_consent_and_outlive_the_session_but_not_a_password_change() {
    let srv = TestServer::start();
    let seed = srv.seed();
    let http = srv.http();
    let mut jar = signed_in_jar(&srv, &http, &seed).await;
    // A session-bound token from this session.
    let (v, c) = pkce();
    let res = authorize_and_resume(
        &srv,
        &http,
        &mut jar,
        &authorize_url(&srv, &seed.web_id, CB, &c, &[]),
    )
    .await;
    assert_eq!(
        res.status(),
        302,
        "silent single sign-on for the first-party client"
    );
    let code = query_of(res.headers()["location"].to_str().unwrap())["code"].clone();
    let bound = exchange(&srv, &http, &seed, &code, &v).await;

    // offline_access: even the first-party client asks, and the page says what it means.
    let (v, c) = pkce();
    let url = offline_url(&srv, &seed.web_id, &c, &[]);
    let res = authorize_and_resume(&srv, &http, &mut jar, &url).await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("id=\"offline-consent\""), "{html}");
    assert!(html.contains("while you are signed out"));
    let res = http
        .post(srv.url("/authorize/continue"))
        .header("cookie", jar.header())
        .header("origin", &srv.issuer)
        .form(&[
            ("csrf_token", csrf_of(&html).as_str()),
            ("action", "continue"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let code = query_of(res.headers()["location"].to_str().unwrap())["code"].clone();
    let offline = exchange(&srv, &http, &seed, &code, &v).await;
    assert!(s(&offline, "scope").contains("offline_access"));

    // A browser without a session sees the notice on the sign-in page itself.
    let (_, c) = pkce();
    let mut fresh = Jar::default();
    let res = authorize_and_resume(
        &srv,
        &http,
        &mut fresh,
        &offline_url(&srv, &seed.web_id, &c, &[]),
    )
    .await;
    let html = res.text().await.unwrap();
    assert!(
        html.contains("id=\"login\"") && html.contains("id=\"offline-consent\""),
        "{html}"
    );

    // prompt=none cannot consent; a client without the refresh grant cannot ask.
    let (_, c) = pkce();
    let url = offline_url(&srv, &seed.web_id, &c, &[("prompt", "none")]);
    let res = authorize_and_resume(&srv, &http, &mut jar, &url).await;
    let loc = res.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(query_of(&loc)["error"], "interaction_required", "{loc}");

    // Signing in again ends the old session: its session-bound token dies, the offline one
    // lives on (and rotates as usual).
    let res = browser_login(
        &srv,
        &http,
        &mut jar,
        &authorize_url(&srv, &seed.web_id, CB, &c, &[("prompt", "login")]),
        ALICE,
        PASSWORD,
    )
    .await;
    assert_eq!(res.status(), 303);
    let (st, e) = refresh(&srv, &http, &seed, s(&bound, "refresh_token")).await;
    assert_eq!((st, s(&e, "error")), (400, "invalid_grant"), "{e}");
    let (st, next) = refresh(&srv, &http, &seed, s(&offline, "refresh_token")).await;
    assert_eq!(st, 200, "{next}");
    assert_eq!(
        introspect(&srv, &http, web(&seed), s(&next, "access_token")).await["active"],
        true
    );
    let rt = s(&next, "refresh_token");
    assert_eq!(
        introspect(&srv, &http, web(&seed), rt).await["active"],
        true
    );

    // A password change ends it.
    srv.cli(
        &["users", "set-password", ALICE, "--password-stdin"],
        Some("quartz meadow cinder ballad"),
    );
    let (st, e) = refresh(&srv, &http, &seed, rt).await;
    assert_eq!((st, s(&e, "error")), (400, "invalid_grant"), "{e}");
    assert_eq!(
        introspect(&srv, &http, web(&seed), s(&next, "access_token")).await["active"],
        false
    );
}

async fn exchange(
    srv: &TestServer,
    http: &reqwest::Client,
    seed: &Seed,
    code: &str,
    verifier: &str,
) -> Value {
    let (st, t, _) = token_request(
        srv,
        http,
        web(seed),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", CB),
            ("code_verifier", verifier),
        ],
    )
    .await;
    assert_eq!(st, 200, "{t}");
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_access_is_refused_for_clients_without_the_refresh_grant() {
    let srv = TestServer::start();
    srv.seed();
    let http = srv.http();
    let once = srv.cli_json(
        &[
            "clients",
            "create",
            "--name",
            "No refresh",
            "--redirect-uri",
            CB,
            "--grant",
            "authorization_code",
        ],
        None,
    );
    let (_, c) = pkce();
    let res = http
        .get(offline_url(
            &srv,
            once["client_id"].as_str().unwrap(),
            &c,
            &[],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let loc = res.headers()["location"].to_str().unwrap();
    assert_eq!(query_of(loc)["error"], "invalid_scope", "{loc}");
}
