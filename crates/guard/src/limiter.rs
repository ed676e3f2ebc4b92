//! Attempt limiting for brute-force defenses: at most `max` attempts per key within a window
//! (for example 5 sign-ins per account per 15 minutes).
//!
//! An attempt is *reserved* before the work it guards (the password check) and counted at once,
//! under one lock, so a burst of parallel requests cannot all pass the check before any counter
//! moves. The caller then settles it: [`AttemptLimiter::clear`] after a success that should
//! reset the key (a correct password resets the account), [`AttemptLimiter::refund`] to give
//! back an attempt that was not a failure (a correct password does not count against its
//! address), or nothing: a failure stays counted.
//!
//! Memory is bounded: at most `capacity` keys are tracked. A full limiter drops only keys whose
//! window has ended, never one with live attempts; new keys beyond the cap share
//! [`OVERFLOW_BUCKETS`] overflow buckets (chosen by a keyed hash of the key) with the same
//! limit, so a flood of fresh keys fails closed instead of pushing an attacked account out of
//! memory, and no single flood can exhaust the room left for everyone else.
//!
//! Hand-written: `governor` (the well-kept rate-limit crate) meters request rates, but cannot
//! reset a key on success, refund an attempt, or guarantee that a full keyed store never
//! forgets a key with attempts inside its window, which is what brute-force limits need.
//!
//! The trait is async so that a shared store (Redis, for several instances) can implement it
//! without touching callers.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

/// `max` attempts per `window_secs` seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub max: u32,
    pub window_secs: i64,
}

/// The answer to a reservation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Counted; `remaining` more attempts fit in the window, which ends (its count resets)
    /// `reset_after` seconds from now.
    Allowed { remaining: u32, reset_after: i64 },
    /// Not counted: the key is at its limit until `retry_after` seconds from now.
    Limited { retry_after: i64 },
}

impl Decision {
    pub fn is_allowed(self) -> bool {
        matches!(self, Decision::Allowed { .. })
    }
}

/// A limiter shared by every request (and, for a shared store, every instance).
#[async_trait]
pub trait AttemptLimiter: Send + Sync {
    /// Reserves (counts) one attempt for `key` at `now` (Unix seconds) if it is under the limit.
    async fn reserve(&self, key: &str, now: i64) -> Decision;
    /// Would an attempt for `key` be allowed at `now`? Counts nothing: for limits on failures
    /// that can only be known afterwards (then [`AttemptLimiter::reserve`] records one), where
    /// the guarded secret is too strong for a racing burst to matter.
    async fn check(&self, key: &str, now: i64) -> Decision;
    /// Forgets every attempt of `key`.
    async fn clear(&self, key: &str);
    /// Gives back one reserved attempt of `key`.
    async fn refund(&self, key: &str);
    /// Does the limiter keep `key`'s own count (rather than counting it in a shared overflow
    /// bucket)? A store without a capacity limit always does.
    async fn is_tracked(&self, _key: &str) -> bool {
        true
    }
    /// The limit it applies.
    fn limit(&self) -> Limit;
}

#[derive(Clone, Copy, Debug)]
struct Window {
    start: i64,
    count: u32,
}

impl Window {
    fn live(&self, now: i64, limit: Limit) -> bool {
        now < self.start + limit.window_secs && self.count > 0
    }

    fn reserve(&mut self, now: i64, limit: Limit) -> Decision {
        if !self.live(now, limit) {
            *self = Window {
                start: now,
                count: 0,
            };
        }
        if self.count >= limit.max {
            return Decision::Limited {
                retry_after: (self.start + limit.window_secs - now).max(1),
            };
        }
        self.count += 1;
        Decision::Allowed {
            remaining: limit.max - self.count,
            reset_after: (self.start + limit.window_secs - now).max(1),
        }
    }
}

struct State {
    keys: HashMap<String, Window>,
    overflow: Vec<Window>,
    last_sweep: i64,
}

/// The in-memory limiter (one process).
pub struct MemoryLimiter {
    limit: Limit,
    capacity: usize,
    state: Mutex<State>,
    bucket_hasher: std::collections::hash_map::RandomState,
}

