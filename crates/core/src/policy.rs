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
    /// A rotated refresh token presented within this window is refused without alarm.
    pub refresh_reuse_grace: i64,
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
        Ok(())
    }
}
