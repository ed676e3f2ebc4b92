//! Randomness, keyed hashing and encryption at rest (AES-256-GCM), all over aws-lc-rs.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::digest;
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// `n` random bytes, base64url without padding.
pub fn random_token(n: usize) -> String {
    URL_SAFE_NO_PAD.encode(random_bytes(n))
}

/// `n` random bytes from the operating system's generator.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    // SystemRandom only fails if the OS generator is unavailable, which aws-lc treats as fatal
    // anyway; we fall back to an all-zero buffer never, we abort the process instead.
    if SystemRandom::new().fill(&mut buf).is_err() {
        std::process::abort();
    }
    buf
}

/// SHA-256, base64url.
pub fn sha256_b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, data))
}

/// Constant-time equality of two byte strings.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Errors of key material parsing and decryption. Never carries key bytes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CryptoError {
    #[error("a key must be 32 bytes written as 64 hexadecimal characters")]
    BadKeyLength,
    #[error("the key is a published sample value")]
    SampleKey,
    #[error("the key has too little variety to be random")]
    WeakKey,
    #[error("encrypted blob is malformed")]
    MalformedBlob,
    #[error("encrypted blob was sealed under key {0}, which is not configured")]
    UnknownKey(String),
    #[error("encrypted blob failed authentication (wrong key, row or purpose)")]
    Unauthentic,
}

/// Sample values found in documentation and tutorials; refused as keys.
const SAMPLE_KEYS: &[&str] = &[
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
    "deadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeef",
    "changemechangemechangemechangemechangemechangemechangemechangeme",
    // FIPS-197 appendix C.3 and NIST SP 800-38A F.1.5 AES-256 test keys.
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
    "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
];

/// 32 secret bytes parsed from 64 hex characters. Zeroised on drop; `Debug` is redacted and
/// there is no `Display` or `Serialize`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct KeyBytes([u8; 32]);

impl fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyBytes(<redacted>)")
    }
}

impl KeyBytes {
    /// Parses 64 hex characters, refusing sample and low-variety values.
    pub fn from_hex(text: &str) -> Result<Self, CryptoError> {
        let text = text.trim();
        if text.len() != 64 {
            return Err(CryptoError::BadKeyLength);
        }
        let lower = text.to_ascii_lowercase();
        if SAMPLE_KEYS.contains(&lower.as_str()) {
            return Err(CryptoError::SampleKey);
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&lower, &mut bytes).map_err(|_| CryptoError::BadKeyLength)?;
        let mut distinct = bytes.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() < 12 {
            bytes.zeroize();
            return Err(CryptoError::WeakKey);
        }
        Ok(Self(bytes))
    }

    /// A fresh random key, as hex (used only by `--dev` to write its `.env`).
    pub fn generate_hex() -> String {
        hex::encode(random_bytes(32))
    }

    fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// The keyed hash for issued secrets (client secrets, codes, refresh tokens, sessions).
/// Independent of the encryption key.
pub struct HashKey(hmac::Key);

impl fmt::Debug for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashKey(<redacted>)")
    }
}

impl HashKey {
    pub fn new(key: &KeyBytes) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, key.bytes()))
    }

    /// HMAC-SHA256 of `value`, base64url: what storage keeps instead of the secret.
    pub fn hash(&self, value: &str) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.0, value.as_bytes()))
    }

    /// Constant-time check of `value` against a stored hash.
    pub fn verify(&self, value: &str, stored: &str) -> bool {
        constant_time_eq(self.hash(value).as_bytes(), stored.as_bytes())
    }
}

/// AES-256-GCM encryption at rest. Each blob is
/// `v1.<key id>.<base64url(nonce || ciphertext || tag)>`, sealed with AAD = purpose and row id,
/// so a blob copied to another row or purpose fails to open.
pub struct Encrypter {
    current: (String, LessSafeKey),
    previous: Option<(String, LessSafeKey)>,
}

impl fmt::Debug for Encrypter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encrypter")
            .field("key_id", &self.current.0)
            .finish_non_exhaustive()
    }
}

fn key_id_of(key: &KeyBytes) -> String {
    // A short fingerprint: it names the key, and reveals nothing useful about it.
    let d = digest::digest(&digest::SHA256, key.bytes());
    hex::encode(&d.as_ref()[..4])
}

fn aead_key(key: &KeyBytes) -> Result<LessSafeKey, CryptoError> {
    UnboundKey::new(&AES_256_GCM, key.bytes())
        .map(LessSafeKey::new)
        .map_err(|_| CryptoError::BadKeyLength)
}

