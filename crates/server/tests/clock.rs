//! Expiry and theft rules, with time as a parameter: core grants run against the real SQLite
//! store with a chosen `now`, so no test sleeps.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use portcullis_core::authorize::response::new_code;
use portcullis_core::crypto::{HashKey, KeyBytes};
use portcullis_core::grants::{dispatch, GrantEvent, TokenContext, TokenResponse};
use portcullis_core::ids::{ClientId, UserId};
use portcullis_core::keys::KeySet;
use portcullis_core::login::new_session;
use portcullis_core::model::{
    AuthorizationRequest, Client, ClientKind, GrantType, SigningAlg, User,
};
use portcullis_core::params::Params;
use portcullis_core::policy::Lifetimes;
use portcullis_core::secret::{self, reveal, SecretKind};
use portcullis_core::store::{ClientStore, CodeStore, SessionStore, UserStore};
use portcullis_core::{client_auth::BasicCredentials, userinfo};
use portcullis_store::SqliteStore;

const T0: i64 = 1_800_000_000;
const ISS: &str = "https://id.example.com";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

struct World {
    _dir: tempfile::TempDir,
    store: SqliteStore,
    keys: KeySet,
    hash: HashKey,
    client: Client,
    secret: String,
    user: User,
    lifetimes: Lifetimes,
}

async fn world() -> World {
    world_with(Lifetimes::default(), Default::default()).await
}

/// A world whose server lifetimes and client policy are given.
async fn world_with(lifetimes: Lifetimes, policy: portcullis_core::model::ClientPolicy) -> World {
    let (dir, store) = common::temp_store().await;
    let keys = common::keyset(&[SigningAlg::ES256, SigningAlg::RS256], T0);
    let hash = HashKey::new(&KeyBytes::from_hex(&KeyBytes::generate_hex()).unwrap());
    let issued = secret::issue(SecretKind::ClientSecret, &hash);
    let client = Client {
        id: ClientId::generate(),
        name: "c1".into(),
        kind: ClientKind::Confidential,
        redirect_uris: vec!["https://app.example.com/cb".into()],
        post_logout_redirect_uris: vec![],
        grants: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        apis: vec![],
        scopes: vec![],
        first_party: true,
        id_token_alg: SigningAlg::RS256,
        disabled: false,
        backchannel_logout_uri: None,
        secret_hashes: vec![issued.hash.clone()],
        policy,
        created_at: T0,
    };
    store.create_client(&client).await.unwrap();
    let user = User {
        id: UserId::generate(),
        email: "alice@example.com".into(),
        email_key: "alice@example.com".into(),
        email_verified: false,
        password_hash: "$argon2id$unused".into(),
        disabled: false,
        created_at: T0,
        device_epoch: 0,
        password_changed_at: None,
        password_version: 0,
    };
    store.create_user(&user).await.unwrap();
    World {
        _dir: dir,
        store,
        keys,
        hash,
        secret: reveal(&issued.value).to_owned(),
        client,
        user,
        lifetimes,
    }
}

impl World {
    async fn token(
        &self,
        form: &[(&str, &str)],
        now: i64,
    ) -> (
        Result<TokenResponse, portcullis_core::OAuthError>,
        Vec<GrantEvent>,
    ) {
        let params =
            Params::from_pairs(form.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap();
        let basic = BasicCredentials {
            id: self.client.id.to_string(),
            secret: self.secret.clone(),
        };
        let ctx = TokenContext {
            quota: &portcullis_core::grants::Unlimited,
            issuer: ISS,
            keys: &self.keys,
            hash_key: &self.hash,
            lifetimes: &self.lifetimes,
            access_token_alg: SigningAlg::ES256,
            access_token_stand_in: SigningAlg::ES256,
            now,
        };
        let out = dispatch(&params, Some(&basic), &self.store, &ctx).await;
        (out.result, out.events)
    }

    /// A session at `now` and a fresh code for it.
    async fn code(&self, now: i64) -> (String, portcullis_core::model::Session) {
        self.code_for(now, &["openid"]).await
    }

    /// Like [`World::code`], for `scope`.
    async fn code_for(
        &self,
        now: i64,
        scope: &[&str],
    ) -> (String, portcullis_core::model::Session) {
        let (session, _cookie) = new_session(
            &self.user,
            &self.hash,
            now,
            &self.lifetimes.session_policy(),
            Default::default(),
        );
        self.store.insert_session(&session).await.unwrap();
        let req = AuthorizationRequest {
            client_id: self.client.id.clone(),
            redirect_uri: "https://app.example.com/cb".into(),
            scope: scope.iter().map(|s| s.to_string()).collect(),
            state: None,
            nonce: Some("n".into()),
            code_challenge: CHALLENGE.into(),
            prompt_none: false,
            prompt_login: false,
            prompt_confirm: false,
            max_age: None,
            login_hint: None,
            audience: None,
        };
        let (code, issued) = new_code(
            &req,
            &self.user,
            &session.id,
            now,
            &self.hash,
            now,
            self.lifetimes.authorization_code,
        );
        self.store.insert_code(&code).await.unwrap();
        (reveal(&issued.value).to_owned(), session)
    }
}

fn code_form(code: &str) -> Vec<(&str, &str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", "https://app.example.com/cb"),
        ("code_verifier", VERIFIER),
    ]
}

