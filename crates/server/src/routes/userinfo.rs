//! `GET|POST /userinfo` with a bearer access token (RFC 6750 header form only).

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use portcullis_core::error::ErrorCode;
use portcullis_core::userinfo;

use crate::respond::{json_no_store, oauth_json_error};
use crate::state::{now, AppState};

fn challenge(mut res: Response, error: Option<&str>) -> Response {
    let value = match error {
        Some(e) => format!("Bearer realm=\"portcullis\", error=\"{e}\""),
        None => "Bearer realm=\"portcullis\"".to_owned(),
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    res
}

pub async fn userinfo(State(st): State<AppState>, headers: HeaderMap) -> Response {
    // RFC 6750 §3.1: credentials sent twice are a malformed request (a proxy in front and this
    // server must not read different ones).
    if headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .nth(1)
        .is_some()
    {
        let res = json_no_store(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({"error": "invalid_request", "error_description": "the Authorization header is repeated"}),
        );
        return challenge(res, Some("invalid_request"));
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned());
    let Some(token) = token else {
        // RFC 6750 §3.1: a request without credentials gets the challenge and no error code.
        let res = json_no_store(
            StatusCode::UNAUTHORIZED,
            &serde_json::json!({"error_description": "a bearer access token is required"}),
        );
        return challenge(res, None);
    };
    match userinfo::claims(
        &token,
        &st.keys.snapshot().set,
        &st.issuer,
        &*st.store,
        now(),
    )
    .await
    {
        Ok(doc) => json_no_store(StatusCode::OK, &doc),
        Err(e) => {
            let code = e.code;
            let res = oauth_json_error(&e);
            match code {
                ErrorCode::InvalidToken => challenge(res, Some("invalid_token")),
                ErrorCode::InsufficientScope => challenge(res, Some("insufficient_scope")),
                _ => res,
            }
        }
    }
}
