//! Sign-in throttling (PRACTICES §6): at most N failed sign-ins per window per account and per
//! client address (defaults 5 per 15 minutes), counted race-free by the guard's limiter.
//!
//! Each attempt reserves a slot on both keys *before* the password is checked, so a burst of
//! parallel guesses checks at most N passwords, and a correct password arriving after the
//! limit is refused like any other attempt. A success clears the account's counter and gives
//! the address its slot back; a failure keeps both. Two concurrent correct sign-ins of an
//! account that is not under attack both succeed (each takes one slot, and each success
//! clears the counter).
//!
//! A browser with a valid device cookie for the account (issued at an earlier successful
//! sign-in; see `portcullis_core::device`) answers only to a limit of its own
//! ([`DEVICE_MAX_FAILURES`] per window): not to the account's, nor to its address's or the
//! credential-stuffing block, so an attacker can lock the owner out neither by guessing the
//! account nor by sharing (or spoofing, through a broad proxy range) the owner's address. An
//! address itself never grants a bypass: without the cookie, a past success from it counts
//! for nothing.
//!
//! Credential stuffing (many accounts tried from one address) is caught separately: once an
//! address has failed on `stuffing.max` distinct accounts within `stuffing.window_secs`, it is
//! refused for one such window from that moment, whatever account it names, and the server
//! logs one `login.credential_stuffing` event (the signal the audit pipeline turns into an
//! alert).
//!
//! The account key is the normalised e-mail (its comparison key when it parses, so case,
//! whitespace and Unicode compatibility variants share one counter); unknown accounts are
//! counted exactly like known ones, before anything is looked up. The address key is the
//! guard's bucket of the resolved client address (IPv4 address, IPv6 /64).

use std::net::IpAddr;
use std::sync::Arc;

use portcullis_core::email::Email;
use portcullis_guard::client_addr::bucket;
use portcullis_guard::limiter::{AttemptLimiter, Decision, Limit, MemoryLimiter};
use unicode_normalization::UnicodeNormalization;

/// Failed sign-ins a recognised device may make per window while its account is throttled.
pub const DEVICE_MAX_FAILURES: u32 = 3;
/// Lifetime of a device cookie, seconds (90 days).
pub const DEVICE_COOKIE_LIFETIME: i64 = 90 * 24 * 3600;

/// The limiters of the sign-in form.
pub struct LoginLimits {
    account: Arc<dyn AttemptLimiter>,
    address: Arc<dyn AttemptLimiter>,
    device: Arc<dyn AttemptLimiter>,
    /// One slot per (address, account) pair and window: tells a new account from a repeat.
    stuffing_seen: Arc<dyn AttemptLimiter>,
    /// Distinct accounts failed per address.
    stuffing: Arc<dyn AttemptLimiter>,
    /// Addresses flagged for credential stuffing: one slot, taken when flagged, so the block
    /// lasts one whole window from that moment.
    stuffing_block: Arc<dyn AttemptLimiter>,
    /// One slot per (account, address) and window: a flood of refusals logs one line each,
    /// not one per request.
    log_once: MemoryLimiter,
    /// IPv6 clients are counted per network of this prefix length (64: one customer).
    ipv6_prefix: u8,
    /// Keys of the account-key hash.
    key_hashers: [std::collections::hash_map::RandomState; 2],
}

/// An address crossed the credential-stuffing threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StuffingDetected {
    /// The address bucket.
    pub address: String,
    /// Distinct accounts it failed on within the window.
    pub accounts: u32,
}

/// The slots one attempt holds, to settle once the password check is done.
#[must_use]
pub struct Reservation {
    /// The account's slot, or the device's for a recognised device.
    account: String,
    /// The address's slot; none for a recognised device.
    address: Option<String>,
}

/// The attempt was refused: retry after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after: i64,
}

