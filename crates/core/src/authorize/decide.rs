//! What happens to a pending request once we know (after a same-site step) whether the browser
//! has a session: issue a code silently, ask to continue, ask to sign in, or fail `prompt=none`.

use crate::error::{ErrorCode, OAuthError};
use crate::model::{AuthorizationRequest, Client, ClientKind, Session, User};

/// The next step of a pending authorization.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Issue a code to the client now (silent single sign-on).
    IssueCode,
    /// Show "Continue as <user> to <app>" (one click, CSRF-protected).
    ConfirmContinue,
    /// Show the login form.
    Login,
    /// Return this error to the client (`login_required`, `interaction_required`).
    Fail(OAuthError),
}

/// Silent single sign-on is for confidential first-party clients only: a public client's
/// `client_id` proves nothing (RFC 8252 §8.6).
/// Nor for loopback `http` redirects: any local process can listen there (RFC 8252 §8.5, §8.6).
pub fn silent_sso_allowed(client: &Client, redirect_uri: &str) -> bool {
    client.first_party
        && client.kind == ClientKind::Confidential
        && redirect_uri.starts_with("https://")
}

/// Decides the next step. `session` is the browser's active session with its (enabled) user.
pub fn next(
    req: &AuthorizationRequest,
    client: &Client,
    session: Option<(&Session, &User)>,
    now: i64,
) -> Next {
    let needs_login = match session {
        None => true,
        Some((s, u)) => {
            !s.is_active(now)
                || u.disabled
                || req.prompt_login
                // max_age=0 is prompt=login (OIDC Core §3.1.2.1).
                || req.max_age.is_some_and(|max| max == 0 || now - s.auth_time > max)
                // The client's own, tighter session policy.
                || !client.policy.session_fresh(s.auth_time, s.last_seen_at, now)
                // Offline access outlives the session: a session kept through a password
                // change cannot grant it until the user signs in with the new password.
                || (crate::scope::is_offline(&req.scope) && u.password_changed_since(s))
        }
    };
    if needs_login {
        return if req.prompt_none {
            Next::Fail(OAuthError::new(
                ErrorCode::LoginRequired,
                "the user is not signed in",
            ))
        } else {
            Next::Login
        };
    }
    // Offline access outlives the session, so the user always says yes to it (OIDC Core §11).
    let confirm = req.prompt_confirm || crate::scope::is_offline(&req.scope);
    if silent_sso_allowed(client, &req.redirect_uri) && !confirm {
        Next::IssueCode
    } else if req.prompt_none {
        Next::Fail(OAuthError::new(
            ErrorCode::InteractionRequired,
            "the user must confirm to continue",
        ))
    } else {
        Next::ConfirmContinue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ClientId, SessionId, UserId};
    use crate::model::{GrantType, SigningAlg};

    fn client(kind: ClientKind, first_party: bool) -> Client {
        Client {
            id: ClientId::generate(),
            name: "c".into(),
            kind,
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            grants: vec![GrantType::AuthorizationCode],
            apis: vec![],
            scopes: vec![],
            first_party,
            id_token_alg: SigningAlg::RS256,
            disabled: false,
            backchannel_logout_uri: None,
            secret_hashes: vec![],
            policy: Default::default(),
            created_at: 0,
        }
    }

    fn req(redirect: &str) -> AuthorizationRequest {
        AuthorizationRequest {
            client_id: ClientId::generate(),
            redirect_uri: redirect.into(),
            scope: vec![],
            state: None,
            nonce: None,
            code_challenge: String::new(),
            prompt_none: false,
            prompt_login: false,
            prompt_confirm: false,
            max_age: None,
            login_hint: None,
            audience: None,
        }
    }

    fn session(auth_time: i64) -> (Session, User) {
        let user = User {
            id: UserId::generate(),
            email: "a@example.com".into(),
            email_key: "a@example.com".into(),
            email_verified: false,
            password_hash: String::new(),
            disabled: false,
            created_at: 0,
            device_epoch: 0,
            password_changed_at: None,
            password_version: 0,
        };
        let s = Session {
            id: SessionId::generate(),
            cookie_hash: String::new(),
            user_id: user.id.clone(),
            auth_time,
            created_at: auth_time,
            last_seen_at: auth_time,
            expires_at: auth_time + 1000,
            revoked_at: None,
            user_agent: None,
            address: None,
            idle_timeout: None,
            password_version: 0,
        };
        (s, user)
    }

    #[test]
    fn a_client_policy_can_force_a_new_sign_in_but_never_extend_a_session() {
        let (mut s, u) = session(1000);
        s.last_seen_at = 1500;
        let https = req("https://app.example.com/cb");
        let mut strict = client(ClientKind::Confidential, true);
        strict.policy.session_max_age = Some(600);
        strict.policy.session_idle = Some(300);
        assert_eq!(next(&https, &strict, Some((&s, &u)), 1599), Next::IssueCode);
        // Past the client's max age since sign-in, or its idle limit: sign in again.
        assert_eq!(next(&https, &strict, Some((&s, &u)), 1600), Next::Login);
        s.last_seen_at = 1200;
        assert_eq!(next(&https, &strict, Some((&s, &u)), 1500), Next::Login);
        // A looser client figure changes nothing: the session itself has ended.
        let mut loose = client(ClientKind::Confidential, true);
        loose.policy.session_max_age = Some(10_000);
        assert_eq!(next(&https, &loose, Some((&s, &u)), 2000), Next::Login);
    }

    #[test]
    fn client_policy_figures_only_tighten() {
        use crate::model::ClientPolicy;
        use crate::policy::Lifetimes;
        let global = Lifetimes::default();
        let p = ClientPolicy {
            access_token_ttl: Some(120),
            ..Default::default()
        };
        assert_eq!(p.validate(&global), Ok(()));
        assert_eq!(p.access_token_ttl(300), 120);
        assert_eq!(ClientPolicy::default().access_token_ttl(300), 300);
        for bad in [
            ClientPolicy {
                access_token_ttl: Some(301),
                ..Default::default()
            },
            ClientPolicy {
                access_token_ttl: Some(59),
                ..Default::default()
            },
            ClientPolicy {
                session_max_age: Some(global.session_absolute + 1),
                ..Default::default()
            },
            ClientPolicy {
                session_idle: Some(299),
                ..Default::default()
            },
            // The access token must be shorter than the idle timeout.
            ClientPolicy {
                session_idle: Some(300),
                ..Default::default()
            },
        ] {
            assert!(bad.validate(&global).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sso_rules() {
        let (s, u) = session(100);
        let web = client(ClientKind::Confidential, true);
        let https = req("https://app.example.com/cb");
        assert_eq!(next(&https, &web, Some((&s, &u)), 100), Next::IssueCode);
        // Loopback redirects, public clients, third-party clients and prompt=consent confirm.
        assert_eq!(
            next(&req("http://127.0.0.1:5000/cb"), &web, Some((&s, &u)), 100),
            Next::ConfirmContinue
        );
        assert_eq!(
            next(
                &https,
                &client(ClientKind::Public, true),
                Some((&s, &u)),
                100
            ),
            Next::ConfirmContinue
        );
        assert_eq!(
            next(
                &https,
                &client(ClientKind::Confidential, false),
                Some((&s, &u)),
                100
            ),
            Next::ConfirmContinue
        );
        let consent = AuthorizationRequest {
            prompt_confirm: true,
            ..https.clone()
        };
        assert_eq!(
            next(&consent, &web, Some((&s, &u)), 100),
            Next::ConfirmContinue
        );
        // prompt=none: login_required without a session, interaction_required when a click is needed.
        let none = AuthorizationRequest {
            prompt_none: true,
            ..https.clone()
        };
        assert!(
            matches!(next(&none, &web, None, 100), Next::Fail(e) if e.code == ErrorCode::LoginRequired)
        );
        let none_public = next(
            &none,
            &client(ClientKind::Public, true),
            Some((&s, &u)),
            100,
        );
        assert!(matches!(none_public, Next::Fail(e) if e.code == ErrorCode::InteractionRequired));
        // prompt=login and max_age force the password; max_age=0 always does.
        let login = AuthorizationRequest {
            prompt_login: true,
            ..https.clone()
        };
        assert_eq!(next(&login, &web, Some((&s, &u)), 100), Next::Login);
        let zero = AuthorizationRequest {
            max_age: Some(0),
            ..https.clone()
        };
        assert_eq!(next(&zero, &web, Some((&s, &u)), 100), Next::Login);
        let ten = AuthorizationRequest {
            max_age: Some(10),
            ..https.clone()
        };
        assert_eq!(next(&ten, &web, Some((&s, &u)), 110), Next::IssueCode);
        assert_eq!(next(&ten, &web, Some((&s, &u)), 111), Next::Login);
        // An ended session or a disabled user is no session.
        assert_eq!(next(&https, &web, Some((&s, &u)), 1100), Next::Login);
        let disabled = User {
            disabled: true,
            ..u.clone()
        };
        assert_eq!(next(&https, &web, Some((&s, &disabled)), 100), Next::Login);
    }

    #[test]
    fn offline_access_needs_a_sign_in_after_the_latest_password_change() {
        let web = client(ClientKind::Confidential, true);
        let (s, u) = session(50);
        let offline = AuthorizationRequest {
            scope: vec!["openid".into(), "offline_access".into()],
            ..req("https://app.example.com/cb")
        };
        let online = AuthorizationRequest {
            scope: vec!["openid".into()],
            ..req("https://app.example.com/cb")
        };
        // Signed in with the current password: offline access is only confirmed.
        assert_eq!(
            next(&offline, &web, Some((&s, &u)), 100),
            Next::ConfirmContinue
        );
        // The password changed since (the session was kept): this session carries on, but
        // offline access needs a new sign-in, whatever the clock says.
        let changed = User {
            password_version: 1,
            password_changed_at: Some(40),
            ..u.clone()
        };
        assert_eq!(
            next(&online, &web, Some((&s, &changed)), 100),
            Next::IssueCode
        );
        assert_eq!(next(&offline, &web, Some((&s, &changed)), 100), Next::Login);
        let none = AuthorizationRequest {
            prompt_none: true,
            ..offline.clone()
        };
        assert!(
            matches!(next(&none, &web, Some((&s, &changed)), 100), Next::Fail(e) if e.code == ErrorCode::LoginRequired)
        );
    }
}
