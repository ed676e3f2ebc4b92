//! Passwords: the policy of NIST SP 800-63B (length, NFKC, a list of common and breached
//! passwords, context words, no composition rules) and Argon2id hashing off the async runtime
//! with bounded concurrency.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;
use unicode_normalization::UnicodeNormalization;

static COMMON_TEXT: &str = include_str!("../data/common-passwords.txt");

fn common_passwords() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON_TEXT
            .lines()
            .filter(|l| !l.starts_with("# ") && !l.is_empty())
            .collect()
    })
}

/// How many entries the bundled list holds.
pub fn common_password_count() -> usize {
    common_passwords().len()
}

/// The password rules in force.
#[derive(Clone, Debug)]
pub struct PasswordPolicy {
    /// Minimum length in characters (15 by default; 8 at the least).
    pub min_chars: usize,
    /// Maximum length in characters (256).
    pub max_chars: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_chars: 15,
            max_chars: 256,
        }
    }
}

/// Why a new password was refused; safe to show the person choosing it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    #[error("the password must be at least {0} characters long")]
    TooShort(usize),
    #[error("the password must be at most {0} characters long")]
    TooLong(usize),
    #[error("the password is on a list of common or breached passwords")]
    Common,
    #[error("the password is too close to the service name or the e-mail address")]
    Context,
    #[error("the password is a repeated or sequential pattern")]
    Repetitive,
    #[error("the password contains control characters")]
    Control,
}

/// NFKC form of a password: what is checked and hashed, so the same password typed on
/// different keyboards verifies.
pub fn normalize(password: &str) -> SecretString {
    SecretString::from(password.nfkc().collect::<String>())
}

impl PasswordPolicy {
    /// Checks a new password (already NFKC-normalised) against the policy, with the context
    /// words of this account (the product name and the e-mail's local part are added here).
    pub fn check(&self, password: &SecretString, context: &[&str]) -> Result<(), PasswordError> {
        let pw = password.expose_secret();
        if pw.chars().any(char::is_control) {
            return Err(PasswordError::Control);
        }
        let n = pw.chars().count();
        if n < self.min_chars {
            return Err(PasswordError::TooShort(self.min_chars));
        }
        if n > self.max_chars {
            return Err(PasswordError::TooLong(self.max_chars));
        }
        let lower = pw.to_lowercase();
        if common_passwords().contains(lower.as_str()) {
            return Err(PasswordError::Common);
        }
        // A common password padded to length ("password1234567890", "!!qwerty!!!!!!!!") is as
        // weak as the word inside: check the core left after trimming digits and symbols, and
        // the letters alone.
        let core = lower.trim_matches(|c: char| !c.is_alphabetic());
        let letters: String = lower.chars().filter(|c| c.is_alphabetic()).collect();
        if is_run_or_repeat(&lower) {
            return Err(PasswordError::Repetitive);
        }
        if common_passwords().contains(core)
            || (letters.chars().count() >= 4 && common_passwords().contains(letters.as_str()))
        {
            return Err(PasswordError::Common);
        }
        let distinct: HashSet<char> = lower.chars().collect();
        if distinct.len() < 4 {
            return Err(PasswordError::Repetitive);
        }
        // Context words count whole and in their pieces: an e-mail address gives itself, its
        // local part's pieces and its domain's labels ("dave@example.com": "dave", "example",
        // "com"). Longest first, so a whole word goes before its pieces.
        let mut words: Vec<String> = Vec::new();
        for word in context.iter().copied().chain(["portcullis"]) {
            let w = word.to_lowercase();
            words.push(w.clone());
            words.extend(w.split(|c: char| !c.is_alphanumeric()).map(str::to_owned));
        }
        words.retain(|w| w.chars().count() >= 3);
        words.sort_by_key(|w| std::cmp::Reverse(w.chars().count()));
        let mut rest = lower.clone();
        for w in &words {
            rest = rest.replace(w.as_str(), "");
        }
        if rest != lower {
            // What is left must stand as a password of its own.
            let remaining: String = rest.chars().filter(|c| c.is_alphanumeric()).collect();
            let distinct: HashSet<char> = remaining.chars().collect();
            if remaining.chars().count() < self.min_chars / 2
                || common_passwords().contains(remaining.as_str())
                || is_run_or_repeat(&remaining)
                || is_doubled(&remaining)
                || distinct.len() < 4
            {
                return Err(PasswordError::Context);
            }
        }
        Ok(())
    }
}

