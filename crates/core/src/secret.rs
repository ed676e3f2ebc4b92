//! Issued secrets: client secrets, authorization codes, refresh tokens, session and flow
//! cookies. Each is 256 random bits with a recognisable prefix and a CRC32 checksum, so secret
//! scanners can find leaked ones and typos are rejected before any lookup. Only keyed hashes
//! are stored.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};

use crate::crypto::{random_bytes, HashKey};

/// What a secret is for; decides its prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretKind {
    ClientSecret,
    AuthorizationCode,
    RefreshToken,
    SessionCookie,
    FlowCookie,
    /// An API's credential at the introspection endpoint.
    ApiSecret,
    /// The admin HTTP API's bearer token.
    AdminToken,
}

impl SecretKind {
    pub fn prefix(self) -> &'static str {
        match self {
            SecretKind::ClientSecret => "pcs_",
            SecretKind::AuthorizationCode => "pca_",
            SecretKind::RefreshToken => "pcr_",
            SecretKind::SessionCookie => "pck_",
            SecretKind::FlowCookie => "pcf_",
            SecretKind::ApiSecret => "pci_",
            SecretKind::AdminToken => "pcm_",
        }
    }
}

/// A freshly issued secret: shown once, then only its hash is kept.
pub struct IssuedSecret {
    pub value: SecretString,
    pub hash: String,
}

impl std::fmt::Debug for IssuedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedSecret")
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

fn checksum(body: &str) -> String {
    let crc = crc32fast::hash(body.as_bytes());
    URL_SAFE_NO_PAD.encode(crc.to_be_bytes())
}

/// Issues a new secret of `kind`.
pub fn issue(kind: SecretKind, key: &HashKey) -> IssuedSecret {
    let body = URL_SAFE_NO_PAD.encode(random_bytes(32));
    let value = format!("{}{}{}", kind.prefix(), body, checksum(&body));
    let hash = key.hash(&value);
    IssuedSecret {
        value: SecretString::from(value),
        hash,
    }
}

/// Checks prefix, length and checksum of a presented secret and returns its lookup hash.
/// `None` means it cannot be one of ours (no lookup needed).
pub fn hash_presented(kind: SecretKind, presented: &str, key: &HashKey) -> Option<String> {
    if !presented.is_ascii() {
        return None;
    }
    let rest = presented.strip_prefix(kind.prefix())?;
    // 32 bytes -> 43 base64url chars; CRC32 -> 6 chars.
    if rest.len() != 49 {
        return None;
    }
    let (body, sum) = rest.split_at(43);
    if checksum(body) != sum {
        return None;
    }
    Some(key.hash(presented))
}

/// Borrow the text of a secret (for the one moment it is shown or sent).
pub fn reveal(secret: &SecretString) -> &str {
    secret.expose_secret()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KeyBytes;

    #[test]
    fn issued_secret_round_trips_and_rejects_typos() {
        let key = HashKey::new(&KeyBytes::from_hex(&KeyBytes::generate_hex()).unwrap());
        let s = issue(SecretKind::RefreshToken, &key);
        let text = reveal(&s.value).to_owned();
        assert!(text.starts_with("pcr_"));
        assert_eq!(
            hash_presented(SecretKind::RefreshToken, &text, &key),
            Some(s.hash.clone())
        );
        assert_eq!(
            hash_presented(SecretKind::AuthorizationCode, &text, &key),
            None
        );
        let mut typo = text.clone();
        typo.replace_range(10..11, if &text[10..11] == "A" { "B" } else { "A" });
        assert_eq!(hash_presented(SecretKind::RefreshToken, &typo, &key), None);
        assert!(!format!("{s:?}").contains(&text));
        // A multi-byte character where the checksum starts is refused, not a panic.
        let mut tricky = String::from("pcr_");
        tricky.push_str(&"a".repeat(42));
        tricky.push('é');
        tricky.push_str("aaaaa");
        assert_eq!(tricky.len() - 4, 49);
        assert_eq!(
            hash_presented(SecretKind::RefreshToken, &tricky, &key),
            None
        );
    }
}