impl LoginLimits {
    /// In-memory limiters (one process): `limit` on each account and address, `stuffing` as
    /// distinct accounts per address, at most `capacity` keys each.
    pub fn in_memory(limit: Limit, stuffing: Limit, capacity: usize) -> Self {
        let memory =
            |l: Limit| -> Arc<dyn AttemptLimiter> { Arc::new(MemoryLimiter::new(l, capacity)) };
        Self {
            account: memory(limit),
            address: memory(limit),
            device: memory(Limit {
                max: DEVICE_MAX_FAILURES.min(limit.max),
                window_secs: limit.window_secs,
            }),
            stuffing_seen: memory(Limit {
                max: 1,
                window_secs: stuffing.window_secs,
            }),
            stuffing: memory(stuffing),
            stuffing_block: memory(Limit {
                max: 1,
                window_secs: stuffing.window_secs,
            }),
            log_once: MemoryLimiter::new(
                Limit {
                    max: 1,
                    window_secs: limit.window_secs,
                },
                capacity,
            ),
            ipv6_prefix: 64,
            key_hashers: [
                std::collections::hash_map::RandomState::new(),
                std::collections::hash_map::RandomState::new(),
            ],
        }
    }

    /// Counts IPv6 clients per `/prefix` (32 to 128) instead of per /64.
    pub fn with_ipv6_prefix(mut self, prefix: u8) -> Self {
        self.ipv6_prefix = prefix.clamp(32, 128);
        self
    }

    /// Limiters from elsewhere (a shared store for several instances), in the order of the
    /// fields: account, address, device, stuffing pairs, stuffing counts, stuffing blocks.
    pub fn new(limiters: [Arc<dyn AttemptLimiter>; 6]) -> Self {
        let [account, address, device, stuffing_seen, stuffing, stuffing_block] = limiters;
        Self {
            account,
            address,
            device,
            stuffing_seen,
            stuffing,
            stuffing_block,
            log_once: MemoryLimiter::new(
                Limit {
                    max: 1,
                    window_secs: 900,
                },
                100_000,
            ),
            ipv6_prefix: 64,
            key_hashers: [
                std::collections::hash_map::RandomState::new(),
                std::collections::hash_map::RandomState::new(),
            ],
        }
    }

    /// The counter key of whatever was typed as the e-mail address: a 128-bit keyed hash of
    /// its normalised form, so the limiters hold no e-mail addresses and every key has the
    /// same small size. (The hash key is random per process; a shared store would need one
    /// shared key.)
    pub fn account_key(&self, typed: &str) -> String {
        use std::hash::BuildHasher;
        let normalised = match Email::parse(typed) {
            Ok(e) => format!("@{}", e.key()),
            Err(_) => {
                let folded: String = typed.nfkc().collect::<String>().trim().to_lowercase();
                format!("?{}", folded.chars().take(320).collect::<String>())
            }
        };
        let [a, b] = &self.key_hashers;
        format!(
            "acct:{:016x}{:016x}",
            a.hash_one(&normalised),
            b.hash_one(&normalised)
        )
    }

    /// The counter key of a client address.
    pub fn address_key(&self, ip: IpAddr) -> String {
        format!("addr:{}", bucket(ip, self.ipv6_prefix))
    }

    /// Reserves one attempt for `typed_email` from `ip` at `now`; `device` is the id of a
    /// device cookie already verified for that account, if the browser sent one.
    pub async fn reserve(
        &self,
        typed_email: &str,
        ip: IpAddr,
        device: Option<&str>,
        now: i64,
    ) -> Result<Reservation, Throttled> {
        let account = self.account_key(typed_email);
        // A recognised device answers only to its own small limit: neither a throttled
        // account nor a busy or flagged address (a shared NAT, an attacker next door) can
        // lock its owner out.
        if let Some(id) = device {
            let key = format!("dev:{id}");
            return match self.device.reserve(&key, now).await {
                Decision::Allowed { .. } => Ok(Reservation {
                    account: key,
                    address: None,
                }),
                Decision::Limited { retry_after } => Err(Throttled { retry_after }),
            };
        }
        let address = self.address_key(ip);
        if let Decision::Limited { retry_after } = self.stuffing_block.check(&address, now).await {
            return Err(Throttled { retry_after });
        }
        if let Decision::Limited { retry_after } = self.address.reserve(&address, now).await {
            return Err(Throttled { retry_after });
        }
        if let Decision::Limited { retry_after } = self.account.reserve(&account, now).await {
            // Not checked, so not a failure of this address.
            self.address.refund(&address).await;
            return Err(Throttled { retry_after });
        }
        Ok(Reservation {
            account,
            address: Some(address),
        })
    }

