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
    /// Browser sessions end after this long without activity (off by default; 5 minutes to
    /// 30 days). Activity: a sign-in or authorization through the session, or a refresh of one
    /// of its session-bound tokens.
    pub session_idle: Option<i64>,
    /// At most this many active sessions per user; a new sign-in ends the oldest (off).
    pub max_sessions_per_user: Option<u32>,
}

/// The figures a new session is created with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionPolicy {
    pub absolute: i64,
    pub idle: Option<i64>,
}

/// The session policy presets of PRACTICES §12: each sets the absolute timeout, the idle
/// timeout and the access-token lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// 30 days / no idle timeout / 5 minutes (the default).
    Consumer,
    /// 8 hours / 1 hour / 5 minutes.
    Enterprise,
    /// 15 minutes / 5 minutes / 2 minutes.
    Financial,
    /// 12 hours / 30 minutes / 5 minutes.
    Internal,
}

impl Preset {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "consumer" => Some(Self::Consumer),
            "enterprise" => Some(Self::Enterprise),
            "financial" => Some(Self::Financial),
            "internal" => Some(Self::Internal),
            _ => None,
        }
    }

    /// (absolute, idle, access token), seconds.
    pub fn figures(self) -> (i64, Option<i64>, i64) {
        const MIN: i64 = 60;
        const HOUR: i64 = 3600;
        match self {
            Self::Consumer => (30 * 24 * HOUR, None, 5 * MIN),
            Self::Enterprise => (8 * HOUR, Some(HOUR), 5 * MIN),
            Self::Financial => (15 * MIN, Some(5 * MIN), 2 * MIN),
            Self::Internal => (12 * HOUR, Some(30 * MIN), 5 * MIN),
        }
    }
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
            session_idle: None,
            max_sessions_per_user: None,
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
        if let Some(idle) = self.session_idle {
            if !(300..=30 * 24 * 3600).contains(&idle) {
                return Err("session idle timeout must be between 5 minutes and 30 days".into());
            }
            if idle > self.session_absolute {
                return Err("session idle timeout must not exceed the session lifetime".into());
            }
            if self.access_token >= idle {
                return Err(
                    "access token lifetime must be shorter than the session idle timeout".into(),
                );
            }
        }
        if self.max_sessions_per_user == Some(0) {
            return Err("the concurrent-session limit must be at least 1".into());
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

    /// Applies a preset's three figures.
    pub fn apply(&mut self, preset: Preset) {
        let (absolute, idle, access) = preset.figures();
        self.session_absolute = absolute;
        self.session_idle = idle;
        self.access_token = access;
    }

    /// What a new session gets.
    pub fn session_policy(&self) -> SessionPolicy {
        SessionPolicy {
            absolute: self.session_absolute,
            idle: self.session_idle,
        }
    }

    /// The refresh-token timing rules storage applies.
    pub fn refresh_rules(&self) -> crate::store::RefreshRules {
        crate::store::RefreshRules {
            reuse_grace: self.refresh_reuse_grace,
            offline_idle: self.offline_idle,
            client_session_idle: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_set_all_three_figures_and_pass_validation() {
        let table = [
            ("consumer", 30 * 86_400, None, 300),
            ("enterprise", 8 * 3600, Some(3600), 300),
            ("financial", 900, Some(300), 120),
            ("internal", 12 * 3600, Some(1800), 300),
        ];
        for (name, absolute, idle, access) in table {
            let mut l = Lifetimes::default();
            l.apply(Preset::parse(name).unwrap());
            assert_eq!(
                (l.session_absolute, l.session_idle, l.access_token),
                (absolute, idle, access),
                "{name}"
            );
            assert_eq!(l.validate(), Ok(()), "{name}");
        }
        assert_eq!(Preset::parse("Financial"), Some(Preset::Financial));
        assert_eq!(Preset::parse("banking"), None);
    }

    #[test]
    fn the_access_token_must_be_shorter_than_the_idle_timeout() {
        let mut l = Lifetimes::default();
        l.apply(Preset::Financial);
        l.access_token = 300;
        assert!(l
            .validate()
            .unwrap_err()
            .contains("shorter than the session idle"));
        l.access_token = 299;
        assert_eq!(l.validate(), Ok(()));
        l.session_idle = Some(299);
        assert!(l.validate().is_err(), "idle below 5 minutes");
        l.session_idle = Some(3600);
        assert!(
            l.validate().is_err(),
            "idle longer than the 15-minute session"
        );
        let l = Lifetimes {
            max_sessions_per_user: Some(0),
            ..Default::default()
        };
        assert!(l.validate().is_err());
    }
}
