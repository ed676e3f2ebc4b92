//! `POST /token`: form body only, one client authentication method, RFC 6749 error bodies,
//! `Cache-Control: no-store`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use portcullis_core::client_auth::BasicCredentials;
use portcullis_core::error::{ErrorCode, OAuthError};
use portcullis_core::grants::{self, GrantEvent, TokenContext};
use portcullis_core::params::Params;

use crate::respond::{json_no_store, oauth_json_error};
use crate::state::{now, AppState};

fn basic_credentials(headers: &HeaderMap) -> Result<Option<BasicCredentials>, OAuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(OAuthError::invalid_request("repeated Authorization header"));
    }
    let text = value.to_str().map_err(|_| OAuthError::invalid_client())?;
    let Some((scheme, rest)) = text.split_once(' ') else {
        return Err(OAuthError::invalid_client());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client().with_detail("unsupported Authorization scheme"));
    }
    let decoded = STANDARD
        .decode(rest.trim())
        .map_err(|_| OAuthError::invalid_client())?;
    let decoded = String::from_utf8(decoded).map_err(|_| OAuthError::invalid_client())?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(OAuthError::invalid_client)?;
    Ok(Some(BasicCredentials {
        id: id.to_owned(),
        secret: secret.to_owned(),
    }))
}

pub async fn token(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let now = now();
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !form_type {
        return oauth_json_error(&OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let params = match Params::parse(&body) {
        Ok(p) => p,
        Err(e) => return oauth_json_error(&e),
    };
    // RFC 6749 §5.2: a client that tried the Authorization header (any scheme) gets a 401
    // with a challenge when its authentication fails.
    let header_attempted = headers.contains_key(header::AUTHORIZATION);
    let error = |e: &OAuthError| {
        let mut res = oauth_json_error(e);
        if e.code == ErrorCode::InvalidClient && header_attempted {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"portcullis\""),
            );
        }
        res
    };
    let basic = match basic_credentials(&headers) {
        Ok(b) => b,
        Err(e) => return error(&e),
    };
    let ctx = TokenContext {
        issuer: &st.issuer,
        keys: &st.keys,
        hash_key: &st.hash_key,
        lifetimes: &st.lifetimes,
        access_token_alg: st.access_token_alg,
        now,
    };
    let outcome = grants::dispatch(&params, basic.as_ref(), &*st.store, &ctx).await;
    for ev in &outcome.events {
        match ev {
            GrantEvent::CodeReplayed => {
                tracing::warn!(
                    event = "token.code_replayed",
                    client_id = outcome.client_id.as_deref().unwrap_or("")
                );
            }
            GrantEvent::RefreshReuseDetected {
                family_id,
                session_id,
                user_id,
            } => {
                tracing::warn!(event = "token.reuse_detected", client_id = outcome.client_id.as_deref().unwrap_or(""), %family_id, %session_id, %user_id);
            }
        }
    }
    match outcome.result {
        Ok(tokens) => json_no_store(StatusCode::OK, &tokens),
        Err(e) => error(&e),
    }
}