/// "39173917": one half repeated (what is left of "carol3917carol3917" once the context word
/// is gone).
fn is_doubled(s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    let half = chars.len() / 2;
    chars.len().is_multiple_of(2) && half > 0 && chars[..half] == chars[half..]
}

/// "1234567890123456", "9876543210987", "abcabcabcabc", "qwqwqwqwqwqwqw": a counting run (digits
/// wrap around) or a short unit repeated. Random digits or words are not caught.
fn is_run_or_repeat(s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    if n < 2 {
        return true;
    }
    let step = |a: char, b: char| -> Option<i32> {
        match (a.to_digit(10), b.to_digit(10)) {
            (Some(x), Some(y)) => Some(((y as i32 - x as i32) + 10) % 10),
            _ => Some(b as i32 - a as i32),
        }
    };
    let first = step(chars[0], chars[1]);
    let counting = matches!(first, Some(1) | Some(9) | Some(-1))
        && chars.windows(2).all(|w| step(w[0], w[1]) == first);
    let repeated = (1..=n / 3).any(|k| chars.iter().enumerate().all(|(i, c)| *c == chars[i % k]));
    counting || repeated
}

/// Hashing failures (not "wrong password", which is `Ok(false)`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    #[error("password hashing failed: {0}")]
    Internal(String),
    #[error("too many password checks are waiting")]
    Overloaded,
}

/// Checks that may wait for a hashing permit by default (see [`PasswordHasher::with_queue_limit`]).
pub const DEFAULT_MAX_WAITING: usize = 64;

/// Argon2id (OWASP: m = 19 MiB, t = 2, p = 1) on blocking threads, at most `concurrency` at a
/// time. Unknown accounts are verified against a dummy hash so they cost what known ones cost.
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// Most checks allowed to wait for a permit; beyond that, `Overloaded` at once.
    max_waiting: usize,
    waiting: Arc<std::sync::atomic::AtomicUsize>,
    params: Params,
    dummy_hash: Arc<String>,
    verifications: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher").finish_non_exhaustive()
    }
}

