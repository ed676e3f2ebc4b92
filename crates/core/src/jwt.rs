//! Compact JWS for the tokens Portcullis issues (RFC 7515, RFC 9068, OIDC Core §2), and
//! verification of its own tokens. The algorithm always comes from the key the `kid` names,
//! never from the token header; `alg: none`, HMAC and unknown keys are refused.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::keys::{KeyError, KeySet, LoadedKey};

/// `typ` of access tokens (RFC 9068).
pub const TYP_ACCESS_TOKEN: &str = "at+jwt";
/// `typ` of ID tokens.
pub const TYP_ID_TOKEN: &str = "JWT";

/// Signs `claims` with `key`.
pub fn sign<C: Serialize>(key: &LoadedKey, typ: &str, claims: &C) -> Result<String, KeyError> {
    let header = serde_json::json!({"alg": key.alg.as_str(), "typ": typ, "kid": key.kid.as_str()});
    let header = serde_json::to_vec(&header).map_err(|_| KeyError::Sign)?;
    let body = serde_json::to_vec(claims).map_err(|_| KeyError::Sign)?;
    let mut out = String::with_capacity(64 + body.len() * 4 / 3 + 360);
    out.push_str(&URL_SAFE_NO_PAD.encode(header));
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(body));
    let sig = key.sign(out.as_bytes())?;
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(sig));
    Ok(out)
}

/// The `aud` claim: one audience is written as a string, several as an array (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "AudienceRepr", into = "AudienceRepr")]
pub struct Audience(Vec<String>);

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum AudienceRepr {
    One(String),
    Many(Vec<String>),
}

impl From<AudienceRepr> for Audience {
    fn from(r: AudienceRepr) -> Self {
        match r {
            AudienceRepr::One(s) => Self(vec![s]),
            AudienceRepr::Many(v) => Self(v),
        }
    }
}

impl From<Audience> for AudienceRepr {
    fn from(a: Audience) -> Self {
        match <[String; 1]>::try_from(a.0) {
            Ok([one]) => AudienceRepr::One(one),
            Err(v) => AudienceRepr::Many(v),
        }
    }
}

impl Audience {
    pub fn new(audiences: Vec<String>) -> Self {
        Self(audiences)
    }

    pub fn one(audience: impl Into<String>) -> Self {
        Self(vec![audience.into()])
    }

    pub fn contains(&self, audience: &str) -> bool {
        self.0.iter().any(|a| a == audience)
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

/// Claims of an access token (RFC 9068 §2.2).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The grant (refresh-token family, or code redemption) the token came from: revoking it
    /// ends the token at introspection and userinfo. An opaque random identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fid: Option<String>,
}

impl AccessClaims {
    pub fn has_scope(&self, s: &str) -> bool {
        self.scope.split(' ').any(|x| x == s)
    }
}

/// Claims of an ID token (OIDC Core §2).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IdClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub azp: String,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    pub sid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

/// `at_hash`: the left half of SHA-256 of the access token, base64url (OIDC Core §3.1.3.6).
pub fn at_hash(access_token: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&d.as_ref()[..16])
}

/// Why a token was refused (for logs; clients only learn `invalid_token`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("not a compact JWS")]
    Malformed,
    #[error("unknown or missing kid")]
    UnknownKey,
    #[error("header alg does not match the key")]
    Algorithm,
    #[error("wrong typ")]
    Type,
    #[error("bad signature")]
    Signature,
    #[error("wrong issuer")]
    Issuer,
    #[error("not for this audience")]
    Audience,
    #[error("expired")]
    Expired,
}

/// Verifies a token signed by one of our keys and returns its claims as JSON.
pub fn verify(token: &str, keys: &KeySet, expected_typ: &str) -> Result<Value, VerifyError> {
    verify_signed(token, keys, expected_typ).map(|(claims, _)| claims)
}