/// The key under which every key beyond the capacity is counted.
/// How many shared buckets count the keys beyond the capacity.
pub const OVERFLOW_BUCKETS: usize = 256;

impl MemoryLimiter {
    /// A limiter tracking at most `capacity` keys (at least 1).
    pub fn new(limit: Limit, capacity: usize) -> Self {
        Self {
            limit: Limit {
                max: limit.max.max(1),
                window_secs: limit.window_secs.max(1),
            },
            capacity: capacity.max(1),
            state: Mutex::new(State {
                keys: HashMap::new(),
                overflow: vec![Window { start: 0, count: 0 }; OVERFLOW_BUCKETS],
                last_sweep: i64::MIN,
            }),
            bucket_hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// The overflow bucket of `key`: a keyed hash (a random key per limiter), so an attacker
    /// cannot aim a flood at the bucket of someone else's key.
    fn overflow_bucket(&self, key: &str) -> usize {
        use std::hash::BuildHasher;
        (self.bucket_hasher.hash_one(key) % OVERFLOW_BUCKETS as u64) as usize
    }

    /// Keys tracked now (the overflow buckets not included).
    pub fn tracked(&self) -> usize {
        self.state.lock().map(|s| s.keys.len()).unwrap_or(0)
    }

    fn reserve_now(&self, key: &str, now: i64) -> Decision {
        let limit = self.limit;
        let Ok(mut st) = self.state.lock() else {
            // A poisoned lock means a panic elsewhere: refuse rather than allow.
            return Decision::Limited {
                retry_after: limit.window_secs,
            };
        };
        if let Some(w) = st.keys.get_mut(key) {
            return w.reserve(now, limit);
        }
        if st.keys.len() >= self.capacity && st.last_sweep < now {
            // At most one sweep per second: drop only windows that have ended.
            st.keys.retain(|_, w| w.live(now, limit));
            st.last_sweep = now;
        }
        if st.keys.len() >= self.capacity {
            let b = self.overflow_bucket(key);
            return st.overflow[b].reserve(now, limit);
        }
        let mut w = Window {
            start: now,
            count: 0,
        };
        let d = w.reserve(now, limit);
        st.keys.insert(key.to_owned(), w);
        d
    }
}

#[async_trait]
impl AttemptLimiter for MemoryLimiter {
    async fn reserve(&self, key: &str, now: i64) -> Decision {
        self.reserve_now(key, now)
    }

    async fn check(&self, key: &str, now: i64) -> Decision {
        let limit = self.limit;
        let Ok(st) = self.state.lock() else {
            return Decision::Limited {
                retry_after: limit.window_secs,
            };
        };
        // An untracked key has no failures of its own: allowed. (Reading the shared overflow
        // bucket here would let a flood of fresh keys refuse everyone else.)
        let w = match st.keys.get(key) {
            Some(w) => *w,
            None => Window {
                start: now,
                count: 0,
            },
        };
        if w.live(now, limit) && w.count >= limit.max {
            Decision::Limited {
                retry_after: (w.start + limit.window_secs - now).max(1),
            }
        } else if w.live(now, limit) {
            Decision::Allowed {
                remaining: limit.max - w.count,
                reset_after: (w.start + limit.window_secs - now).max(1),
            }
        } else {
            Decision::Allowed {
                remaining: limit.max,
                reset_after: limit.window_secs,
            }
        }
    }

    async fn clear(&self, key: &str) {
        if let Ok(mut st) = self.state.lock() {
            if st.keys.remove(key).is_none() {
                // Its attempt went to an overflow bucket: give that one back.
                let b = self.overflow_bucket(key);
                st.overflow[b].count = st.overflow[b].count.saturating_sub(1);
            }
        }
    }

    async fn refund(&self, key: &str) {
        if let Ok(mut st) = self.state.lock() {
            match st.keys.get_mut(key) {
                Some(w) => w.count = w.count.saturating_sub(1),
                // It was counted in an overflow bucket.
                None => {
                    let b = self.overflow_bucket(key);
                    st.overflow[b].count = st.overflow[b].count.saturating_sub(1);
                }
            }
        }
    }

    async fn is_tracked(&self, key: &str) -> bool {
        self.state
            .lock()
            .map(|s| s.keys.contains_key(key))
            .unwrap_or(false)
    }

    fn limit(&self) -> Limit {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIVE: Limit = Limit {
        max: 5,
        window_secs: 900,
    };

    #[tokio::test]
    async fn five_per_window_then_limited_until_it_ends() {
        let l = MemoryLimiter::new(FIVE, 100);
        for i in 0..5 {
            assert_eq!(
                l.reserve("a", 1000 + i).await,
                Decision::Allowed {
                    remaining: 4 - i as u32,
                    reset_after: 900 - i
                }
            );
        }
        assert_eq!(
            l.reserve("a", 1010).await,
            Decision::Limited { retry_after: 890 }
        );
        assert!(l.reserve("b", 1010).await.is_allowed(), "keys are separate");
        assert!(!l.reserve("a", 1899).await.is_allowed());
        assert!(l.reserve("a", 1900).await.is_allowed(), "a new window");
    }

    #[tokio::test]
    async fn check_counts_nothing() {
        let l = MemoryLimiter::new(FIVE, 100);
        for _ in 0..10 {
            assert_eq!(
                l.check("a", 0).await,
                Decision::Allowed {
                    remaining: 5,
                    reset_after: 900
                }
            );
        }
        for _ in 0..5 {
            l.reserve("a", 0).await;
        }
        assert_eq!(
            l.check("a", 100).await,
            Decision::Limited { retry_after: 800 }
        );
        assert_eq!(
            l.check("a", 900).await,
            Decision::Allowed {
                remaining: 5,
                reset_after: 900
            }
        );
    }

    #[tokio::test]
    async fn clear_and_refund() {
        let l = MemoryLimiter::new(FIVE, 100);
        for _ in 0..5 {
            l.reserve("a", 0).await;
        }
        l.refund("a").await;
        assert!(l.reserve("a", 1).await.is_allowed());
        assert!(!l.reserve("a", 1).await.is_allowed());
        l.clear("a").await;
        assert!(l.reserve("a", 2).await.is_allowed());
    }

    #[tokio::test]
    async fn concurrent_reservations_never_exceed_the_limit() {
        let l = std::sync::Arc::new(MemoryLimiter::new(FIVE, 100));
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let l = l.clone();
                tokio::spawn(async move { l.reserve("a", 0).await.is_allowed() })
            })
            .collect();
        let mut allowed = 0;
        for t in tasks {
            allowed += usize::from(t.await.unwrap());
        }
        assert_eq!(allowed, 5);
    }

    #[tokio::test]
    async fn a_flood_of_new_keys_cannot_flush_a_limited_key() {
        let l = MemoryLimiter::new(FIVE, 1_000);
        for _ in 0..5 {
            l.reserve("acct:alice", 0).await;
        }
        assert!(!l.reserve("acct:alice", 0).await.is_allowed());
        // A million distinct keys within the window, over many seconds (sweeps run).
        let mut overflow_allowed = 0;
        for i in 0..1_000_000u32 {
            let now = i64::from(i / 2_000);
            let full = l.tracked() >= 1_000;
            if l.reserve(&format!("k{i}"), now).await.is_allowed() && full {
                overflow_allowed += 1;
            }
        }
        assert!(l.tracked() <= 1_000, "memory stays capped");
        assert!(
            !l.reserve("acct:alice", 600).await.is_allowed(),
            "still limited"
        );
        // Beyond the cap, new keys shared a few buckets with the same small limit.
        assert!(
            overflow_allowed <= 5 * OVERFLOW_BUCKETS,
            "{overflow_allowed}"
        );
        assert!(
            !l.reserve("fresh-key", 600).await.is_allowed(),
            "fail closed"
        );
        // A read-only check of an untracked key is not refused by the overflow bucket.
        assert!(l.check("another-fresh-key", 600).await.is_allowed());
        assert!(!l.check("acct:alice", 600).await.is_allowed());
        // Once windows end, sweeping frees room again.
        assert!(l.reserve("acct:alice", 900).await.is_allowed());
        assert!(l.reserve("fresh-key", 2_000).await.is_allowed());
    }
}
