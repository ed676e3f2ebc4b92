//! Device cookies (PRACTICES §6): proof that this browser signed in to this account before, so
//! it may keep trying while the account is throttled for everyone else (an attacker cannot lock
//! the owner out). Issued at a successful sign-in, signed with the keyed hash, expiring, and
//! bound to the user's current password hash and device epoch: a password change, or
//! `portcullis users revoke-devices`, revokes every device cookie of the account. A device has its own small failure limit (the caller enforces it).
//!
//! The value is base64url(`device_id|user_id|expires_at|tag`), with
//! `tag = HMAC(hash key, "device-cookie|device_id|user_id|expires_at|password fingerprint")`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::crypto::{self, HashKey};
use crate::model::User;

/// A verified device cookie.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// Random, 128 bits, base64url: the key of the device's own limit.
    pub id: String,
    pub expires_at: i64,
}

fn tag_input(device_id: &str, user: &User, expires_at: i64) -> String {
    // A short fingerprint of the password hash: changes whenever the password does.
    let fingerprint = crypto::sha256_b64(user.password_hash.as_bytes());
    format!(
        "device-cookie|{device_id}|{}|{expires_at}|{fingerprint}|{}",
        user.id, user.device_epoch
    )
}

/// A new device cookie value for `user`, valid for `lifetime` seconds from `now`.
pub fn issue(key: &HashKey, user: &User, now: i64, lifetime: i64) -> (String, Device) {
    let id = crypto::random_token(16);
    let expires_at = now + lifetime;
    let tag = key.hash(&tag_input(&id, user, expires_at));
    let value = URL_SAFE_NO_PAD.encode(format!("{id}|{}|{expires_at}|{tag}", user.id));
    (value, Device { id, expires_at })
}

/// The device, if `value` is a cookie issued for `user` that has not expired at `now` and was
/// issued under the user's current password.
pub fn verify(key: &HashKey, value: &str, user: &User, now: i64) -> Option<Device> {
    if value.len() > 512 {
        return None;
    }
    let decoded = String::from_utf8(URL_SAFE_NO_PAD.decode(value).ok()?).ok()?;
    let mut parts = decoded.split('|');
    let (Some(id), Some(user_id), Some(expires), Some(tag), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let expires_at: i64 = expires.parse().ok()?;
    // The keyed hash is computed whatever the outcome, so a known and an unknown account cost
    // the same.
    let tag_ok = key.verify(&tag_input(id, user, expires_at), tag);
    (tag_ok && user_id == user.id.as_str() && now < expires_at).then(|| Device {
        id: id.to_owned(),
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KeyBytes;
    use crate::ids::UserId;

    fn user(hash: &str) -> User {
        User {
            id: UserId::generate(),
            email: "a@example.com".into(),
            email_key: "a@example.com".into(),
            email_verified: false,
            password_hash: hash.into(),
            disabled: false,
            created_at: 0,
            device_epoch: 0,
            password_changed_at: None,
            password_version: 0,
        }
    }

    #[test]
    fn issued_for_one_user_and_password_until_expiry() {
        let key = HashKey::new(&KeyBytes::from_hex(&KeyBytes::generate_hex()).unwrap());
        let alice = user("$argon2id$one");
        let (value, dev) = issue(&key, &alice, 1_000, 100);
        assert_eq!(verify(&key, &value, &alice, 1_050), Some(dev.clone()));
        assert_eq!(verify(&key, &value, &alice, 1_100), None, "expired");
        let bob = user("$argon2id$one");
        assert_eq!(verify(&key, &value, &bob, 1_050), None, "another account");
        let changed = User {
            password_hash: "$argon2id$two".into(),
            ..alice.clone()
        };
        assert_eq!(
            verify(&key, &value, &changed, 1_050),
            None,
            "password changed"
        );
        let revoked = User {
            device_epoch: 1,
            password_changed_at: None,
            password_version: 0,
            ..alice.clone()
        };
        assert_eq!(
            verify(&key, &value, &revoked, 1_050),
            None,
            "devices revoked"
        );
        let other_key = HashKey::new(&KeyBytes::from_hex(&KeyBytes::generate_hex()).unwrap());
        assert_eq!(verify(&other_key, &value, &alice, 1_050), None, "forged");
        // Tampering with the expiry breaks the tag.
        let decoded = String::from_utf8(URL_SAFE_NO_PAD.decode(&value).unwrap()).unwrap();
        let tampered = decoded.replace("|1100|", "|9999999999|");
        let tampered = URL_SAFE_NO_PAD.encode(tampered);
        assert_eq!(verify(&key, &tampered, &alice, 1_050), None);
        for junk in ["", "x", "%%%", &"A".repeat(600)] {
            assert_eq!(verify(&key, junk, &alice, 1_050), None);
        }
        assert_ne!(
            issue(&key, &alice, 1_000, 100).1.id,
            dev.id,
            "ids are random"
        );
    }
}
