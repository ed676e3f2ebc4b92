//! The main job end to end, driven by a real OpenID Connect client library (`openidconnect`):
//! discovery, PKCE + nonce authorization URL, the hosted login form, code exchange, ID token
//! verification (signature, nonce, at_hash), userinfo, refresh with rotation, and client
//! credentials.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use openidconnect::core::{CoreClient, CoreProviderMetadata, CoreResponseType, CoreUserInfoClaims};
use openidconnect::{
    AccessTokenHash, AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};

type HttpResult = Result<openidconnect::HttpResponse, reqwest::Error>;

/// Adapts reqwest 0.13 (which trusts the test CA) to the library's HTTP client trait.
async fn send(client: reqwest::Client, req: openidconnect::HttpRequest) -> HttpResult {
    let (parts, body) = req.into_parts();
    let res = client
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await?;
    let mut builder = http::Response::builder().status(res.status());
    for (k, v) in res.headers() {
        builder = builder.header(k, v);
    }
    let bytes = res.bytes().await?;
    Ok(builder.body(bytes.to_vec()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openidconnect_library_signs_in_end_to_end() {
    let srv = TestServer::start();
    let seed = srv.seed();
    let http = srv.http();
    let lib_http = |req: openidconnect::HttpRequest| send(http.clone(), req);

    let metadata = CoreProviderMetadata::discover_async(
        IssuerUrl::new(srv.issuer.clone()).unwrap(),
        &lib_http,
    )
    .await
    .expect("discovery");
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(seed.web_id.clone()),
        Some(ClientSecret::new(seed.web_secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new("https://app.example.com/cb".into()).unwrap());

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, state, nonce) = client
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();

    // The browser part: the hosted login form.
    let mut jar = Jar::default();
    let res = browser_login(
        &srv,
        &http,
        &mut jar,
        auth_url.as_str(),
        "alice@example.com",
        PASSWORD,
    )
    .await;
    assert_eq!(res.status(), 303, "login must answer 303");
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("https://app.example.com/cb?"));
    let q = query_of(&location);
    assert_eq!(q["state"], *state.secret());
    assert_eq!(q["iss"], srv.issuer);

    // Code exchange and ID token verification, by the library.
    let tokens = client
        .exchange_code(AuthorizationCode::new(q["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&lib_http)
        .await
        .expect("code exchange");
    let id_token = tokens.id_token().expect("an ID token");
    let verifier = client.id_token_verifier();
    let claims = id_token
        .claims(&verifier, &nonce)
        .expect("ID token verifies");
    assert_eq!(claims.subject().as_str(), seed.user_id);
    assert_eq!(
        claims.email().map(|e| e.as_str()),
        Some("alice@example.com")
    );
    assert_eq!(
        claims.email_verified(),
        Some(false),
        "email_verified is false unless proven"
    );
    assert!(claims.auth_time().is_some());
    let expected_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims.access_token_hash(),
        Some(&expected_hash),
        "at_hash matches"
    );
    assert_eq!(
        *id_token.signing_alg().unwrap(),
        openidconnect::core::CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        "ID tokens default to RS256"
    );

    // The access token is an RFC 9068 JWT for the default API.
    let at = tokens.access_token().secret().clone();
    let parts: Vec<&str> = at.split('.').collect();
    use base64::Engine;
    let header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[0])
            .unwrap(),
    )
    .unwrap();
    let body: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "EdDSA");
    // Its audiences: the API, and userinfo (which refuses tokens that do not name it).
    assert_eq!(
        body["aud"],
        serde_json::json!([API, format!("{}/userinfo", srv.issuer)])
    );
    assert_eq!(body["sub"], seed.user_id);
    assert_eq!(
        body["exp"].as_i64().unwrap() - body["iat"].as_i64().unwrap(),
        300
    );
    assert!(body["jti"].as_str().unwrap().len() >= 16);

    // Userinfo, by the library.
    let info: CoreUserInfoClaims = client
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&lib_http)
        .await
        .expect("userinfo");
    assert_eq!(info.subject().as_str(), seed.user_id);
    assert_eq!(info.email().map(|e| e.as_str()), Some("alice@example.com"));

    // Refresh rotates; the old refresh token then fails.
    let rt1 = tokens.refresh_token().expect("a refresh token").clone();
    assert!(rt1.secret().starts_with("pcr_"));
    let refreshed = client
        .exchange_refresh_token(&rt1)
        .unwrap()
        .request_async(&lib_http)
        .await
        .expect("refresh");
    let rt2 = refreshed
        .refresh_token()
        .expect("a rotated refresh token")
        .clone();
    assert_ne!(rt1.secret(), rt2.secret());
    assert_ne!(
        refreshed.access_token().secret(),
        tokens.access_token().secret()
    );
    let replay = client
        .exchange_refresh_token(&rt1)
        .unwrap()
        .request_async(&lib_http)
        .await;
    assert!(replay.is_err(), "a rotated refresh token is refused");
    let again = client
        .exchange_refresh_token(&rt2)
        .unwrap()
        .request_async(&lib_http)
        .await;
    assert!(
        again.is_ok(),
        "replay within the grace window does not kill the family"
    );

    // Client credentials for the machine client, by the library.
    let machine = CoreClient::from_provider_metadata(
        CoreProviderMetadata::discover_async(
            IssuerUrl::new(srv.issuer.clone()).unwrap(),
            &lib_http,
        )
        .await
        .unwrap(),
        ClientId::new(seed.machine_id.clone()),
        Some(ClientSecret::new(seed.machine_secret.clone())),
    );
    let cc = machine
        .exchange_client_credentials()
        .unwrap()
        .add_scope(Scope::new("read:things".into()))
        .request_async(&lib_http)
        .await
        .expect("client credentials");
    let body: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cc.access_token().secret().split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        body["sub"], seed.machine_id,
        "client subjects are client ids"
    );
    assert!(body["sub"].as_str().unwrap().starts_with("cl_") && seed.user_id.starts_with("usr_"));
    assert_eq!(body["scope"], "read:things");
    assert!(cc.refresh_token().is_none());

    // Nothing secret reaches the log.
    let log = srv.log();
    for secret in [
        PASSWORD,
        &seed.web_secret,
        &seed.machine_secret,
        rt1.secret(),
        rt2.secret(),
        &q["code"],
        &at,
    ] {
        assert!(!log.contains(secret), "a secret leaked into the log");
    }
}