#[tokio::test]
async fn codes_expire_after_60_seconds() {
    let w = world().await;
    let (code, _) = w.code(T0).await;
    let (r, _) = w.token(&code_form(&code), T0 + 60).await;
    assert_eq!(r.unwrap_err().code.as_str(), "invalid_grant");
    let (code, _) = w.code(T0).await;
    assert!(w.token(&code_form(&code), T0 + 59).await.0.is_ok());
}

#[tokio::test]
async fn refresh_reuse_inside_grace_is_refused_and_later_is_theft() {
    let w = world().await;
    let (code, session) = w.code(T0).await;
    let rt0 = w
        .token(&code_form(&code), T0)
        .await
        .0
        .unwrap()
        .refresh_token
        .unwrap();
    let rt1 = w
        .token(
            &[("grant_type", "refresh_token"), ("refresh_token", &rt0)],
            T0 + 10,
        )
        .await
        .0
        .unwrap()
        .refresh_token
        .unwrap();
    // Within 2 s of its rotation: refused, nothing revoked.
    let (r, ev) = w
        .token(
            &[("grant_type", "refresh_token"), ("refresh_token", &rt0)],
            T0 + 12,
        )
        .await;
    assert_eq!(r.unwrap_err().code.as_str(), "invalid_grant");
    // Only the token's owner is reported (for the per-user refresh-failure count).
    assert!(
        ev.iter().all(|e| matches!(e, GrantEvent::Subject { .. })),
        "{ev:?}"
    );
    let rt2 = w
        .token(
            &[("grant_type", "refresh_token"), ("refresh_token", &rt1)],
            T0 + 13,
        )
        .await
        .0
        .unwrap()
        .refresh_token
        .unwrap();
    // Later: theft. The family and the session are revoked.
    let (r, ev) = w
        .token(
            &[("grant_type", "refresh_token"), ("refresh_token", &rt0)],
            T0 + 20,
        )
        .await;
    assert_eq!(r.unwrap_err().code.as_str(), "invalid_grant");
    assert!(matches!(
        ev.as_slice(),
        [GrantEvent::RefreshReuseDetected { .. }]
    ));
    assert_eq!(
        w.token(
            &[("grant_type", "refresh_token"), ("refresh_token", &rt2)],
            T0 + 21
        )
        .await
        .0
        .unwrap_err()
        .code
        .as_str(),
        "invalid_grant"
    );
    let s = w.store.session_by_id(&session.id).await.unwrap().unwrap();
    assert!(
        s.revoked_at.is_some(),
        "the session ends with the stolen family"
    );
}

#[tokio::test]
async fn session_bound_refresh_ends_with_the_session_and_access_tokens_expire() {
    let w = world().await;
    let (code, session) = w.code(T0).await;
    let t = w.token(&code_form(&code), T0).await.0.unwrap();
    // The access token works until exp, then not.
    assert!(
        userinfo::claims(&t.access_token, &w.keys, ISS, &w.store, T0 + 299)
            .await
            .is_ok()
    );
    assert_eq!(
        userinfo::claims(&t.access_token, &w.keys, ISS, &w.store, T0 + 300)
            .await
            .unwrap_err()
            .code
            .as_str(),
        "invalid_token"
    );
    // After the session's absolute end, its refresh token is refused.
    let end = session.expires_at;
    let rt = t.refresh_token.unwrap();
    assert_eq!(
        w.token(
            &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
            end
        )
        .await
        .0
        .unwrap_err()
        .code
        .as_str(),
        "invalid_grant"
    );
}

