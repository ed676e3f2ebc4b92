//! Random values and the PKCE S256 challenge (RFC 7636).

use aws_lc_rs::digest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// `n` random bytes from the operating system's generator, base64url (no padding).
pub(crate) fn random(n: usize) -> crate::Result<String> {
    let mut buf = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut buf)
        .map_err(|_| crate::Error::Config("the system's random generator failed".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// The S256 challenge of `verifier`.
pub(crate) fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
}

/// The `at_hash` of an access token for an ID token signed with `alg`: the left half of the
/// access token's hash with the algorithm's hash function (OpenID Connect Core §3.1.3.6),
/// base64url.
pub(crate) fn at_hash(access_token: &str, alg: jsonwebtoken::Algorithm) -> String {
    use jsonwebtoken::Algorithm as A;
    let hash = match alg {
        A::ES384 | A::RS384 | A::PS384 | A::HS384 => &digest::SHA384,
        A::RS512 | A::PS512 | A::HS512 | A::EdDSA => &digest::SHA512,
        _ => &digest::SHA256,
    };
    let d = digest::digest(hash, access_token.as_bytes());
    let half = d.as_ref().len() / 2;
    URL_SAFE_NO_PAD.encode(&d.as_ref()[..half])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_rfc_examples() {
        // RFC 7636 appendix B.
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        // OpenID Connect Core A.3.
        assert_eq!(
            at_hash(
                "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y",
                jsonwebtoken::Algorithm::RS256
            ),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
        let a = random(32).unwrap();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random(32).unwrap());
    }
}
