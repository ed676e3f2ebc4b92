//! Lifetimes and limits, with the defaults of PRACTICES.md and their allowed bounds.

/// Token and session lifetimes, in seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lifetimes {
    /// Access tokens: 5 minutes (1 minute to 1 hour).
    pub access_token: i64,
    /// ID tokens: 5 minutes (1 minute to 1 hour). An expired one still serves as an
    /// `id_token_hint` at logout.
    pub id_token: i64,
    /// Authorization codes: 60 s, single use.
    pub authorization_code: i64,
    /// Browser sessions, absolute: 30 days (5 minutes to 1 year). Session-bound refresh tokens
    /// end with the session.
    pub session_absolute: i64,
    /// A pending sign-in (the flow cookie).
    pub flow: i64,
    /// A rotated refresh token presented up to this many seconds after its rotation is refused
    /// without alarm (2 s: parallel tabs, client retries); more than that is theft.
    pub refresh_reuse_grace: i64,
    /// Offline refresh tokens (`offline_access`): dead when unused this long (30 days).
    pub offline_idle: i64,
    /// Offline refresh tokens: absolute end of the family from its first issue (90 days).
    pub offline_absolute: i64,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            access_token: 300,
            id_token: 300,
            authorization_code: 60,
            session_absolute: 30 * 24 * 3600,
            flow: 15 * 60,
            refresh_reuse_grace: 2,
            offline_idle: 30 * 24 * 3600,
            offline_absolute: 90 * 24 * 3600,
        }
    }
}

impl Lifetimes {
    /// Checks each figure against its bounds; the error names the setting.
    pub fn validate(&self) -> Result<(), String> {
        if !(60..=3600).contains(&self.access_token) {
            return Err("access token lifetime must be between 60 and 3600 seconds".into());
        }
        if !(60..=3600).contains(&self.id_token) {
            return Err("ID token lifetime must be between 60 and 3600 seconds".into());
        }
        if !(300..=365 * 24 * 3600).contains(&self.session_absolute) {
            return Err("session lifetime must be between 5 minutes and 1 year".into());
        }
        if !(0..=60).contains(&self.refresh_reuse_grace) {
            return Err("refresh reuse grace must be between 0 and 60 seconds".into());
        }
        if !(300..=365 * 24 * 3600).contains(&self.offline_absolute) {
            return Err("offline token lifetime must be between 5 minutes and 1 year".into());
        }
        if !(60..=self.offline_absolute).contains(&self.offline_idle) {
            return Err(
                "offline idle timeout must be between 1 minute and the offline token lifetime"
                    .into(),
            );
        }
        Ok(())
    }

    /// The refresh-token timing rules storage applies.
    pub fn refresh_rules(&self) -> crate::store::RefreshRules {
        crate::store::RefreshRules {
            reuse_grace: self.refresh_reuse_grace,
            offline_idle: self.offline_idle,
        }
    }
}
