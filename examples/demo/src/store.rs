//! In-memory, bounded server-side state: pending sign-ins (keyed by the transaction cookie's
//! random id), sessions (keyed by the session cookie's random id) and the `jti`s of logout
//! tokens already used. Tokens never leave this process: the browser holds only random ids.
//! One process only: a real deployment with several instances puts this in a shared store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use portcullis_client::{IdTokenClaims, PendingAuthorization, Tokens};

/// Most pending sign-ins held at once (each lives 10 minutes at most).
pub const MAX_PENDING: usize = 10_000;
/// Most sessions held at once.
pub const MAX_SESSIONS: usize = 100_000;
/// Most logout-token ids remembered at once.
pub const MAX_SEEN_JTI: usize = 100_000;
/// A pending sign-in (and its transaction cookie) lives this long, seconds.
pub const PENDING_TTL: i64 = 600;

/// A signed-in user's app session. Its tokens stay here.
#[derive(Debug)]
pub struct Session {
    pub claims: IdTokenClaims,
    pub tokens: Tokens,
    /// The latest ID token, for `id_token_hint` at logout.
    pub id_token: Option<portcullis_client::Secret>,
    /// When the app session ends at the latest (seconds since the epoch).
    pub expires_at: i64,
    /// How many times the access token was refreshed.
    pub refreshes: u32,
}

/// A session with the two values back-channel logout looks sessions up by.
pub struct Entry {
    pub sub: String,
    pub sid: Option<String>,
    /// One refresh at a time per session: a rotated refresh token must never be sent twice.
    pub session: Arc<tokio::sync::Mutex<Session>>,
}

/// Why something could not be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many pending sign-ins or sessions; try again later")]
pub struct Full;

/// A pending authorization, its browser binding, and the session it replaces.
type Pending = (PendingAuthorization, String, Option<String>);

#[derive(Default)]
pub struct Store {
    /// By transaction id: the pending authorization, the browser binding it needs, and the
    /// app session the browser had when it started (ended when the new one begins).
    pending: Mutex<HashMap<String, Pending>>,
    sessions: Mutex<HashMap<String, Entry>>,
    seen_jti: Mutex<HashMap<String, i64>>,
}

