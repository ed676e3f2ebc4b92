//! The per-client request quota of the token endpoint (PRACTICES §6): authenticated clients
//! get `PORTCULLIS_CLIENT_QUOTA` requests per second each (GCRA via `governor`, with a burst of
//! the same size). The default is high enough for the load benchmark; an operator lowers it.
//! Keys are client ids, so memory is bounded by the number of registered clients.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use portcullis_core::grants::ClientQuota;
use portcullis_core::ids::ClientId;

/// Requests per second per client by default.
pub const DEFAULT_PER_SECOND: u32 = 30_000;

pub struct GovernorQuota {
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
    per_second: u32,
}

impl GovernorQuota {
    pub fn per_second(n: u32) -> Self {
        let n = NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: RateLimiter::keyed(Quota::per_second(n)),
            clock: DefaultClock::default(),
            per_second: n.get(),
        }
    }

    pub fn limit(&self) -> u32 {
        self.per_second
    }
}

impl GovernorQuota {
    /// The quota of any authenticated caller by its key (an API at introspection is keyed
    /// `api:<audience>`, which no client id can be).
    pub fn admit_key(&self, key: &str) -> Result<(), i64> {
        self.limiter
            .check_key(&key.to_owned())
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(self.clock.now());
                (wait.as_secs_f64().ceil() as i64).max(1)
            })
    }
}

impl ClientQuota for GovernorQuota {
    fn admit(&self, client: &ClientId) -> Result<(), i64> {
        self.limiter
            .check_key(&client.as_str().to_owned())
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(self.clock.now());
                (wait.as_secs_f64().ceil() as i64).max(1)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_has_its_own_quota() {
        let q = GovernorQuota::per_second(2);
        let a = ClientId::generate();
        let b = ClientId::generate();
        assert!(q.admit(&a).is_ok());
        assert!(q.admit(&a).is_ok());
        assert_eq!(q.admit(&a), Err(1));
        assert!(q.admit(&b).is_ok());
    }
}
