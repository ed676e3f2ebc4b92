//! Userinfo's own checks, on tokens the token endpoint would never mint: a token naming the
//! userinfo audience without the `openid` scope gets `insufficient_scope` (403), a token for
//! another audience `invalid_token`. Runs core against the real SQLite store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use portcullis_core::discovery::userinfo_url;
use portcullis_core::error::ErrorCode;
use portcullis_core::jwt::{self, AccessClaims, Audience};
use portcullis_core::model::SigningAlg;
use portcullis_core::userinfo;

const ISS: &str = "https://id.example.com";

#[tokio::test]
async fn scope_and_audience_are_both_required() {
    let (_dir, store) = common::temp_store().await;
    let keys = common::keyset(&[SigningAlg::ES256], 0);
    let key = keys.active(SigningAlg::ES256, 0).unwrap();
    let token = |aud: Audience, scope: &str| {
        let claims = AccessClaims {
            iss: ISS.into(),
            sub: "usr_AAAAAAAAAAAAAAAAAAAAAA".into(),
            aud,
            exp: 2_000,
            iat: 1_000,
            jti: "j".into(),
            client_id: "cl_x".into(),
            scope: scope.into(),
            auth_time: None,
            sid: None,
            fid: None,
        };
        jwt::sign(key, jwt::TYP_ACCESS_TOKEN, &claims).unwrap()
    };
    let no_openid = token(Audience::one(userinfo_url(ISS)), "email");
    let e = userinfo::claims(&no_openid, &keys, ISS, &store, 1_500)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InsufficientScope);
    assert_eq!(e.code.http_status(), 403);
    let other_aud = token(Audience::one("https://api.example.com"), "openid email");
    let e = userinfo::claims(&other_aud, &keys, ISS, &store, 1_500)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidToken);
    assert_eq!(e.code.http_status(), 401);
}