/// A poisoned lock only means another request panicked while holding it; the maps stay usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Store {
    /// Keeps `pending` under a new random id, which the transaction cookie carries, with a
    /// second random value for the browser's binding cookie, and the session id the browser
    /// sent (`replaces`). Returns both random values.
    pub fn put_pending(
        &self,
        pending: PendingAuthorization,
        replaces: Option<String>,
        now: i64,
    ) -> Result<(String, String), Full> {
        let mut map = lock(&self.pending);
        if map.len() >= MAX_PENDING {
            map.retain(|_, (p, _, _)| now - p.created_at < PENDING_TTL);
            if map.len() >= MAX_PENDING {
                return Err(Full);
            }
        }
        let id = portcullis_guard::csrf::new_token();
        let binding = portcullis_guard::csrf::new_token();
        map.insert(id.clone(), (pending, binding.clone(), replaces));
        Ok((id, binding))
    }

    /// Takes (once) the pending authorization `id`, if it is live and `binding` is the one it
    /// was given: a transaction cookie tossed in from a sibling domain comes without it. With
    /// it, the session id the browser had when the sign-in started.
    pub fn take_pending(
        &self,
        id: &str,
        binding: &str,
        now: i64,
    ) -> Option<(PendingAuthorization, Option<String>)> {
        use subtle::ConstantTimeEq;
        lock(&self.pending)
            .remove(id)
            .filter(|(p, b, _)| {
                now - p.created_at < PENDING_TTL
                    && p.created_at <= now + 60
                    && bool::from(b.as_bytes().ct_eq(binding.as_bytes()))
            })
            .map(|(p, _, old)| (p, old))
    }

    /// Stores a new session under a new random id.
    pub fn create_session(&self, session: Session, now: i64) -> Result<String, Full> {
        let mut map = lock(&self.sessions);
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, e| e.session.try_lock().map_or(true, |s| s.expires_at > now));
            if map.len() >= MAX_SESSIONS {
                return Err(Full);
            }
        }
        let id = portcullis_guard::csrf::new_token();
        map.insert(
            id.clone(),
            Entry {
                sub: session.claims.sub.clone(),
                sid: session.claims.sid.clone(),
                session: Arc::new(tokio::sync::Mutex::new(session)),
            },
        );
        Ok(id)
    }

    /// The session `id`.
    pub fn session(&self, id: &str) -> Option<Arc<tokio::sync::Mutex<Session>>> {
        lock(&self.sessions).get(id).map(|e| e.session.clone())
    }

    /// Ends the session `id`; true if it existed.
    pub fn remove_session(&self, id: &str) -> Option<Arc<tokio::sync::Mutex<Session>>> {
        lock(&self.sessions).remove(id).map(|e| e.session)
    }

    /// Ends every session of Portcullis session `sid` (and of `sub`, when given), or, without
    /// `sid`, every session of `sub`. Returns how many ended.
    pub fn remove_by_logout(&self, sid: Option<&str>, sub: Option<&str>) -> usize {
        let mut map = lock(&self.sessions);
        let before = map.len();
        map.retain(|_, e| {
            let hit = match (sid, sub) {
                (Some(sid), sub) => e.sid.as_deref() == Some(sid) && sub.is_none_or(|s| s == e.sub),
                (None, Some(sub)) => e.sub == sub,
                (None, None) => false,
            };
            !hit
        });
        before - map.len()
    }

    /// Records a logout token's `jti` until `until`; false if it was seen already (a replay)
    /// or the list is full of live entries.
    pub fn first_use_of_jti(&self, jti: &str, now: i64, until: i64) -> bool {
        let mut map = lock(&self.seen_jti);
        if map.len() >= MAX_SEEN_JTI {
            map.retain(|_, t| *t > now);
        }
        if map.contains_key(jti) || map.len() >= MAX_SEEN_JTI {
            return false;
        }
        map.insert(jti.to_owned(), until);
        true
    }

    /// How many sessions the app holds.
    pub fn session_count(&self) -> usize {
        lock(&self.sessions).len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn logout_token_ids_are_used_once() {
        let s = Store::default();
        assert!(s.first_use_of_jti("a", 100, 700));
        assert!(!s.first_use_of_jti("a", 101, 701), "a replay");
        assert!(s.first_use_of_jti("b", 101, 701));
    }

    #[test]
    fn pending_sign_ins_are_single_use_and_expire() {
        let s = Store::default();
        let p = |created_at| PendingAuthorization {
            state: "s".into(),
            nonce: "n".into(),
            code_verifier: portcullis_client::Secret::new("v"),
            redirect_uri: "https://app.example/callback".into(),
            max_age: None,
            created_at,
        };
        let (id, b) = s.put_pending(p(1000), None, 1000).unwrap();
        assert!(s.take_pending(&id, &b, 1001).is_some());
        assert!(s.take_pending(&id, &b, 1001).is_none(), "used once");
        let (id, b) = s.put_pending(p(1000), None, 1000).unwrap();
        assert!(
            s.take_pending(&id, &b, 1000 + PENDING_TTL).is_none(),
            "expired"
        );
        assert!(s.take_pending("unknown", &b, 1000).is_none());
        // Without the browser's binding (a tossed transaction cookie): refused, and spent.
        for tossed in ["another", ""] {
            let (id, b) = s.put_pending(p(1000), None, 1000).unwrap();
            assert!(s.take_pending(&id, tossed, 1001).is_none());
            assert!(s.take_pending(&id, &b, 1001).is_none(), "spent");
        }
        // The session the browser had when it started comes back, to be ended.
        let (id, b) = s.put_pending(p(1000), Some("old".into()), 1000).unwrap();
        let (_, replaces) = s.take_pending(&id, &b, 1001).unwrap();
        assert_eq!(replaces.as_deref(), Some("old"));
    }
}
