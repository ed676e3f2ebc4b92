//! The app SDK (`portcullis-client`) against the real server over TLS: the whole sign-in,
//! access-token validation, refresh, revocation, client credentials, logout URLs and
//! back-channel logout tokens; and every refusal an app relies on: a forged state, a wrong
//! `iss`, a wrong nonce, an error callback, tokens from another issuer or for another
//! audience, an ID token offered as an access token, an expired token, `alg: none`, and a key
//! rotation picked up through an unknown `kid` (with JWKS fetches rate limited).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::receiver::Receiver;
use common::*;
use portcullis_client::{
    AuthorizationOptions, Error, InvalidToken, PendingAuthorization, Portcullis, Prompt, Secret,
    TokenTypeHint,
};
use serde_json::Value;

const ALICE: &str = "alice@example.com";
const LOOPBACK_CB: &str = "http://127.0.0.1/cb";

fn sdk(srv: &TestServer, id: &str, secret: Option<&str>) -> portcullis_client::Builder {
    let mut b = Portcullis::builder(&srv.issuer, id)
        .unwrap()
        .root_certificates_pem(srv.ca_pem.as_bytes())
        .unwrap();
    if let Some(s) = secret {
        b = b.client_secret(Secret::new(s));
    }
    b
}

/// Sends the browser (a cookie jar) through the sign-in and returns the callback URL.
async fn sign_in(srv: &TestServer, http: &reqwest::Client, jar: &mut Jar, url: &str) -> String {
    let res = browser_login(srv, http, jar, url, ALICE, PASSWORD).await;
    assert_eq!(res.status(), 303);
    res.headers()["location"].to_str().unwrap().to_owned()
}

