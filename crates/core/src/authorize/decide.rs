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
    if silent_sso_allowed(client, &req.redirect_uri) && !req.prompt_confirm {
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
