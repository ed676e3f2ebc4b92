//! `scope`: identity scopes (`openid`, `email`) for any client; API scopes only if both the
//! client is allowed them and the target API defines them. Anything else is `invalid_scope`.

use crate::error::OAuthError;
use crate::model::Client;
use crate::params::Params;
use crate::scope::{self, IDENTITY_SCOPES};
use crate::store::ApiStore;

/// Checks requested scopes; shared with the token endpoint (`identity` is false there for
/// client credentials, which has no user).
pub async fn allowed<S: ApiStore + ?Sized>(
    requested: Vec<String>,
    client: &Client,
    audience: Option<&str>,
    identity: bool,
    store: &S,
) -> Result<Vec<String>, OAuthError> {
    let api = match audience {
        Some(a) => store.api_by_audience(a).await?,
        None => None,
    };
    for s in &requested {
        if identity && IDENTITY_SCOPES.contains(&s.as_str()) {
            continue;
        }
        if identity && s == scope::OFFLINE_ACCESS {
            if client.allows_grant(crate::model::GrantType::RefreshToken) {
                continue;
            }
            return Err(OAuthError::invalid_scope(
                "offline_access needs a client allowed the refresh_token grant",
            ));
        }
        let client_ok = client.scopes.iter().any(|c| c == s);
        let api_ok = api
            .as_ref()
            .is_some_and(|a| a.scopes.iter().any(|x| x == s));
        if !(client_ok && api_ok) {
            return Err(OAuthError::invalid_scope(
                "a requested scope is not allowed for this client",
            ));
        }
    }
    Ok(requested)
}

pub(super) async fn run<S: ApiStore + ?Sized>(
    params: &Params,
    client: &Client,
    audience: Option<&str>,
    store: &S,
) -> Result<Vec<String>, OAuthError> {
    let requested = scope::parse(params.get("scope", 2048)?.unwrap_or(""))?;
    allowed(requested, client, audience, true, store).await
}
