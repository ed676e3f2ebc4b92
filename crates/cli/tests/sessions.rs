//! Session control and session policies against the real server: the hosted sessions page,
//! the `sessions` CLI, the concurrent-session limit and the presets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::Value;

const ALICE: &str = "alice@example.com";
const PAGE: &str = "/account/sessions";

/// An HTTP client that announces `ua` as its `User-Agent`.
fn browser(srv: &TestServer, ua: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(srv.ca_pem.as_bytes()).unwrap()])
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(ua)
        .build()
        .unwrap()
}

/// Signs alice in through the web client in a new browser; returns its jar and tokens.
async fn signed_in(srv: &TestServer, http: &reqwest::Client, seed: &Seed) -> (Jar, Value) {
    let mut jar = Jar::default();
    let t = sign_in_for_tokens(
        srv,
        http,
        &mut jar,
        (&seed.web_id, &seed.web_secret),
        CB,
        ALICE,
    )
    .await;
    (jar, t)
}

async fn page_of(srv: &TestServer, http: &reqwest::Client, jar: &Jar) -> String {
    let res = http
        .get(srv.url(PAGE))
        .header("cookie", jar.header())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

async fn end(
    srv: &TestServer,
    http: &reqwest::Client,
    jar: &Jar,
    form: &[(&str, &str)],
    origin: &str,
) -> reqwest::Response {
    http.post(srv.url(PAGE))
        .header("cookie", jar.header())
        .header("origin", origin)
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn refresh_status(srv: &TestServer, http: &reqwest::Client, seed: &Seed, t: &Value) -> u16 {
    refresh(
        srv,
        http,
        (&seed.web_id, &seed.web_secret),
        t["refresh_token"].as_str().unwrap(),
    )
    .await
    .0
}

fn session_ids(html: &str) -> Vec<String> {
    html.split("data-session=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_see_their_sessions_and_end_one_the_others_or_all() {
    let srv = TestServer::start();
    let seed = srv.seed();
    let laptop = browser(&srv, "Laptop <script>alert(1)</script>");
    let phone = browser(&srv, "Phone\tBrowser");
    let (laptop_jar, laptop_t) = signed_in(&srv, &laptop, &seed).await;
    let (phone_jar, phone_t) = signed_in(&srv, &phone, &seed).await;

    let res = laptop
        .get(srv.url(PAGE))
        .header("cookie", laptop_jar.header())
        .send()
        .await
        .unwrap();
    let html = check_html_page("sessions page", res, None).await;
    let ids = session_ids(&html);
    assert_eq!(ids.len(), 2, "{html}");
    assert_eq!(html.matches("id=\"this-browser\"").count(), 1);
    assert!(html.contains("Laptop &lt;script&gt;"), "escaped: {html}");
    assert!(!html.contains("<script>alert"));
    assert!(html.contains("PhoneBrowser"), "control characters removed");
    assert!(html.contains("127.0.0.1"));
    let csrf = csrf_of(&html);

    // Without the token, or cross-site: 403, nothing ends.
    let phone_session = ids[0].clone(); // newest first: the phone signed in last
    let res = end(
        &srv,
        &laptop,
        &laptop_jar,
        &[("end", &phone_session)],
        &srv.issuer,
    )
    .await;
    assert_eq!(res.status(), 403);
    let res = end(
        &srv,
        &laptop,
        &laptop_jar,
        &[("end", &phone_session), ("csrf_token", &csrf)],
        "https://evil.example",
    )
    .await;
    assert_eq!(res.status(), 403);
    // A token of another session does not pass either.
    let phone_csrf = csrf_of(&page_of(&srv, &phone, &phone_jar).await);
    let res = end(
        &srv,
        &laptop,
        &laptop_jar,
        &[("end", &phone_session), ("csrf_token", &phone_csrf)],
        &srv.issuer,
    )
    .await;
    assert_eq!(res.status(), 403);
    assert_eq!(refresh_status(&srv, &phone, &seed, &phone_t).await, 200);

    // Another user's session cannot be ended from here (and its existence is not told).
    let bob = srv.cli_json(
        &[
            "users",
            "create",
            "--email",
            "bob@example.com",
            "--password-stdin",
        ],
        Some(PASSWORD),
    );
    assert!(bob["user_id"].is_string());
    let mut bob_jar = Jar::default();
    let bob_t = sign_in_for_tokens(
        &srv,
        &laptop,
        &mut bob_jar,
        (&seed.web_id, &seed.web_secret),
        CB,
        "bob@example.com",
    )
    .await;
    let bob_session = session_ids(&page_of(&srv, &laptop, &bob_jar).await)[0].clone();
    for victim in [bob_session.as_str(), "ses_doesnotexist", "not an id"] {
        let res = end(
            &srv,
            &laptop,
            &laptop_jar,
            &[("end", victim), ("csrf_token", &csrf)],
            &srv.issuer,
        )
        .await;
        assert_eq!(res.status(), 400, "{victim}");
    }
    assert_eq!(refresh_status(&srv, &laptop, &seed, &bob_t).await, 200);

    // End the phone's session: 303 back to the page; its refresh token is dead.
    let res = end(
        &srv,
        &laptop,
        &laptop_jar,
        &[("end", &phone_session), ("csrf_token", &csrf)],
        &srv.issuer,
    )
    .await;
    let status = res.status();
    let headers = res.headers().clone();
    assert_eq!(status, 303, "{}", res.text().await.unwrap());
    let res = (headers,);
    assert_eq!(res.0["location"], PAGE);
    assert!(res.0.get("set-cookie").is_none(), "this browser stays");
    assert_eq!(refresh_status(&srv, &phone, &seed, &phone_t).await, 400);
    assert_eq!(
        session_ids(&page_of(&srv, &laptop, &laptop_jar).await).len(),
        1
    );

    // "All others" leaves this one; "all" ends it too and deletes the cookie.
    let (_, tablet_t) = signed_in(&srv, &phone, &seed).await;
    let res = end(
        &srv,
        &laptop,
        &laptop_jar,
        &[("end", "others"), ("csrf_token", &csrf)],
        &srv.issuer,
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(refresh_status(&srv, &phone, &seed, &tablet_t).await, 400);
    let (st, next) = refresh(
        &srv,
        &laptop,
        (&seed.web_id, &seed.web_secret),
        laptop_t["refresh_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(st, 200);
    let res = end(
        &srv,
        &laptop,
        &laptop_jar,
        &[("end", "all"), ("csrf_token", &csrf)],
        &srv.issuer,
    )
    .await;
    assert_eq!(res.status(), 303);
    let cookie = res.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with("__Host-portcullis-session=;"),
        "{cookie}"
    );
    assert!(
        cookie.to_ascii_lowercase().contains("max-age=0"),
        "{cookie}"
    );
    assert_eq!(refresh_status(&srv, &laptop, &seed, &next).await, 400);
    let html = page_of(&srv, &laptop, &laptop_jar).await;
    assert!(html.contains("id=\"signed-out\""), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lists_and_revokes_a_users_sessions() {
    let srv = TestServer::start();
    let seed = srv.seed();
    let http = browser(&srv, "Test Browser 1.0");
    let (_, first) = signed_in(&srv, &http, &seed).await;
    let (_, second) = signed_in(&srv, &http, &seed).await;
    let list = srv.cli_json(&["sessions", "list", ALICE], None);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["user_agent"], "Test Browser 1.0");
    assert_eq!(list[0]["address"], "127.0.0.1");
    assert!(list[0]["created_at"].as_i64().unwrap() >= list[1]["created_at"].as_i64().unwrap());
    let newest = list[0]["session_id"].as_str().unwrap();
    assert!(srv
        .cli(&["sessions", "revoke", newest], None)
        .contains("session ended"));
    assert_eq!(refresh_status(&srv, &http, &seed, &second).await, 400);
    assert_eq!(refresh_status(&srv, &http, &seed, &first).await, 200);
    assert!(srv
        .cli(&["sessions", "revoke-all", ALICE], None)
        .contains("1 session(s) ended"));
    assert!(srv
        .cli_json(&["sessions", "list", ALICE], None)
        .as_array()
        .unwrap()
        .is_empty());
    let bad = srv.cli_raw(&["sessions", "revoke", "ses_nope"], None);
    assert_ne!(bad.status.code(), Some(0));
    let bad = srv.cli_raw(&["sessions", "list", "nobody@example.com"], None);
    assert_ne!(bad.status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_concurrent_session_limit_ends_the_oldest_first() {
    let srv = TestServer::start_with(&[("PORTCULLIS_MAX_SESSIONS_PER_USER", "2")]);
    let seed = srv.seed();
    let http = srv.http();
    let (_, first) = signed_in(&srv, &http, &seed).await;
    let (_, second) = signed_in(&srv, &http, &seed).await;
    let (_, third) = signed_in(&srv, &http, &seed).await;
    assert_eq!(refresh_status(&srv, &http, &seed, &first).await, 400);
    assert_eq!(refresh_status(&srv, &http, &seed, &second).await, 200);
    assert_eq!(refresh_status(&srv, &http, &seed, &third).await, 200);
    assert_eq!(
        srv.cli_json(&["sessions", "list", ALICE], None)
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(srv.log().contains("session_limit"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preset_sets_the_access_token_lifetime_and_the_idle_timeout() {
    let srv = TestServer::start_with(&[("PORTCULLIS_SESSION_PRESET", "financial")]);
    let seed = srv.seed();
    let http = srv.http();
    let (_, t) = signed_in(&srv, &http, &seed).await;
    assert_eq!(t["expires_in"], 120, "financial: 2-minute access tokens");
    let list = srv.cli_json(&["sessions", "list", ALICE], None);
    let s = &list.as_array().unwrap()[0];
    assert_eq!(s["idle_timeout"], 300);
    assert_eq!(
        s["expires_at"].as_i64().unwrap() - s["created_at"].as_i64().unwrap(),
        900
    );
    // A setting that breaks the rule "access token shorter than the idle timeout" is refused
    // at start, naming it.
    let mut cmd = srv.base_command();
    cmd.args(["serve"])
        .env("PORTCULLIS_SESSION_PRESET", "financial")
        .env("PORTCULLIS_ACCESS_TOKEN_TTL", "300");
    let out = cmd.output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("shorter than the session idle timeout"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_can_only_tighten_the_servers_policy() {
    let srv = TestServer::start();
    let seed = srv.seed();
    let http = srv.http();
    // Looser than the server (300 s access tokens, 30-day sessions): refused, naming why.
    for (flag, value) in [
        ("--access-token-ttl", "600"),
        ("--session-max-age", "99999999"),
        ("--session-idle", "200"),
    ] {
        let out = srv.cli_raw(
            &[
                "clients",
                "create",
                "--name",
                "Loose",
                "--redirect-uri",
                CB,
                flag,
                value,
            ],
            None,
        );
        assert_ne!(out.status.code(), Some(0), "{flag} {value}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("client policy"));
    }
    let strict = srv.cli_json(
        &[
            "clients",
            "create",
            "--name",
            "Strict",
            "--redirect-uri",
            CB,
            "--access-token-ttl",
            "120",
            "--session-max-age",
            "600",
        ],
        None,
    );
    let id = strict["client_id"].as_str().unwrap();
    let secret = strict["client_secret"].as_str().unwrap();
    let mut jar = Jar::default();
    let t = sign_in_for_tokens(&srv, &http, &mut jar, (id, secret), CB, ALICE).await;
    assert_eq!(t["expires_in"], 120);
    // Its session-bound refresh token ends at the client's max age, not the session's 30 days.
    let (st, v, _) = post_form(
        &srv,
        &http,
        "/introspect",
        Some((id, secret)),
        &[("token", t["refresh_token"].as_str().unwrap())],
    )
    .await;
    assert_eq!(st, 200);
    // (`exp` counts from the sign-in, `iat` from the exchange a moment later.)
    let life = v["exp"].as_i64().unwrap() - v["iat"].as_i64().unwrap();
    assert!((590..=600).contains(&life), "{v}");
    // Other clients keep the server's figures.
    let (_, web) = signed_in(&srv, &http, &seed).await;
    assert_eq!(web["expires_in"], 300);
}

const PASSWORD_PAGE: &str = "/account/password";

/// Posts the password form from `jar`'s browser with the issuer's `Origin`; absorbs cookies.
async fn change_password(
    srv: &TestServer,
    http: &reqwest::Client,
    jar: &mut Jar,
    form: &[(&str, &str)],
) -> (u16, String) {
    let res = http
        .post(srv.url(PASSWORD_PAGE))
        .header("cookie", jar.header())
        .header("origin", &srv.issuer)
        .form(form)
        .send()
        .await
        .unwrap();
    jar.absorb(&res);
    let status = res.status().as_u16();
    let location = res
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned());
    let body = res.text().await.unwrap();
    (status, location.unwrap_or(body))
}

/// Asks for `openid offline_access` from a signed-in browser: the consent page, then its
/// "continue", then the code exchange. Returns the tokens.
async fn offline_tokens(
    srv: &TestServer,
    http: &reqwest::Client,
    jar: &mut Jar,
    seed: &Seed,
) -> Value {
    let (v, c) = pkce();
    let html = offline_step(srv, http, jar, seed, &c).await;
    assert!(
        html.contains("id=\"offline-consent\"") && html.contains("action=\"/authorize/continue\""),
        "{html}"
    );
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
    let (st, t, _) = token_request(
        srv,
        http,
        (&seed.web_id, &seed.web_secret),
        &[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", CB),
            ("code_verifier", v.as_str()),
        ],
    )
    .await;
    assert_eq!(st, 200, "{t}");
    t
}

/// The page a signed-in browser gets when it asks for offline access.
async fn offline_step(
    srv: &TestServer,
    http: &reqwest::Client,
    jar: &mut Jar,
    seed: &Seed,
    challenge: &str,
) -> String {
    let url = authorize_url(srv, &seed.web_id, CB, challenge, &[])
        .replace("scope=openid+email", "scope=openid+offline_access");
    let res = authorize_and_resume(srv, http, jar, &url).await;
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_change_their_password_and_choose_whether_the_other_sessions_end() {
    let srv = TestServer::start();
    let seed = srv.seed();
    let laptop = browser(&srv, "Laptop");
    let phone = browser(&srv, "Phone");
    let (mut laptop_jar, laptop_t) = signed_in(&srv, &laptop, &seed).await;
    let (mut phone_jar, phone_t) = signed_in(&srv, &phone, &seed).await;
    let offline = offline_tokens(&srv, &laptop, &mut laptop_jar, &seed).await;

    let res = laptop
        .get(srv.url(PASSWORD_PAGE))
        .header("cookie", laptop_jar.header())
        .send()
        .await
        .unwrap();
    let html = check_html_page("password page", res, None).await;
    assert!(
        html.contains(
            "id=\"end_others\" name=\"end_others\" type=\"checkbox\" value=\"yes\" checked"
        ),
        "ending the others is the default: {html}"
    );
    assert!(html.contains("autocomplete=\"new-password\""));
    let csrf = csrf_of(&html);
    let phone_csrf = csrf_of(&page_of(&srv, &phone, &phone_jar).await);
    const NEW1: &str = "copper willow tundra signal";
    const NEW2: &str = "amber falcon drizzle keystone";
    let good = |current: &'static str, new: &'static str| {
        vec![
            ("current_password", current),
            ("new_password", new),
            ("confirm_password", new),
        ]
    };

    // Refused without changing anything: no token, another session's token, cross-site.
    for (form, origin) in [
        (good(PASSWORD, NEW1), srv.issuer.as_str()),
        (
            [
                good(PASSWORD, NEW1),
                vec![("csrf_token", phone_csrf.as_str())],
            ]
            .concat(),
            srv.issuer.as_str(),
        ),
        (
            [good(PASSWORD, NEW1), vec![("csrf_token", csrf.as_str())]].concat(),
            "https://evil.example",
        ),
    ] {
        let res = laptop
            .post(srv.url(PASSWORD_PAGE))
            .header("cookie", laptop_jar.header())
            .header("origin", origin)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{origin}");
    }
    // Bad forms: each gets its own clear message and a 400.
    let with_csrf = |f: Vec<(&'static str, &'static str)>| {
        let mut v: Vec<(&str, &str)> = vec![("csrf_token", csrf.as_str())];
        v.extend(f);
        v
    };
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            with_csrf(vec![
                ("current_password", PASSWORD),
                ("new_password", NEW1),
                ("confirm_password", NEW2),
            ]),
            "confirmation differ",
        ),
        (
            with_csrf(good(PASSWORD, "tooshort")),
            "at least 15 characters",
        ),
        (
            with_csrf(good(PASSWORD, "password123456789")),
            "common or breached",
        ),
        (
            with_csrf(good(PASSWORD, "alice alice alice 2024")),
            "too close",
        ),
        (
            with_csrf(vec![("current_password", PASSWORD)]),
            "Enter your current password",
        ),
        (
            with_csrf([good(PASSWORD, NEW1), vec![("end_others", "maybe")]].concat()),
            "not understood",
        ),
        (
            with_csrf([good(PASSWORD, NEW1), vec![("new_password", NEW2)]].concat()),
            "is repeated",
        ),
        (
            with_csrf(good(PASSWORD, PASSWORD)),
            "must differ from the current",
        ),
    ];
    for (form, says) in &cases {
        let (st, body) = change_password(&srv, &laptop, &mut laptop_jar, form).await;
        assert_eq!(st, 400, "{says}: {body}");
        assert!(body.contains(says), "{says}: {body}");
    }
    let (st, body) = change_password(
        &srv,
        &laptop,
        &mut laptop_jar,
        &with_csrf(good("not my password at all", NEW1)),
    )
    .await;
    assert_eq!(st, 401, "{body}");
    assert!(body.contains("current password is not correct"), "{body}");
    let (st, phone_t) = refresh(
        &srv,
        &phone,
        (&seed.web_id, &seed.web_secret),
        phone_t["refresh_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(st, 200, "nothing changed yet");

    // A code for offline access, issued now and kept for after the change.
    let (stale_verifier, c) = pkce();
    let html = offline_step(&srv, &laptop, &mut laptop_jar, &seed, &c).await;
    let res = laptop
        .post(srv.url("/authorize/continue"))
        .header("cookie", laptop_jar.header())
        .header("origin", &srv.issuer)
        .form(&[
            ("csrf_token", csrf_of(&html).as_str()),
            ("action", "continue"),
        ])
        .send()
        .await
        .unwrap();
    let stale_code = query_of(res.headers()["location"].to_str().unwrap())["code"].clone();

    // Keeping the other sessions: the phone stays signed in, offline access ends.
    let laptop_before = laptop_jar.clone();
    let (st, location) = change_password(
        &srv,
        &laptop,
        &mut laptop_jar,
        &with_csrf(good(PASSWORD, NEW1)),
    )
    .await;
    assert_eq!(
        (st, location.as_str()),
        (303, "/account/sessions?password=changed")
    );
    let res = laptop
        .get(srv.url(&location))
        .header("cookie", laptop_jar.header())
        .send()
        .await
        .unwrap();
    let html = res.text().await.unwrap();
    assert!(html.contains("id=\"password-changed\""), "{html}");
    assert!(!page_of(&srv, &laptop, &laptop_jar)
        .await
        .contains("id=\"password-changed\""));
    // This browser carries on under a new session cookie; a copy of the old one is signed out.
    assert!(page_of(&srv, &laptop, &laptop_before)
        .await
        .contains("id=\"signed-out\""));
    assert_eq!(session_ids(&html).len(), 2, "both sessions kept: {html}");
    let (st, _) = refresh(
        &srv,
        &laptop,
        (&seed.web_id, &seed.web_secret),
        laptop_t["refresh_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(
        st, 400,
        "what this session held before the change ends (a copied cookie may have got it)"
    );
    // A code issued before the change is refused too, even for this session.
    let (st, t, _) = token_request(
        &srv,
        &laptop,
        (&seed.web_id, &seed.web_secret),
        &[
            ("grant_type", "authorization_code"),
            ("code", stale_code.as_str()),
            ("redirect_uri", CB),
            ("code_verifier", stale_verifier.as_str()),
        ],
    )
    .await;
    assert_eq!(
        (st, t["error"].as_str()),
        (400, Some("invalid_grant")),
        "{t}"
    );
    let (st, _) = refresh(
        &srv,
        &laptop,
        (&seed.web_id, &seed.web_secret),
        offline["refresh_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(st, 400, "offline access ended with the old password");
    let phone_next = {
        let (st, t) = refresh(
            &srv,
            &phone,
            (&seed.web_id, &seed.web_secret),
            phone_t["refresh_token"].as_str().unwrap(),
        )
        .await;
        assert_eq!(st, 200, "the phone was kept");
        t
    };
    // Offline access again: the laptop (which just proved the password) is asked to confirm;
    // the phone, signed in before the change, must sign in again.
    let (_, c) = pkce();
    let html = offline_step(&srv, &phone, &mut phone_jar, &seed, &c).await;
    assert!(
        html.contains("id=\"login\""),
        "the phone signs in again for offline access: {html}"
    );
    let again = offline_tokens(&srv, &laptop, &mut laptop_jar, &seed).await;

    // Ending the other sessions: the phone is out, this browser stays with a new device cookie.
    let device_before = laptop_jar.cookies.get("__Host-portcullis-device").cloned();
    assert!(device_before.is_some());
    let (st, location) = change_password(
        &srv,
        &laptop,
        &mut laptop_jar,
        &with_csrf([good(NEW1, NEW2), vec![("end_others", "yes")]].concat()),
    )
    .await;
    assert_eq!(
        (st, location.as_str()),
        (303, "/account/sessions?password=changed")
    );
    assert_ne!(
        laptop_jar.cookies.get("__Host-portcullis-device").cloned(),
        device_before,
        "a new device cookie"
    );
    assert_eq!(refresh_status(&srv, &phone, &seed, &phone_next).await, 400);
    let html = page_of(&srv, &phone, &phone_jar).await;
    assert!(html.contains("id=\"signed-out\""), "{html}");
    assert_eq!(
        session_ids(&page_of(&srv, &laptop, &laptop_jar).await).len(),
        1
    );
    let fresh = offline_tokens(&srv, &laptop, &mut laptop_jar, &seed).await;
    assert_eq!(
        refresh_status(&srv, &laptop, &seed, &fresh).await,
        200,
        "this browser gets new tokens at once"
    );
    assert_eq!(
        refresh_status(&srv, &laptop, &seed, &again).await,
        400,
        "offline access ends again"
    );

    // The old passwords no longer sign in; the new one does.
    for (pw, expect) in [(PASSWORD, 401), (NEW1, 401), (NEW2, 303)] {
        let (_, c) = pkce();
        let res = browser_login(
            &srv,
            &phone,
            &mut Jar::default(),
            &authorize_url(&srv, &seed.web_id, CB, &c, &[]),
            ALICE,
            pw,
        )
        .await;
        assert_eq!(res.status(), expect, "{pw}");
    }

    // Guessing the current password from a stolen session meets the sign-in limits: a
    // recognised device has 3 failures per window, then even the right password is refused.
    for _ in 0..3 {
        let (st, _) = change_password(
            &srv,
            &laptop,
            &mut laptop_jar,
            &with_csrf(good("a wrong guess at it", NEW1)),
        )
        .await;
        assert_eq!(st, 401);
    }
    let res = laptop
        .post(srv.url(PASSWORD_PAGE))
        .header("cookie", laptop_jar.header())
        .header("origin", &srv.issuer)
        .form(&with_csrf(good(NEW2, NEW1)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));

    let log = srv.log();
    assert!(log.contains("user.password_changed"), "{log}");
    assert!(
        log.contains("reason=\"password_change\"")
            || log.contains("\"reason\":\"password_change\""),
        "{log}"
    );
    for secret in [PASSWORD, NEW1, NEW2, "a wrong guess at it"] {
        assert!(!log.contains(secret), "a password reached the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_page_needs_a_session() {
    let srv = TestServer::start();
    let http = srv.http();
    let res = http.get(srv.url(PASSWORD_PAGE)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("id=\"signed-out\""));
    let res = http
        .post(srv.url(PASSWORD_PAGE))
        .header("origin", &srv.issuer)
        .form(&[
            ("current_password", PASSWORD),
            ("new_password", "x"),
            ("confirm_password", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], PASSWORD_PAGE);
}