    fn account_limiter(&self, r: &Reservation) -> &dyn AttemptLimiter {
        if r.account.starts_with("dev:") {
            &*self.device
        } else {
            &*self.account
        }
    }

    /// The password was right: the account (or device) starts afresh, the address gets its
    /// slot back. A recognised device's success also clears the account: its owner is back.
    pub async fn succeeded(&self, r: Reservation, typed_email: &str) {
        self.account_limiter(&r).clear(&r.account).await;
        self.account.clear(&self.account_key(typed_email)).await;
        if let Some(a) = &r.address {
            self.address.refund(a).await;
        }
    }

    /// Should this refusal be logged? Only the first for an account and address in each window.
    pub async fn first_refusal(&self, typed_email: &str, ip: IpAddr, now: i64) -> bool {
        let key = format!("{}|{}", self.account_key(typed_email), self.address_key(ip));
        self.log_once.reserve(&key, now).await.is_allowed()
    }

    /// The password could not be checked (overload, storage failure): not a failure, so both
    /// slots are given back.
    pub async fn not_checked(&self, r: Reservation) {
        self.account_limiter(&r).refund(&r.account).await;
        if let Some(a) = &r.address {
            self.address.refund(a).await;
        }
    }

    /// The attempt failed: both slots stay taken until the window ends. Returns the
    /// credential-stuffing signal when this failure made the address cross the threshold.
    pub async fn failed(
        &self,
        r: Reservation,
        typed_email: &str,
        now: i64,
    ) -> Option<StuffingDetected> {
        // A recognised device's failure is its own business, not its address's.
        let address = r.address?;
        let pair = format!("{address}|{}", self.account_key(typed_email));
        let first_time = self.stuffing_seen.reserve(&pair, now).await.is_allowed()
            // A pair the full limiter could not track counts as new: under a flood, detection
            // errs towards flagging, never towards silence.
            || !self.stuffing_seen.is_tracked(&pair).await;
        if !first_time {
            return None; // the same account again: not a new one
        }
        match self.stuffing.reserve(&address, now).await {
            // The threshold: blocked for one whole window from now.
            Decision::Allowed { remaining: 0, .. } => {
                let _ = self.stuffing_block.reserve(&address, now).await;
            }
            Decision::Allowed { .. } => return None,
            // Refused by a full limiter's shared bucket: this address is not tracked. Say so
            // rather than stay silent, but do not block an address on evidence it cannot keep.
            Decision::Limited { .. } => {
                if self.stuffing.is_tracked(&address).await {
                    return None;
                }
            }
        }
        Some(StuffingDetected {
            address,
            accounts: self.stuffing.limit().max,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_of_one_account_share_a_key() {
        let l = LoginLimits::in_memory(
            Limit {
                max: 5,
                window_secs: 900,
            },
            Limit {
                max: 10,
                window_secs: 3600,
            },
            1_000,
        );
        let k = l.account_key("alice@example.com");
        assert!(!k.contains("alice") && k.len() == 5 + 32, "{k}");
        for v in [
            "ALICE@Example.COM",
            " alice@example.com\t",
            "ａｌｉｃｅ@example.com",
            "Alice@EXAMPLE.com",
        ] {
            assert_eq!(l.account_key(v), k, "{v:?}");
        }
        assert_ne!(l.account_key("bob@example.com"), k);
        // Unparseable input still shares a key across case variants.
        assert_eq!(
            l.account_key("Not An Email"),
            l.account_key("not an email ")
        );
    }

    #[tokio::test]
    async fn distinct_accounts_from_one_address_trip_the_stuffing_limit() {
        let l = LoginLimits::in_memory(
            Limit {
                max: 100,
                window_secs: 900,
            },
            Limit {
                max: 3,
                window_secs: 3600,
            },
            1_000,
        );
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        // Repeats of one account are not stuffing.
        for _ in 0..5 {
            let r = l.reserve("a@example.com", ip, None, 0).await.unwrap();
            assert_eq!(l.failed(r, "a@example.com", 0).await, None);
        }
        let r = l.reserve("b@example.com", ip, None, 1).await.unwrap();
        assert_eq!(l.failed(r, "B@example.com", 1).await, None);
        let r = l.reserve("c@example.com", ip, None, 2).await.unwrap();
        let signal = l
            .failed(r, "c@example.com", 2)
            .await
            .expect("the third account");
        assert_eq!(signal.accounts, 3);
        assert_eq!(signal.address, "addr:203.0.113.9/32");
        // Now the address is refused for every account, for a whole window from the flag.
        assert_eq!(
            l.reserve("d@example.com", ip, None, 10).await.err(),
            Some(Throttled { retry_after: 3592 })
        );
        let other: IpAddr = "203.0.113.10".parse().unwrap();
        assert!(l.reserve("d@example.com", other, None, 10).await.is_ok());
        assert!(l.reserve("d@example.com", ip, None, 3_601).await.is_err());
        assert!(l.reserve("d@example.com", ip, None, 3_602).await.is_ok());
    }

    #[tokio::test]
    async fn stuffing_is_still_caught_when_the_limiters_are_full() {
        let l = LoginLimits::in_memory(
            Limit {
                max: 100,
                window_secs: 900,
            },
            Limit {
                max: 3,
                window_secs: 3600,
            },
            10,
        );
        // Fill every limiter with other addresses' failures.
        for i in 0..20 {
            let ip: IpAddr = format!("198.51.100.{i}").parse().unwrap();
            let email = format!("u{i}@example.com");
            let r = l.reserve(&email, ip, None, 0).await.unwrap();
            let _ = l.failed(r, &email, 0).await;
        }
        let fresh: IpAddr = "203.0.113.200".parse().unwrap();
        let mut caught = false;
        for email in ["x@example.com", "y@example.com", "z@example.com"] {
            // Past capacity, new keys share overflow buckets (chosen by a keyed hash, so by
            // chance): the fresh address may land in one that an earlier address already got
            // blocked. Refused outright is caught too: a full limiter fails closed.
            match l.reserve(email, fresh, None, 1).await {
                Ok(r) => caught |= l.failed(r, email, 1).await.is_some(),
                Err(_) => caught = true,
            }
        }
        assert!(caught, "a full pair limiter must not hide stuffing");
    }

    #[tokio::test]
    async fn success_clears_the_account_and_refunds_the_address() {
        let l = LoginLimits::in_memory(
            Limit {
                max: 2,
                window_secs: 900,
            },
            Limit {
                max: 100,
                window_secs: 3600,
            },
            1_000,
        );
        let ip: IpAddr = "203.0.113.5".parse().unwrap();
        l.failed(
            l.reserve("a@example.com", ip, None, 0).await.unwrap(),
            "a@example.com",
            0,
        )
        .await;
        let r = l.reserve("a@example.com", ip, None, 1).await.unwrap();
        l.succeeded(r, "a@example.com").await;
        // The account starts afresh; the address holds one failure.
        l.failed(
            l.reserve("a@example.com", ip, None, 2).await.unwrap(),
            "a@example.com",
            0,
        )
        .await;
        assert!(
            l.reserve("b@example.com", ip, None, 3).await.is_err(),
            "address at 2"
        );
        let other: IpAddr = "2001:db8:1:2::9".parse().unwrap();
        l.failed(
            l.reserve("a@example.com", other, None, 4).await.unwrap(),
            "a@example.com",
            0,
        )
        .await;
        assert_eq!(
            l.reserve("a@example.com", other, None, 5).await.err(),
            Some(Throttled { retry_after: 897 }),
            "account at 2 since its reset"
        );
        // A recognised device gets past the account's limit, up to its own.
        let third: IpAddr = "198.51.100.3".parse().unwrap();
        l.failed(
            l.reserve("a@example.com", third, Some("dev1"), 6)
                .await
                .unwrap(),
            "a@example.com",
            0,
        )
        .await;
        l.failed(
            l.reserve(
                "a@example.com",
                "198.51.100.4".parse().unwrap(),
                Some("dev1"),
                7,
            )
            .await
            .unwrap(),
            "a@example.com",
            0,
        )
        .await;
        assert!(
            l.reserve(
                "a@example.com",
                "198.51.100.5".parse().unwrap(),
                Some("dev1"),
                8
            )
            .await
            .is_err(),
            "the device's own limit (2 here)"
        );
        assert!(l
            .reserve(
                "a@example.com",
                "198.51.100.6".parse().unwrap(),
                Some("dev2"),
                9
            )
            .await
            .is_ok());
    }
}
