//! `validate_access_token` with a warm JWKS cache: the cost an API pays per request.
//! A local JWKS and discovery document are served over loopback HTTP (which the SDK allows on
//! loopback only); tokens are signed here with an ES256 key of the bench's own.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use portcullis_client::Portcullis;
use serde_json::json;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let public = pair.public_key().as_ref();
    let (x, y) = (&public[1..33], &public[33..65]);
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let issuer = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let discovery = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
    });
    let jwks = json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": "bench", "alg": "ES256", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
    }]});
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get(move || async move { axum::Json(discovery) }),
        )
        .route(
            "/jwks",
            axum::routing::get(move || async move { axum::Json(jwks) }),
        );
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });

    let sdk = Portcullis::builder(&issuer, "pcc_bench")
        .unwrap()
        .build()
        .unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some("at+jwt".into());
    header.kid = Some("bench".into());
    let token = encode(
        &header,
        &json!({
            "iss": issuer, "sub": "usr_bench", "aud": "https://api.example.com",
            "exp": 4_000_000_000i64, "iat": 1_700_000_000i64, "jti": "j1",
            "client_id": "pcc_bench", "scope": "read:things write:things",
        }),
        &EncodingKey::from_ec_der(pkcs8.as_ref()),
    )
    .unwrap();
    // Warm the caches (discovery and JWKS): one fetch each.
    rt.block_on(sdk.validate_access_token(&token, "https://api.example.com", &["read:things"]))
        .unwrap();

    let mut g = c.benchmark_group("validate_access_token");
    g.throughput(Throughput::Elements(1));
    g.bench_function("ES256, warm JWKS cache", |b| {
        b.iter(|| {
            rt.block_on(sdk.validate_access_token(
                &token,
                "https://api.example.com",
                &["read:things"],
            ))
            .unwrap()
        })
    });
    // The floor: the ES256 signature check alone, as aws-lc-rs does it (the rest of a
    // validation is base64, JSON and the claim checks).
    let (message, signature) = token.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let parsed = aws_lc_rs::signature::ParsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
        public,
    )
    .unwrap();
    g.bench_function("ES256 signature check alone (pre-parsed key)", |b| {
        b.iter(|| parsed.verify_sig(message.as_bytes(), &signature).unwrap())
    });
    g.finish();
    assert_eq!(sdk.jwks_fetches(), 1, "the cache answered every validation");
}

criterion_group!(benches, bench);
criterion_main!(benches);
