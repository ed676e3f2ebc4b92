//! The `/authorize` endpoint as a pipeline of small named checks (one module each).
//!
//! Client and redirect URI come first: until both are proven, every error is shown on our own
//! page and never redirected. After that, errors go back to the registered redirect URI with
//! `error`, `state` and `iss` (RFC 9207).

mod check_client;
pub mod check_pkce;
mod check_prompt;
mod check_redirect_uri;
mod check_request_object;
pub mod check_resource;
mod check_response_type;
pub mod check_scope;
mod check_state_nonce;
pub mod decide;
pub mod response;

use crate::error::{ErrorCode, OAuthError};
use crate::model::{AuthorizationRequest, Client};
use crate::params::Params;
use crate::store::{ApiStore, ClientStore};

/// How an authorization request failed.
#[derive(Debug)]
pub enum AuthorizeError {
    /// Client or redirect URI not proven: render an error page, never redirect.
    Page(OAuthError),
    /// Send the error to the (registered) redirect URI.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: OAuthError,
    },
}

/// Runs every check and returns the validated request and its client.
pub async fn validate<S: ClientStore + ApiStore + ?Sized>(
    params: &Params,
    store: &S,
) -> Result<(AuthorizationRequest, Client), AuthorizeError> {
    let client = check_client::run(params, store)
        .await
        .map_err(AuthorizeError::Page)?;
    let redirect_uri = check_redirect_uri::run(params, &client).map_err(AuthorizeError::Page)?;
    // From here on, errors are redirected. `state` is echoed only if it is itself valid.
    let state = check_state_nonce::state(params).ok().flatten();
    let to_redirect = |error: OAuthError| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: state.clone(),
        error,
    };
    let result = async {
        check_response_type::run(params, &client)?;
        check_request_object::run(params)?;
        let state = check_state_nonce::state(params)?;
        let nonce = check_state_nonce::nonce(params)?;
        let code_challenge = check_pkce::run(params)?;
        let prompt = check_prompt::run(params)?;
        let audience = check_resource::run(params, &client)?;
        let scope = check_scope::run(params, &client, audience.as_deref(), store).await?;
        if scope.iter().any(|s| s == crate::scope::OPENID)
            && client.kind == crate::model::ClientKind::Public
            && nonce.is_none()
        {
            // Public clients must bind the ID token to the browser with a nonce.
            return Err(OAuthError::invalid_request(
                "parameter 'nonce' is required for public clients",
            ));
        }
        Ok::<_, OAuthError>(AuthorizationRequest {
            client_id: client.id.clone(),
            redirect_uri: redirect_uri.clone(),
            scope,
            state,
            nonce,
            code_challenge,
            prompt_none: prompt.none,
            prompt_login: prompt.login,
            prompt_confirm: prompt.confirm,
            max_age: prompt.max_age,
            login_hint: prompt.login_hint,
            audience,
        })
    }
    .await;
    match result {
        Ok(req) => Ok((req, client)),
        Err(e)
            if e.code == ErrorCode::ServerError || e.code == ErrorCode::TemporarilyUnavailable =>
        {
            Err(AuthorizeError::Page(e))
        }
        Err(e) => Err(to_redirect(e)),
    }
}
