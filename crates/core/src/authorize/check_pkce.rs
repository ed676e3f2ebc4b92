//! PKCE (RFC 7636): required for every client, `S256` only. A missing method is refused rather
//! than read as `plain`.

use crate::error::OAuthError;
use crate::params::Params;

pub(super) fn run(params: &Params) -> Result<String, OAuthError> {
    let challenge = params.get("code_challenge", 128)?.ok_or_else(|| {
        OAuthError::invalid_request("parameter 'code_challenge' is required (PKCE with S256)")
    })?;
    match params.get("code_challenge_method", 16)? {
        Some("S256") => {}
        Some(_) => {
            return Err(OAuthError::invalid_request(
                "code_challenge_method must be S256",
            ))
        }
        None => {
            return Err(OAuthError::invalid_request(
                "parameter 'code_challenge_method' is required and must be S256",
            ))
        }
    }
    // An S256 challenge is base64url of 32 bytes: exactly 43 characters.
    if challenge.len() != 43
        || !challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(OAuthError::invalid_request(
            "code_challenge must be 43 base64url characters",
        ));
    }
    Ok(challenge.to_owned())
}

/// Checks a `code_verifier` (43-128 unreserved characters) against a stored S256 challenge.
pub fn verify(verifier: &str, challenge: &str) -> bool {
    let ok_shape = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    ok_shape
        && crate::crypto::constant_time_eq(
            crate::crypto::sha256_b64(verifier.as_bytes()).as_bytes(),
            challenge.as_bytes(),
        )
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc7636_appendix_b() {
        assert!(super::verify(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!super::verify(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXx",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!super::verify(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
    }
}