/// [`verify`], also naming the algorithm of the key that signed it.
fn verify_signed(
    token: &str,
    keys: &KeySet,
    expected_typ: &str,
) -> Result<(Value, crate::model::SigningAlg), VerifyError> {
    if token.len() > 16 * 1024 {
        return Err(VerifyError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::Malformed);
    };
    let header: Value = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(VerifyError::Malformed)?;
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or(VerifyError::UnknownKey)?;
    let key = keys.by_kid(kid).ok_or(VerifyError::UnknownKey)?;
    if header.get("alg").and_then(Value::as_str) != Some(key.alg.as_str()) {
        return Err(VerifyError::Algorithm);
    }
    if header
        .get("typ")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        != Some(expected_typ.to_ascii_lowercase())
    {
        return Err(VerifyError::Type);
    }
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| VerifyError::Malformed)?;
    let signed_len = h.len() + 1 + p.len();
    if !key.verify(&token.as_bytes()[..signed_len], &sig) {
        return Err(VerifyError::Signature);
    }
    URL_SAFE_NO_PAD
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .map(|claims| (claims, key.alg))
        .ok_or(VerifyError::Malformed)
}

/// Verifies one of our access tokens: signature, `typ`, issuer, that `audience` is among its
/// audiences (RFC 9068 §4), and expiry at `now`.
pub fn verify_access_token(
    token: &str,
    keys: &KeySet,
    issuer: &str,
    audience: &str,
    now: i64,
) -> Result<AccessClaims, VerifyError> {
    let v = verify(token, keys, TYP_ACCESS_TOKEN)?;
    let claims: AccessClaims = serde_json::from_value(v).map_err(|_| VerifyError::Malformed)?;
    if claims.iss != issuer {
        return Err(VerifyError::Issuer);
    }
    if !claims.aud.contains(audience) {
        return Err(VerifyError::Audience);
    }
    if now >= claims.exp {
        return Err(VerifyError::Expired);
    }
    Ok(claims)
}

/// How [`verify_id_token`] treats `exp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// Refused at or after `exp`, at this time (Unix seconds).
    EnforceAt(i64),
    /// Accepted after `exp`: an `id_token_hint` names a past sign-in, and RP-Initiated Logout
    /// 1.0 §2 lets the OP accept it expired. Only for that use.
    AcceptExpired,
}