fn with_param(url: &str, name: &str, value: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == name {
                value.to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    u.query_pairs_mut().clear().extend_pairs(pairs);
    u.to_string()
}

/// `jwt` with its header replaced by `header` (signature kept).
fn reheader(jwt: &str, header: &Value) -> String {
    let mut parts: Vec<String> = jwt.split('.').map(str::to_owned).collect();
    parts[0] = URL_SAFE_NO_PAD.encode(header.to_string());
    parts.join(".")
}

fn invalid(r: portcullis_client::Result<impl std::fmt::Debug>) -> InvalidToken {
    match r {
        Err(Error::InvalidToken(why)) => why,
        other => panic!("expected an invalid token, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_signs_in_validates_refreshes_revokes_and_logs_out() {
    let srv = TestServer::start();
    let seed = srv.seed();
    let http = srv.http();
    let clock = Arc::new(ShiftedClock::default());
    let app = sdk(&srv, &seed.web_id, Some(&seed.web_secret))
        .clock(clock.clone())
        .build()
        .unwrap();
    assert!(!format!("{app:?}").contains(&seed.web_secret));

    let options = AuthorizationOptions {
        scopes: vec!["email".into(), "read:things".into()],
        max_age: Some(600),
        resource: Some(API.into()),
        ..Default::default()
    };
    let (url, pending) = app.authorization_url(LOOPBACK_CB, &options).await.unwrap();
    let query = query_of(url.as_str());
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["max_age"], "600");
    assert_eq!(query["scope"], "openid email read:things");
    // What the app stores survives a round trip through JSON.
    let stored = serde_json::to_string(&pending).unwrap();
    let pending: PendingAuthorization = serde_json::from_str(&stored).unwrap();

    let mut jar = Jar::default();
    let callback = sign_in(&srv, &http, &mut jar, url.as_str()).await;
    let signed_in = app
        .authenticate_with_code(&callback, &pending)
        .await
        .unwrap();
    assert_eq!(signed_in.claims.sub, seed.user_id);
    assert_eq!(signed_in.claims.email.as_deref(), Some(ALICE));
    assert!(signed_in.claims.sid.is_some());
    assert!(!format!("{signed_in:?}").contains(signed_in.tokens.access_token.expose()));
    // The same callback again: the code is spent.
    match app.authenticate_with_code(&callback, &pending).await {
        Err(Error::Endpoint(e)) => assert!(e.is("invalid_grant"), "{e}"),
        other => panic!("{other:?}"),
    }

    // The access token validates locally for its API and scope, and for nothing else.
    let access = signed_in.tokens.access_token.expose().to_owned();
    let claims = app
        .validate_access_token(&access, API, &["read:things"])
        .await
        .unwrap();
    assert_eq!(claims.sub, seed.user_id);
    assert_eq!(claims.client_id, seed.web_id);
    assert_eq!(
        invalid(
            app.validate_access_token(&access, API, &["write:things"])
                .await
        ),
        InvalidToken::Scope
    );
    assert_eq!(
        invalid(
            app.validate_access_token(&access, "https://other.example.com", &[])
                .await
        ),
        InvalidToken::Audience
    );
    // An ID token is not an access token.
    let id_token = signed_in.tokens.id_token.clone().unwrap();
    assert_eq!(
        invalid(app.validate_access_token(id_token.expose(), API, &[]).await),
        InvalidToken::Type
    );
    // `alg: none` with the signature stripped, and a header naming HS256 with the key's kid.
    let header = jwt_part(&access, 0);
    let mut none = header.clone();
    none["alg"] = "none".into();
    let unsigned = {
        let t = reheader(&access, &none);
        format!("{}.", t.rsplit_once('.').unwrap().0)
    };
    assert!(matches!(
        app.validate_access_token(&unsigned, API, &[]).await,
        Err(Error::InvalidToken(_))
    ));
    let mut hs = header.clone();
    hs["alg"] = "HS256".into();
    assert_eq!(
        invalid(
            app.validate_access_token(&reheader(&access, &hs), API, &[])
                .await
        ),
        InvalidToken::Algorithm
    );
    // A flipped signature byte.
    let mut forged = access.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert!(matches!(
        app.validate_access_token(&forged, API, &[]).await,
        Err(Error::InvalidToken(
            InvalidToken::Signature | InvalidToken::Malformed
        ))
    ));
    // Expired: an hour later by the app's clock.
    clock.offset.store(3600, Ordering::Relaxed);
    assert_eq!(
        invalid(app.validate_access_token(&access, API, &[]).await),
        InvalidToken::Expired
    );
    clock.offset.store(0, Ordering::Relaxed);

    // Refresh rotates; the spent token is refused; revocation ends the new one.
    let (url, pending) = app
        .authorization_url(
            LOOPBACK_CB,
            &AuthorizationOptions {
                scopes: vec!["offline_access".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let callback = sign_in(&srv, &http, &mut Jar::default(), url.as_str()).await;
    let first = app
        .authenticate_with_code(&callback, &pending)
        .await
        .unwrap();
    let rt = first.tokens.refresh_token.clone().expect("a refresh token");
    let next = app.refresh(&rt).await.unwrap();
    let rt2 = next.refresh_token.clone().unwrap();
    assert_ne!(rt2.expose(), rt.expose());
    app.validate_access_token(next.access_token.expose(), &srv.url("/userinfo"), &[])
        .await
        .unwrap();
    app.revoke(&rt2, TokenTypeHint::RefreshToken).await.unwrap();
    match app.refresh(&rt2).await {
        Err(Error::Endpoint(e)) => assert!(e.is("invalid_grant"), "{e}"),
        other => panic!("{other:?}"),
    }

    // The logout URL names the client, the hint and the return address.
    let logout = app
        .logout_url(
            Some(id_token.expose()),
            Some("https://app.example.com/"),
            Some("xyz"),
        )
        .await
        .unwrap();
    assert!(logout.as_str().starts_with(&srv.url("/logout?")));
    let q = query_of(logout.as_str());
    assert_eq!(q["client_id"], seed.web_id);
    assert_eq!(q["id_token_hint"], id_token.expose());
    assert_eq!(q["state"], "xyz");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_crossed_callbacks_are_refused() {
    let srv = TestServer::start();
    let seed = srv.seed();
    let http = srv.http();
    let app = sdk(&srv, &seed.web_id, Some(&seed.web_secret))
        .build()
        .unwrap();

    // A forged state: refused before any exchange, so the code still works afterwards.
    let (url, pending) = app
        .authorization_url(LOOPBACK_CB, &Default::default())
        .await
        .unwrap();
    let mut jar = Jar::default();
    let callback = sign_in(&srv, &http, &mut jar, url.as_str()).await;
    let forged = with_param(&callback, "state", "attacker-state");
    assert!(matches!(
        app.authenticate_with_code(&forged, &pending).await,
        Err(Error::StateMismatch)
    ));
    // A wrong or missing issuer (a mix-up): refused too.
    let mixed = with_param(&callback, "iss", "https://evil.example.com");
    assert!(matches!(
        app.authenticate_with_code(&mixed, &pending).await,
        Err(Error::IssuerMismatch)
    ));
    let mut no_iss = url::Url::parse(&callback).unwrap();
    let kept: Vec<(String, String)> = no_iss
        .query_pairs()
        .filter(|(k, _)| k != "iss")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    no_iss.query_pairs_mut().clear().extend_pairs(kept);
    assert!(matches!(
        app.authenticate_with_code(no_iss.as_str(), &pending).await,
        Err(Error::IssuerMismatch)
    ));
    // Another redirect URI, a repeated parameter.
    let elsewhere = callback.replace("/cb?", "/other?");
    assert!(matches!(
        app.authenticate_with_code(&elsewhere, &pending).await,
        Err(Error::Callback(_))
    ));
    let twice = format!("{callback}&code=again");
    assert!(matches!(
        app.authenticate_with_code(&twice, &pending).await,
        Err(Error::Callback(_))
    ));
    // The genuine callback still works.
    app.authenticate_with_code(&callback, &pending)
        .await
        .unwrap();

    // A wrong nonce: the ID token is refused.
    let (url, mut pending) = app
        .authorization_url(LOOPBACK_CB, &Default::default())
        .await
        .unwrap();
    let callback = sign_in(&srv, &http, &mut Jar::default(), url.as_str()).await;
    pending.nonce = "another-nonce".into();
    assert_eq!(
        invalid(app.authenticate_with_code(&callback, &pending).await),
        InvalidToken::Nonce
    );

    // An error callback becomes a typed error (prompt=none without a session).
    let (url, pending) = app
        .authorization_url(
            CB,
            &AuthorizationOptions {
                prompt: Some(Prompt::None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let res = authorize_and_resume(&srv, &http, &mut Jar::default(), url.as_str()).await;
    assert_eq!(res.status(), 302);
    let callback = res.headers()["location"].to_str().unwrap().to_owned();
    match app.authenticate_with_code(&callback, &pending).await {
        Err(Error::Authorization(e)) => assert!(e.is("login_required"), "{e}"),
        other => panic!("{other:?}"),
    }
    // ... but only with the right state: a forged error is a state mismatch.
    let forged = with_param(&callback, "state", "forged");
    assert!(matches!(
        app.authenticate_with_code(&forged, &pending).await,
        Err(Error::StateMismatch)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_are_cached_and_tokens_of_another_issuer_refused() {
    let srv = TestServer::start();
    let seed = srv.seed();
    let machine = sdk(&srv, &seed.machine_id, Some(&seed.machine_secret))
        .build()
        .unwrap();
    let a = machine
        .client_credentials_token(&["read:things"], Some(API))
        .await
        .unwrap();
    let b = machine
        .client_credentials_token(&["read:things"], Some(API))
        .await
        .unwrap();
    assert_eq!(a.access_token.expose(), b.access_token.expose(), "cached");
    assert_eq!(a.scope, vec!["read:things".to_owned()]);
    let claims = machine
        .validate_access_token(a.access_token.expose(), API, &["read:things"])
        .await
        .unwrap();
    assert_eq!(claims.sub, seed.machine_id);
    // A scope the client may not have: a typed endpoint error.
    match machine
        .client_credentials_token(&["write:things"], Some(API))
        .await
    {
        Err(Error::Endpoint(e)) => assert!(e.is("invalid_scope"), "{e}"),
        other => panic!("{other:?}"),
    }
    // A wrong secret.
    let wrong = sdk(&srv, &seed.machine_id, Some("pcs_wrong"))
        .build()
        .unwrap();
    match wrong.client_credentials_token(&[], Some(API)).await {
        Err(Error::Endpoint(e)) => assert!(e.is("invalid_client"), "{e}"),
        other => panic!("{other:?}"),
    }

    // A second Portcullis: its tokens are not ours, whatever they say.
    let other = TestServer::start();
    let other_seed = other.seed();
    let foreign = sdk(
        &other,
        &other_seed.machine_id,
        Some(&other_seed.machine_secret),
    )
    .build()
    .unwrap()
    .client_credentials_token(&["read:things"], Some(API))
    .await
    .unwrap();
    assert!(matches!(
        invalid(
            machine
                .validate_access_token(foreign.access_token.expose(), API, &[])
                .await
        ),
        InvalidToken::UnknownKey | InvalidToken::Issuer
    ));

    // A non-https environment URL is refused unless loopback.
    assert!(matches!(
        Portcullis::builder("http://auth.example.com", "pcc_x"),
        Err(Error::Config(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotation_is_picked_up_and_unknown_kids_are_rate_limited() {
    // No publish lead: a rotated key signs at once, so the apps' caches have not seen it.
    let srv = TestServer::start_with(&[("PORTCULLIS_KEY_PUBLISH_LEAD", "0")]);
    let seed = srv.seed();
    let http = srv.http();
    // Default limits: one fetch per 30 s at most for unknown kids.
    let limited = sdk(&srv, &seed.machine_id, Some(&seed.machine_secret))
        .build()
        .unwrap();
    let fresh = sdk(&srv, &seed.machine_id, Some(&seed.machine_secret))
        .jwks_min_refresh(Duration::ZERO)
        .build()
        .unwrap();
    // A short JWKS lifetime: a key revoked at Portcullis stops verifying here once it ends.
    let short = sdk(&srv, &seed.machine_id, Some(&seed.machine_secret))
        .jwks_min_refresh(Duration::ZERO)
        .jwks_max_age(Duration::from_secs(1))
        .build()
        .unwrap();
    let before = limited
        .client_credentials_token(&[], Some(API))
        .await
        .unwrap();
    let old_kid = jwt_part(before.access_token.expose(), 0)["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    limited
        .validate_access_token(before.access_token.expose(), API, &[])
        .await
        .unwrap();
    fresh
        .validate_access_token(before.access_token.expose(), API, &[])
        .await
        .unwrap();
    short
        .validate_access_token(before.access_token.expose(), API, &[])
        .await
        .unwrap();
    assert_eq!(limited.jwks_fetches(), 1);
    // Made-up kids do not make the app fetch again and again.
    let mut header = jwt_part(before.access_token.expose(), 0);
    for n in 0..5 {
        header["kid"] = format!("made-up-{n}").into();
        assert_eq!(
            invalid(
                limited
                    .validate_access_token(
                        &reheader(before.access_token.expose(), &header),
                        API,
                        &[]
                    )
                    .await
            ),
            InvalidToken::UnknownKey
        );
    }
    assert_eq!(limited.jwks_fetches(), 1, "rate limited");

    // Rotate (the new key signs at once), then revoke the old key: new tokens carry the new
    // Ed25519 key's kid.
    let rotated = srv.cli_json(&["keys", "rotate", "--alg", "EdDSA"], None);
    let new_kid = rotated[0]["kid"].as_str().unwrap().to_owned();
    srv.cli(&["keys", "revoke", &old_kid], None);
    hup(&srv);
    let mut token = None;
    for _ in 0..80 {
        let (st, t, _) = token_request(
            &srv,
            &http,
            (&seed.machine_id, &seed.machine_secret),
            &[("grant_type", "client_credentials"), ("resource", API)],
        )
        .await;
        assert_eq!(st, 200, "{t}");
        let at = t["access_token"].as_str().unwrap().to_owned();
        if jwt_part(&at, 0)["kid"] != old_kid.as_str() {
            token = Some(at);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = token.expect("a token signed by the new key");
    assert_eq!(jwt_part(&token, 0)["kid"], new_kid.as_str());
    assert_eq!(jwt_part(&token, 0)["alg"], "EdDSA");
    let fetched = fresh.jwks_fetches();
    fresh.validate_access_token(&token, API, &[]).await.unwrap();
    assert_eq!(
        fresh.jwks_fetches(),
        fetched + 1,
        "the unknown kid caused one fetch"
    );
    fresh.validate_access_token(&token, API, &[]).await.unwrap();
    assert_eq!(fresh.jwks_fetches(), fetched + 1, "then the cache answers");
    // The revoked key's token: refused once the short-lived cache has been fetched again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        invalid(
            short
                .validate_access_token(before.access_token.expose(), API, &[])
                .await
        ),
        InvalidToken::UnknownKey
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_channel_logout_tokens_are_verified() {
    let srv = TestServer::start_with(&[
        ("PORTCULLIS_OUTBOUND_CA_FILE", "ca.pem"),
        ("PORTCULLIS_BACKCHANNEL_POLL_MS", "100"),
    ]);
    let seed = srv.seed();
    let http = srv.http();
    let (rx, port) = Receiver::start(&srv).await;
    let (id, secret) = create_client(
        &srv,
        "Backchannel app",
        LOOPBACK_CB,
        &[
            "--backchannel-logout-uri",
            &format!("https://localhost:{port}/bc"),
        ],
    );
    let app = sdk(&srv, &id, Some(&secret)).build().unwrap();
    let (url, pending) = app
        .authorization_url(LOOPBACK_CB, &Default::default())
        .await
        .unwrap();
    let mut jar = Jar::default();
    let callback = sign_in(&srv, &http, &mut jar, url.as_str()).await;
    let signed_in = app
        .authenticate_with_code(&callback, &pending)
        .await
        .unwrap();
    let id_token = signed_in.tokens.id_token.unwrap();
    let res = browser_logout(
        &srv,
        &http,
        &mut jar,
        &[("id_token_hint", id_token.expose())],
        &[],
    )
    .await;
    assert!(res.status().is_success() || res.status().is_redirection());
    let posts = rx.wait_for("/bc", 1).await;
    let token = posts[0].logout_token();
    let request = app.verify_logout_token(&token).await.unwrap();
    assert_eq!(request.sid, signed_in.claims.sid);
    assert_eq!(request.sub.as_deref(), Some(seed.user_id.as_str()));
    // Neither an ID token nor an access token is a logout token, and another client's
    // logout token is not ours.
    assert_eq!(
        invalid(app.verify_logout_token(id_token.expose()).await),
        InvalidToken::Type
    );
    // (The access token is EdDSA, which no logout token is: refused for its algorithm
    // before its type is read.)
    assert_eq!(
        invalid(
            app.verify_logout_token(signed_in.tokens.access_token.expose())
                .await
        ),
        InvalidToken::Algorithm
    );
    // Nor is the (EdDSA) access token an ID token, at the SDK's call site.
    assert_eq!(
        invalid(
            app.validate_id_token(signed_in.tokens.access_token.expose(), None, None, None)
                .await
        ),
        InvalidToken::Algorithm
    );
    let web = sdk(&srv, &seed.web_id, Some(&seed.web_secret))
        .build()
        .unwrap();
    assert_eq!(
        invalid(web.verify_logout_token(&token).await),
        InvalidToken::Audience
    );
}
