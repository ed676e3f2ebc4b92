//! `/` and the stylesheet.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::respond::page;
use crate::state::AppState;

pub async fn index(State(st): State<AppState>) -> Response {
    page(
        StatusCode::OK,
        st.templates
            .render("index.html", minijinja::context! { issuer => &*st.issuer }),
        None,
    )
}

pub async fn stylesheet() -> Response {
    let mut res = (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../static/portcullis.css"),
    )
        .into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    res
}

/// Browsers ask every site for an icon; answering "no content" keeps their consoles clean.
pub async fn favicon() -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    res
}

pub async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Not found\n",
    )
        .into_response()
}