/// Verifies one of our ID tokens: signature (current or retired key, the algorithm taken from
/// the key), `typ` (an access token is refused), issuer, and expiry as `expiry` says.
pub fn verify_id_token(
    token: &str,
    keys: &KeySet,
    issuer: &str,
    expiry: Expiry,
) -> Result<IdClaims, VerifyError> {
    let (v, alg) = verify_signed(token, keys, TYP_ID_TOKEN)?;
    // Our ID tokens are never signed by a key only access tokens use (EdDSA).
    if !alg.signs_id_tokens() {
        return Err(VerifyError::Algorithm);
    }
    let claims: IdClaims = serde_json::from_value(v).map_err(|_| VerifyError::Malformed)?;
    if claims.iss != issuer {
        return Err(VerifyError::Issuer);
    }
    if let Expiry::EnforceAt(now) = expiry {
        if now >= claims.exp {
            return Err(VerifyError::Expired);
        }
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Encrypter, KeyBytes};
    use crate::keys::{generate, load};
    use crate::model::SigningAlg;

    fn keyset() -> KeySet {
        let enc = Encrypter::new(
            &KeyBytes::from_hex(&KeyBytes::generate_hex()).unwrap(),
            None,
        )
        .unwrap();
        let es = load(&generate(SigningAlg::ES256, &enc, 0, 0).unwrap(), &enc).unwrap();
        let rs = load(&generate(SigningAlg::RS256, &enc, 0, 0).unwrap(), &enc).unwrap();
        let ed = load(&generate(SigningAlg::EdDSA, &enc, 0, 0).unwrap(), &enc).unwrap();
        KeySet::new(vec![es, rs, ed])
    }

    fn claims(exp: i64) -> AccessClaims {
        AccessClaims {
            iss: "https://as.example".into(),
            sub: "usr_1".into(),
            aud: Audience::one("https://api.example"),
            exp,
            iat: 0,
            jti: "j".into(),
            client_id: "cl_1".into(),
            scope: "openid".into(),
            auth_time: None,
            sid: None,
            fid: None,
        }
    }

    #[test]
    fn round_trip_every_algorithm() {
        let ks = keyset();
        for alg in SigningAlg::ALL {
            let t = sign(ks.active(alg, 0).unwrap(), TYP_ACCESS_TOKEN, &claims(100)).unwrap();
            let api = "https://api.example";
            assert_eq!(
                verify_access_token(&t, &ks, "https://as.example", api, 50).unwrap(),
                claims(100)
            );
            assert_eq!(
                verify_access_token(&t, &ks, "https://as.example", api, 100),
                Err(VerifyError::Expired)
            );
            assert_eq!(
                verify_access_token(&t, &ks, "https://other.example", api, 50),
                Err(VerifyError::Issuer)
            );
            assert_eq!(
                verify_access_token(
                    &t,
                    &ks,
                    "https://as.example",
                    "https://as.example/userinfo",
                    50
                ),
                Err(VerifyError::Audience)
            );
            assert_eq!(verify(&t, &ks, TYP_ID_TOKEN), Err(VerifyError::Type));
        }
    }

    #[test]
    fn header_tricks_are_refused() {
        let ks = keyset();
        let key = ks.active(SigningAlg::ES256, 0).unwrap();
        let t = sign(key, TYP_ACCESS_TOKEN, &claims(100)).unwrap();
        let parts: Vec<&str> = t.split('.').collect();
        let enc = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(&v).unwrap());
        for header in [
            serde_json::json!({"alg": "none", "typ": "at+jwt", "kid": key.kid.as_str()}),
            serde_json::json!({"alg": "HS256", "typ": "at+jwt", "kid": key.kid.as_str()}),
            serde_json::json!({"alg": "RS256", "typ": "at+jwt", "kid": key.kid.as_str()}),
            serde_json::json!({"alg": "ES256", "typ": "at+jwt", "kid": "../../dev/null"}),
            serde_json::json!({"alg": "ES256", "typ": "at+jwt", "jku": "https://evil.example/jwks"}),
        ] {
            for sig in [parts[2], ""] {
                let forged = format!("{}.{}.{}", enc(header.clone()), parts[1], sig);
                assert!(verify(&forged, &ks, TYP_ACCESS_TOKEN).is_err(), "{header}");
            }
        }
        // A tampered payload fails the signature.
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            enc(serde_json::to_value(claims(999)).unwrap()),
            parts[2]
        );
        assert_eq!(
            verify(&forged, &ks, TYP_ACCESS_TOKEN),
            Err(VerifyError::Signature)
        );
    }

    #[test]
    fn an_eddsa_token_verifies_with_its_own_key_and_algorithm_only() {
        let ks = keyset();
        let ed = ks.active(SigningAlg::EdDSA, 0).unwrap();
        let es = ks.active(SigningAlg::ES256, 0).unwrap();
        let t = sign(ed, TYP_ACCESS_TOKEN, &claims(100)).unwrap();
        let parts: Vec<&str> = t.split('.').collect();
        let enc = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(&v).unwrap());
        // Ed25519 signatures are 64 bytes.
        assert_eq!(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().len(), 64);
        // Another algorithm named for the EdDSA key, or EdDSA named for another key.
        for (alg, kid) in [
            ("ES256", ed.kid.as_str()),
            ("RS256", ed.kid.as_str()),
            ("Ed25519", ed.kid.as_str()),
            ("EdDSA", es.kid.as_str()),
        ] {
            let header = enc(serde_json::json!({"alg": alg, "typ": "at+jwt", "kid": kid}));
            let forged = format!("{header}.{}.{}", parts[1], parts[2]);
            assert!(
                verify(&forged, &ks, TYP_ACCESS_TOKEN).is_err(),
                "{alg} {kid}"
            );
        }
        // Signed by the EdDSA key itself, but the header names another algorithm: refused for
        // the header, before any signature is checked.
        for alg in ["ES256", "RS256", "Ed25519", "none", "HS256"] {
            let header =
                enc(serde_json::json!({"alg": alg, "typ": "at+jwt", "kid": ed.kid.as_str()}));
            let message = format!("{header}.{}", parts[1]);
            let sig = URL_SAFE_NO_PAD.encode(ed.sign(message.as_bytes()).unwrap());
            assert_eq!(
                verify(&format!("{message}.{sig}"), &ks, TYP_ACCESS_TOKEN),
                Err(VerifyError::Algorithm),
                "{alg}"
            );
        }
        // An ES256 signature under an EdDSA header and kid, and a short signature.
        let es_token = sign(es, TYP_ACCESS_TOKEN, &claims(100)).unwrap();
        let es_sig = es_token.rsplit('.').next().unwrap();
        let short = URL_SAFE_NO_PAD.encode([0u8; 63]);
        for sig in [es_sig, short.as_str(), ""] {
            let forged = format!("{}.{}.{sig}", parts[0], parts[1]);
            assert_eq!(
                verify(&forged, &ks, TYP_ACCESS_TOKEN),
                Err(VerifyError::Signature)
            );
        }
    }

    fn id_claims(exp: i64) -> IdClaims {
        IdClaims {
            iss: "https://as.example".into(),
            sub: "usr_1".into(),
            aud: "cl_1".into(),
            azp: "cl_1".into(),
            exp,
            iat: 0,
            auth_time: 0,
            nonce: None,
            sid: "ses_1".into(),
            at_hash: None,
            email: None,
            email_verified: None,
        }
    }

    #[test]
    fn id_tokens_verify_expired_only_when_asked() {
        let ks = keyset();
        let iss = "https://as.example";
        for alg in [SigningAlg::ES256, SigningAlg::RS256] {
            let t = sign(ks.active(alg, 0).unwrap(), TYP_ID_TOKEN, &id_claims(100)).unwrap();
            assert_eq!(
                verify_id_token(&t, &ks, iss, Expiry::EnforceAt(99)),
                Ok(id_claims(100))
            );
            assert_eq!(
                verify_id_token(&t, &ks, iss, Expiry::EnforceAt(100)),
                Err(VerifyError::Expired)
            );
            assert_eq!(
                verify_id_token(&t, &ks, iss, Expiry::AcceptExpired),
                Ok(id_claims(100))
            );
            assert_eq!(
                verify_id_token(&t, &ks, "https://other.example", Expiry::AcceptExpired),
                Err(VerifyError::Issuer)
            );
            // An access token is not an ID token, whatever its claims.
            let at = sign(
                ks.active(alg, 0).unwrap(),
                TYP_ACCESS_TOKEN,
                &id_claims(100),
            )
            .unwrap();
            assert_eq!(
                verify_id_token(&at, &ks, iss, Expiry::AcceptExpired),
                Err(VerifyError::Type)
            );
        }
    }

    #[test]
    fn an_id_token_signed_by_the_eddsa_key_is_refused() {
        let ks = keyset();
        let ed = ks.active(SigningAlg::EdDSA, 0).unwrap();
        let t = sign(ed, TYP_ID_TOKEN, &id_claims(100)).unwrap();
        // A valid signature, `typ: JWT`, our issuer: still not one of our ID tokens.
        assert!(verify(&t, &ks, TYP_ID_TOKEN).is_ok());
        assert_eq!(
            verify_id_token(&t, &ks, "https://as.example", Expiry::AcceptExpired),
            Err(VerifyError::Algorithm)
        );
    }

    #[test]
    fn retired_keys_still_verify_hints() {
        let enc = Encrypter::new(
            &KeyBytes::from_hex(&KeyBytes::generate_hex()).unwrap(),
            None,
        )
        .unwrap();
        let mut stored = generate(SigningAlg::RS256, &enc, 0, 0).unwrap();
        let signer = load(&stored, &enc).unwrap();
        let t = sign(&signer, TYP_ID_TOKEN, &id_claims(100)).unwrap();
        stored.retired_at = Some(50);
        let ks = KeySet::new(vec![load(&stored, &enc).unwrap()]);
        assert!(ks.active(SigningAlg::RS256, 60).is_err());
        assert_eq!(
            verify_id_token(&t, &ks, "https://as.example", Expiry::AcceptExpired),
            Ok(id_claims(100))
        );
    }

    #[test]
    fn audience_is_a_string_when_single_and_an_array_otherwise() {
        let one = serde_json::to_value(Audience::one("a")).unwrap();
        assert_eq!(one, serde_json::json!("a"));
        let many = Audience::new(vec!["a".into(), "b".into()]);
        assert_eq!(
            serde_json::to_value(&many).unwrap(),
            serde_json::json!(["a", "b"])
        );
        let back: Audience = serde_json::from_value(serde_json::json!(["a", "b"])).unwrap();
        assert!(back.contains("b") && !back.contains("c"));
        let back: Audience = serde_json::from_value(serde_json::json!("a")).unwrap();
        assert_eq!(back, Audience::one("a"));
    }

    #[test]
    fn at_hash_matches_spec_example() {
        // OIDC Core A.3 example values.
        assert_eq!(
            at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
    }
}