#[tokio::test]
async fn revoked_session_kills_userinfo_and_refresh() {
    let w = world().await;
    let (code, session) = w.code(T0).await;
    let t = w.token(&code_form(&code), T0).await.0.unwrap();
    w.store.revoke_session(&session.id, T0 + 1).await.unwrap();
    assert!(
        userinfo::claims(&t.access_token, &w.keys, ISS, &w.store, T0 + 2)
            .await
            .is_err()
    );
    let rt = t.refresh_token.unwrap();
    assert!(w
        .token(
            &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
            T0 + 2
        )
        .await
        .0
        .is_err());
    let _ = w.store.user_by_id(&w.user.id).await.unwrap();
}

/// Exchanges a fresh code at `now` (scope `scope`) and returns the refresh token.
async fn first_refresh(w: &World, now: i64, scope: &[&str]) -> String {
    let (code, _) = w.code_for(now, scope).await;
    w.token(&code_form(&code), now)
        .await
        .0
        .unwrap()
        .refresh_token
        .unwrap()
}

/// Refreshes `rt` at `now`: the next refresh token, or the error code.
async fn refresh_at(w: &World, rt: &str, now: i64) -> Result<String, String> {
    w.token(
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
        now,
    )
    .await
    .0
    .map(|t| t.refresh_token.unwrap())
    .map_err(|e| e.code.as_str().to_owned())
}

#[tokio::test]
async fn the_session_idle_timeout_ends_refresh_and_refreshes_are_activity() {
    let lifetimes = Lifetimes {
        session_idle: Some(600),
        ..Lifetimes::default()
    };
    let w = world_with(lifetimes, Default::default()).await;
    let rt = first_refresh(&w, T0, &["openid"]).await;
    // Each refresh is activity: the session lives on as long as they come within 600 s.
    let rt = refresh_at(&w, &rt, T0 + 599).await.unwrap();
    let rt = refresh_at(&w, &rt, T0 + 1198).await.unwrap();
    assert_eq!(
        refresh_at(&w, &rt, T0 + 1798).await.unwrap_err(),
        "invalid_grant",
        "600 s without activity"
    );
}

#[tokio::test]
async fn a_clients_idle_timeout_and_max_age_end_its_refreshes() {
    let policy = portcullis_core::model::ClientPolicy {
        session_idle: Some(600),
        session_max_age: Some(1500),
        ..Default::default()
    };
    let w = world_with(Lifetimes::default(), policy).await;
    let rt = first_refresh(&w, T0, &["openid"]).await;
    let rt = refresh_at(&w, &rt, T0 + 599).await.unwrap();
    let rt = refresh_at(&w, &rt, T0 + 1198).await.unwrap();
    // The client's max age (since sign-in) bounds its tokens although the session lives 30 d.
    assert_eq!(
        refresh_at(&w, &rt, T0 + 1500).await.unwrap_err(),
        "invalid_grant"
    );
    // And its idle timeout, measured on the session's activity.
    let rt = first_refresh(&w, T0 + 10_000, &["openid"]).await;
    assert_eq!(
        refresh_at(&w, &rt, T0 + 10_600).await.unwrap_err(),
        "invalid_grant"
    );
}

#[tokio::test]
async fn offline_tokens_idle_out_and_end_absolutely_but_outlive_their_session() {
    let lifetimes = Lifetimes {
        offline_idle: 3600,
        offline_absolute: 3 * 3600,
        ..Lifetimes::default()
    };
    let w = world_with(lifetimes, Default::default()).await;
    let (code, session) = w.code_for(T0, &["openid", "offline_access"]).await;
    let rt = w
        .token(&code_form(&code), T0)
        .await
        .0
        .unwrap()
        .refresh_token
        .unwrap();
    // The browser session ends; the offline token does not.
    w.store.revoke_session(&session.id, T0 + 1).await.unwrap();
    let rt = refresh_at(&w, &rt, T0 + 3599).await.unwrap();
    let rt = refresh_at(&w, &rt, T0 + 7198).await.unwrap();
    // Unused for its idle limit: dead.
    assert_eq!(
        refresh_at(&w, &rt, T0 + 10_798).await.unwrap_err(),
        "invalid_grant"
    );
    // Used often, it still ends at its absolute lifetime.
    let (code, _) = w.code_for(T0 + 20_000, &["openid", "offline_access"]).await;
    let mut rt = w
        .token(&code_form(&code), T0 + 20_000)
        .await
        .0
        .unwrap()
        .refresh_token
        .unwrap();
    for step in 1..=5 {
        rt = refresh_at(&w, &rt, T0 + 20_000 + step * 2000)
            .await
            .unwrap();
    }
    assert_eq!(
        refresh_at(&w, &rt, T0 + 20_000 + 3 * 3600)
            .await
            .unwrap_err(),
        "invalid_grant"
    );
}