fn argon(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

impl PasswordHasher {
    /// OWASP parameters.
    pub fn new(concurrency: usize) -> Result<Self, HashError> {
        Self::with_params(concurrency, 19 * 1024, 2, 1)
    }

    pub fn with_params(concurrency: usize, m_kib: u32, t: u32, p: u32) -> Result<Self, HashError> {
        let params =
            Params::new(m_kib, t, p, None).map_err(|e| HashError::Internal(e.to_string()))?;
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        let dummy = argon(&params)
            .hash_password(b"portcullis dummy password for unknown accounts", &salt)
            .map_err(|e| HashError::Internal(e.to_string()))?
            .to_string();
        Ok(Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            max_waiting: DEFAULT_MAX_WAITING,
            waiting: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            params,
            dummy_hash: Arc::new(dummy),
            verifications: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        })
    }

    /// At most `max_waiting` checks may queue for a permit; more are refused at once with
    /// [`HashError::Overloaded`] (the caller answers 503 with `Retry-After`), so a flood of
    /// sign-ins cannot pile up memory and latency while other endpoints keep answering.
    pub fn with_queue_limit(mut self, max_waiting: usize) -> Self {
        self.max_waiting = max_waiting;
        self
    }

    /// A permit, waiting only if the queue has room. The permit is owned, so it can move into
    /// the blocking task: Argon2 keeps holding it even if the request is cancelled (a client
    /// that disconnects), and the waiting count is a guard that is given back on every path,
    /// cancellation included.
    async fn permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, HashError> {
        if let Ok(p) = self.permits.clone().try_acquire_owned() {
            return Ok(p);
        }
        let _place = WaitingPlace::take(&self.waiting, self.max_waiting)?;
        self.permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| HashError::Overloaded)
    }

    /// How many Argon2 verifications have run (dummy ones for unknown accounts included).
    pub fn verifications(&self) -> u64 {
        self.verifications
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Hashes a (normalised) password into a PHC string.
    pub async fn hash(&self, password: SecretString) -> Result<String, HashError> {
        let permit = self.permit().await?;
        let params = self.params.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
            argon(&params)
                .hash_password(password.expose_secret().as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| HashError::Internal(e.to_string()))
        })
        .await
        .map_err(|e| HashError::Internal(e.to_string()))?
    }

    /// Verifies a (normalised) password against a stored hash, or against the dummy hash when
    /// `stored` is `None` (unknown account: same cost, always false).
    pub async fn verify(
        &self,
        password: SecretString,
        stored: Option<String>,
    ) -> Result<bool, HashError> {
        let permit = self.permit().await?;
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy_hash.as_str().to_owned());
        let params = self.params.clone();
        let counter = self.verifications.clone();
        let ok = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let parsed =
                PasswordHash::new(&hash).map_err(|e| HashError::Internal(e.to_string()))?;
            Ok::<bool, HashError>(
                argon(&params)
                    .verify_password(password.expose_secret().as_bytes(), &parsed)
                    .is_ok(),
            )
        })
        .await
        .map_err(|e| HashError::Internal(e.to_string()))??;
        Ok(ok && known)
    }
}

/// One place in the hashing queue, given back when dropped (cancelled waits included).
struct WaitingPlace<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> WaitingPlace<'a> {
    fn take(count: &'a std::sync::atomic::AtomicUsize, max: usize) -> Result<Self, HashError> {
        use std::sync::atomic::Ordering;
        if count.fetch_add(1, Ordering::AcqRel) >= max {
            count.fetch_sub(1, Ordering::AcqRel);
            return Err(HashError::Overloaded);
        }
        Ok(Self(count))
    }
}

