//! `/.well-known/openid-configuration`, `/.well-known/oauth-authorization-server`, `/jwks`.
//! Public documents: cacheable for a short while.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

fn public_json(bytes: &[u8], max_age: &'static str) -> Response {
    let mut res = ([(header::CONTENT_TYPE, "application/json")], bytes.to_vec()).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(max_age));
    res
}

pub async fn metadata(State(st): State<AppState>) -> Response {
    public_json(&st.metadata, "public, max-age=300")
}

pub async fn jwks(State(st): State<AppState>) -> Response {
    let keys = st.keys.snapshot();
    public_json(&keys.jwks, "public, max-age=300")
}
