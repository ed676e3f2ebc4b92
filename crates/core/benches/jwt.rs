//! Signing and verification of the tokens Portcullis issues.
//! `cargo bench -p portcullis-core --bench jwt`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use portcullis_core::crypto::{Encrypter, KeyBytes};
use portcullis_core::jwt::{self, AccessClaims};
use portcullis_core::keys::{self, KeySet};
use portcullis_core::model::SigningAlg;

fn claims() -> AccessClaims {
    AccessClaims {
        iss: "https://id.example.com".into(),
        sub: "cl_2IzLaybaKM_45OxcobLzdw".into(),
        aud: jwt::Audience::one("https://api.example.com"),
        exp: 1_800_000_300,
        iat: 1_800_000_000,
        jti: "gQhKCNKZon3T012L_FXoBg".into(),
        client_id: "cl_2IzLaybaKM_45OxcobLzdw".into(),
        scope: "read:things".into(),
        auth_time: None,
        sid: None,
        fid: None,
    }
}

fn bench(c: &mut Criterion) {
    let enc = Encrypter::new(
        &KeyBytes::from_hex(&KeyBytes::generate_hex()).unwrap(),
        None,
    )
    .unwrap();
    let ks = KeySet::new(vec![
        keys::load(
            &keys::generate(SigningAlg::ES256, &enc, 0, 0).unwrap(),
            &enc,
        )
        .unwrap(),
        keys::load(
            &keys::generate(SigningAlg::RS256, &enc, 0, 0).unwrap(),
            &enc,
        )
        .unwrap(),
        keys::load(
            &keys::generate(SigningAlg::EdDSA, &enc, 0, 0).unwrap(),
            &enc,
        )
        .unwrap(),
    ]);
    let es = ks.active(SigningAlg::ES256, 0).unwrap();
    let rs = ks.active(SigningAlg::RS256, 0).unwrap();
    let ed = ks.active(SigningAlg::EdDSA, 0).unwrap();
    let cl = claims();
    c.bench_function("sign access token EdDSA", |b| {
        b.iter(|| jwt::sign(ed, jwt::TYP_ACCESS_TOKEN, &cl).unwrap())
    });
    c.bench_function("sign access token ES256", |b| {
        b.iter(|| jwt::sign(es, jwt::TYP_ACCESS_TOKEN, &cl).unwrap())
    });
    c.bench_function("sign access token RS256", |b| {
        b.iter(|| jwt::sign(rs, jwt::TYP_ACCESS_TOKEN, &cl).unwrap())
    });
    let msg = jwt::sign(rs, jwt::TYP_ACCESS_TOKEN, &cl).unwrap();
    c.bench_function("raw RSA-2048 PKCS#1 v1.5 sign (parsed key)", |b| {
        b.iter(|| rs.sign(msg.as_bytes()).unwrap())
    });
    let es_token = jwt::sign(es, jwt::TYP_ACCESS_TOKEN, &cl).unwrap();
    let rs_token = jwt::sign(rs, jwt::TYP_ACCESS_TOKEN, &cl).unwrap();
    let ed_token = jwt::sign(ed, jwt::TYP_ACCESS_TOKEN, &cl).unwrap();
    c.bench_function("verify access token EdDSA", |b| {
        b.iter(|| {
            jwt::verify_access_token(
                &ed_token,
                &ks,
                "https://id.example.com",
                "https://api.example.com",
                1_800_000_001,
            )
            .unwrap()
        })
    });
    c.bench_function("verify access token ES256", |b| {
        b.iter(|| {
            jwt::verify_access_token(
                &es_token,
                &ks,
                "https://id.example.com",
                "https://api.example.com",
                1_800_000_001,
            )
            .unwrap()
        })
    });
    c.bench_function("verify access token RS256", |b| {
        b.iter(|| {
            jwt::verify_access_token(
                &rs_token,
                &ks,
                "https://id.example.com",
                "https://api.example.com",
                1_800_000_001,
            )
            .unwrap()
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3)).warm_up_time(std::time::Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