impl Encrypter {
    pub fn new(current: &KeyBytes, previous: Option<&KeyBytes>) -> Result<Self, CryptoError> {
        Ok(Self {
            current: (key_id_of(current), aead_key(current)?),
            previous: match previous {
                Some(p) => Some((key_id_of(p), aead_key(p)?)),
                None => None,
            },
        })
    }

    pub fn current_key_id(&self) -> &str {
        &self.current.0
    }

    fn aad(purpose: &str, row: &str) -> Vec<u8> {
        format!("portcullis:{purpose}:{row}").into_bytes()
    }

    pub fn seal(&self, purpose: &str, row: &str, plaintext: &[u8]) -> String {
        let nonce_bytes = random_bytes(NONCE_LEN);
        let mut nonce_arr = [0u8; NONCE_LEN];
        nonce_arr.copy_from_slice(&nonce_bytes);
        let mut buf = plaintext.to_vec();
        let sealed = self.current.1.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce_arr),
            Aad::from(Self::aad(purpose, row)),
            &mut buf,
        );
        if sealed.is_err() {
            // Only fails for absurd lengths; never for our key blobs.
            std::process::abort();
        }
        let mut out = nonce_bytes;
        out.extend_from_slice(&buf);
        buf.zeroize();
        format!("v1.{}.{}", self.current.0, URL_SAFE_NO_PAD.encode(out))
    }

    pub fn open(&self, purpose: &str, row: &str, blob: &str) -> Result<Vec<u8>, CryptoError> {
        let mut parts = blob.splitn(3, '.');
        let (Some("v1"), Some(kid), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(CryptoError::MalformedBlob);
        };
        let key = if kid == self.current.0 {
            &self.current.1
        } else {
            match &self.previous {
                Some((pid, pk)) if pid == kid => pk,
                _ => return Err(CryptoError::UnknownKey(kid.to_owned())),
            }
        };
        let raw = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| CryptoError::MalformedBlob)?;
        if raw.len() < NONCE_LEN + 16 {
            return Err(CryptoError::MalformedBlob);
        }
        let (nonce, rest) = raw.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::MalformedBlob)?;
        let mut buf = rest.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(Self::aad(purpose, row)), &mut buf)
            .map_err(|_| CryptoError::Unauthentic)?;
        let out = plain.to_vec();
        buf.zeroize();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> KeyBytes {
        KeyBytes::from_hex(&KeyBytes::generate_hex()).unwrap()
    }

    #[test]
    fn sample_and_short_keys_are_refused() {
        assert_eq!(
            KeyBytes::from_hex("abcd").unwrap_err(),
            CryptoError::BadKeyLength
        );
        assert_eq!(
            KeyBytes::from_hex(&"0".repeat(64)).unwrap_err(),
            CryptoError::SampleKey
        );
        assert_eq!(
            KeyBytes::from_hex(&"ab".repeat(32)).unwrap_err(),
            CryptoError::WeakKey
        );
        assert!(format!("{:?}", key()).contains("redacted"));
    }

    #[test]
    fn blobs_are_bound_to_row_and_purpose() {
        let e = Encrypter::new(&key(), None).unwrap();
        let blob = e.seal("signing_key", "k_1", b"secret");
        assert!(blob.starts_with(&format!("v1.{}.", e.current_key_id())));
        assert_eq!(e.open("signing_key", "k_1", &blob).unwrap(), b"secret");
        assert_eq!(
            e.open("signing_key", "k_2", &blob).unwrap_err(),
            CryptoError::Unauthentic
        );
        assert_eq!(
            e.open("totp", "k_1", &blob).unwrap_err(),
            CryptoError::Unauthentic
        );
        let other = Encrypter::new(&key(), None).unwrap();
        assert!(matches!(
            other.open("signing_key", "k_1", &blob),
            Err(CryptoError::UnknownKey(_))
        ));
    }

    #[test]
    fn previous_key_still_opens() {
        let old = key();
        let e_old = Encrypter::new(&old, None).unwrap();
        let blob = e_old.seal("p", "r", b"x");
        let e_new = Encrypter::new(&key(), Some(&old)).unwrap();
        assert_eq!(e_new.open("p", "r", &blob).unwrap(), b"x");
    }

    #[test]
    fn keyed_hash_verifies_in_constant_time() {
        let h = HashKey::new(&key());
        let stored = h.hash("abc");
        assert!(h.verify("abc", &stored));
        assert!(!h.verify("abd", &stored));
    }
}