impl Drop for WaitingPlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> SecretString {
        normalize(x)
    }

    #[test]
    fn bundled_list_is_large() {
        assert!(
            common_password_count() >= 100_000,
            "{}",
            common_password_count()
        );
    }

    #[test]
    fn policy_rules() {
        let p = PasswordPolicy::default();
        assert_eq!(p.check(&s("short"), &[]), Err(PasswordError::TooShort(15)));
        assert_eq!(
            p.check(&s(&"x".repeat(257)), &[]),
            Err(PasswordError::TooLong(256))
        );
        assert!(p.check(&s("aaaaaaaaaaaaaaaaaaaa"), &[]).is_err());
        assert_eq!(
            p.check(&s("abababababababab1"), &[]),
            Err(PasswordError::Repetitive)
        );
        assert_eq!(
            p.check(&s("1qaz2wsx3edc4rfv"), &[]),
            Err(PasswordError::Common)
        );
        for padded in [
            "password1234567890",
            "!!qwerty!!!!!!!!!",
            "Dragon2024!!!!!!!",
        ] {
            assert_eq!(
                p.check(&s(padded), &[]),
                Err(PasswordError::Common),
                "{padded}"
            );
        }
        for pattern in [
            "123456789012345678",
            "9876543210987654",
            "abcabcabcabcabcabc",
        ] {
            assert_eq!(
                p.check(&s(pattern), &[]),
                Err(PasswordError::Repetitive),
                "{pattern}"
            );
        }
        // Random digits are not a composition failure.
        assert!(p.check(&s("4829 1736 5502 8814"), &[]).is_ok());
        assert_eq!(
            p.check(&s("alice.smith2024!!"), &["alice.smith"]),
            Err(PasswordError::Context)
        );
        assert_eq!(
            p.check(&s("Portcullis123456"), &[]),
            Err(PasswordError::Context)
        );
        assert!(p
            .check(&s("velvet orbit lantern harbor"), &["alice@example.com"])
            .is_ok());
        // The whole address, its domain, and padding by repetition are no way round it.
        for (pw, email) in [
            ("dave@example.com", "dave@example.com"),
            ("gus@example.com", "gus@example.com"),
            ("erinexamplecom2024", "erin@example.com"),
            ("carol2024carol2024", "carol@example.com"),
            ("portcullis 20252025", "zed@example.com"),
            ("robin.hood.example!!", "robin.hood@example.org"),
            ("carol3917carol3917", "carol@example.com"),
            ("carol@example.com 8264 8264", "carol@example.com"),
            ("portcullis 3917 3917", "zed@example.com"),
        ] {
            assert_eq!(
                p.check(&s(pw), &[email]),
                Err(PasswordError::Context),
                "{pw}"
            );
        }
        // Famous example passphrases are on the list, in every spelling.
        for famous in ["correct horse battery staple", "CorrectHorseBatteryStaple"] {
            assert!(p.check(&s(famous), &[]).is_err(), "{famous}");
        }
        // 256 characters is allowed; multibyte characters count once.
        let long: String = (0..64).map(|i| format!("é{i:02}🔑")).collect();
        assert_eq!(long.chars().count(), 256);
        assert!(p.check(&s(&long), &[]).is_ok());
    }

    #[test]
    fn nfkc_makes_variants_equal() {
        assert_eq!(normalize("ｐａｓｓ").expose_secret(), "pass");
    }

    #[tokio::test]
    async fn hashes_and_verifies_with_dummy_for_unknown() {
        let h = PasswordHasher::with_params(2, 1024, 1, 1).unwrap();
        let stored = h.hash(s("correct horse battery staple")).await.unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(h
            .verify(s("correct horse battery staple"), Some(stored.clone()))
            .await
            .unwrap());
        assert!(!h
            .verify(s("wrong horse battery staple"), Some(stored))
            .await
            .unwrap());
        assert!(!h
            .verify(s("portcullis dummy password for unknown accounts"), None)
            .await
            .unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_refuses_at_once() {
        // One permit, one waiting place: of eight simultaneous checks, two can be served
        // (running + waiting) and the rest are refused without waiting.
        let h = PasswordHasher::with_params(1, 8 * 1024, 3, 1)
            .unwrap()
            .with_queue_limit(1);
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let h = h.clone();
                tokio::spawn(async move { h.verify(s("some password here"), None).await })
            })
            .collect();
        let mut overloaded = 0;
        for t in tasks {
            if matches!(t.await.unwrap(), Err(HashError::Overloaded)) {
                overloaded += 1;
            }
        }
        assert!(overloaded >= 5, "{overloaded} refused");
        assert!(h.verifications() <= 3, "{}", h.verifications());
        // Once the flood has passed, checks run again.
        assert!(h.verify(s("some password here"), None).await.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancelled_waits_give_their_place_back_and_hashing_stays_bounded() {
        let h = PasswordHasher::with_params(1, 8 * 1024, 3, 1)
            .unwrap()
            .with_queue_limit(2);
        // Many requests that are cancelled while running or waiting (clients that hang up).
        for _ in 0..20 {
            let tasks: Vec<_> = (0..4)
                .map(|_| {
                    let h = h.clone();
                    tokio::spawn(async move { h.verify(s("some password here"), None).await })
                })
                .collect();
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            for t in tasks {
                t.abort();
            }
        }
        // Every place in the queue came back...
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(h.waiting.load(std::sync::atomic::Ordering::Acquire), 0);
        // ...and a check runs normally.
        assert!(h.verify(s("some password here"), None).await.is_ok());
        // Cancelled runs kept their permit while Argon2 ran: never more than one at a time.
        assert_eq!(h.permits.available_permits(), 1);
    }

    #[test]
    fn owasp_parameters_by_default() {
        let h = PasswordHasher::new(1).unwrap();
        assert!(h.dummy_hash.contains("m=19456,t=2,p=1"));
    }
}
