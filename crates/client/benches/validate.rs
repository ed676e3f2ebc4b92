//! `validate_access_token` with a warm JWKS cache: the cost an API pays per request.
//! A local JWKS and discovery document are served over loopback HTTP (which the SDK allows on
//! loopback only); tokens are signed here with EdDSA (Ed25519, Portcullis's default for access
//! tokens), ES256 and RS256 keys of the bench's own.
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
    // An RSA key too: its public key is DER `RSAPublicKey` (SEQUENCE { n, e }).
    let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let (n, e) = rsa_components(rsa.public_key().as_ref());
    // An Ed25519 key: its public key is the 32 bytes of `x` (RFC 8037).
    let ed = aws_lc_rs::signature::Ed25519KeyPair::generate().unwrap();
    let jwks = json!({"keys": [{
        "kty": "OKP", "crv": "Ed25519", "kid": "bench-ed", "alg": "EdDSA", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(ed.public_key().as_ref()),
    }, {
        "kty": "EC", "crv": "P-256", "kid": "bench", "alg": "ES256", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
    }, {
        "kty": "RSA", "kid": "bench-rsa", "alg": "RS256", "use": "sig",
        "n": URL_SAFE_NO_PAD.encode(n), "e": URL_SAFE_NO_PAD.encode(e),
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

    // The same claims signed RS256 by hand (PKCS#1 v1.5, SHA-256) with the RSA key.
    let rs_token = {
        let header = URL_SAFE_NO_PAD
            .encode(json!({"alg": "RS256", "typ": "at+jwt", "kid": "bench-rsa"}).to_string());
        let claims = token.split('.').nth(1).unwrap();
        let message = format!("{header}.{claims}");
        let mut sig = vec![0u8; rsa.public_modulus_len()];
        rsa.sign(
            &aws_lc_rs::signature::RSA_PKCS1_SHA256,
            &rng,
            message.as_bytes(),
            &mut sig,
        )
        .unwrap();
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(sig))
    };
    rt.block_on(sdk.validate_access_token(&rs_token, "https://api.example.com", &["read:things"]))
        .unwrap();
    // And EdDSA (Ed25519 over the same signing input).
    let ed_token = {
        let header = URL_SAFE_NO_PAD
            .encode(json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "bench-ed"}).to_string());
        let claims = token.split('.').nth(1).unwrap();
        let message = format!("{header}.{claims}");
        let sig = ed.sign(message.as_bytes());
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    };
    rt.block_on(sdk.validate_access_token(&ed_token, "https://api.example.com", &["read:things"]))
        .unwrap();

    let mut g = c.benchmark_group("validate_access_token");
    g.throughput(Throughput::Elements(1));
    for (name, token) in [
        ("EdDSA (Ed25519), warm JWKS cache", &ed_token),
        ("RS256 (2048-bit), warm JWKS cache", &rs_token),
        ("ES256, warm JWKS cache", &token),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(sdk.validate_access_token(
                    token,
                    "https://api.example.com",
                    &["read:things"],
                ))
                .unwrap()
            })
        });
    }
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
    let (ed_message, ed_signature) = ed_token.rsplit_once('.').unwrap();
    let ed_signature = URL_SAFE_NO_PAD.decode(ed_signature).unwrap();
    let ed_parsed = aws_lc_rs::signature::ParsedPublicKey::new(
        &aws_lc_rs::signature::ED25519,
        ed.public_key().as_ref(),
    )
    .unwrap();
    g.bench_function("EdDSA signature check alone (pre-parsed key)", |b| {
        b.iter(|| {
            ed_parsed
                .verify_sig(ed_message.as_bytes(), &ed_signature)
                .unwrap()
        })
    });
    g.finish();
    assert_eq!(sdk.jwks_fetches(), 1, "the cache answered every validation");
}

/// `n` and `e` of a DER `RSAPublicKey`: SEQUENCE { INTEGER n, INTEGER e } (short or long
/// lengths; leading zero bytes of the integers dropped, as JWKs carry them).
fn rsa_components(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
    fn read(der: &[u8], at: &mut usize, tag: u8) -> Vec<u8> {
        assert_eq!(der[*at], tag);
        *at += 1;
        let mut len = der[*at] as usize;
        *at += 1;
        if len & 0x80 != 0 {
            let bytes = len & 0x7f;
            len = 0;
            for _ in 0..bytes {
                len = (len << 8) | der[*at] as usize;
                *at += 1;
            }
        }
        let v = der[*at..*at + len].to_vec();
        *at += len;
        v
    }
    let mut at = 0;
    let seq = read(der, &mut at, 0x30);
    let mut i = 0;
    let strip = |v: Vec<u8>| v.into_iter().skip_while(|b| *b == 0).collect::<Vec<u8>>();
    let n = strip(read(&seq, &mut i, 0x02));
    let e = strip(read(&seq, &mut i, 0x02));
    (n, e)
}

criterion_group!(benches, bench);
criterion_main!(benches);
