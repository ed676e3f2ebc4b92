//! Building responses: pages, redirects, OAuth JSON errors. Handlers stay thin.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use portcullis_core::error::{ErrorCode, OAuthError};
use serde::Serialize;

use crate::state::AppState;

/// An HTML page with an optional CSP naming the redirect origin in `form-action`.
pub fn page(status: StatusCode, html: String, form_action_extra: Option<&str>) -> Response {
    let mut res = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response();
    let csp = match form_action_extra {
        Some(origin) => format!(
            "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self' {origin}"
        ),
        None => "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'".to_owned(),
    };
    if let Ok(v) = HeaderValue::from_str(&csp) {
        res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    res
}

/// Our own error page: never a redirect.
pub fn error_page(
    st: &AppState,
    status: StatusCode,
    title: &str,
    message: &str,
    code: Option<&str>,
) -> Response {
    let html = st.templates.render(
        "error.html",
        minijinja::context! { title => title, message => message, code => code },
    );
    page(status, html, None)
}

/// The error page for an OAuth error that may not be redirected.
pub fn oauth_error_page(st: &AppState, e: &OAuthError) -> Response {
    if let Some(d) = &e.detail {
        tracing::warn!(error = e.code.as_str(), detail = %d, "authorization request refused");
    }
    let status = match e.code {
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    error_page(
        st,
        status,
        "This sign-in request cannot be completed",
        &e.description,
        Some(e.code.as_str()),
    )
}

/// The page shown when a flow cookie is missing or expired.
pub fn flow_expired(st: &AppState) -> Response {
    error_page(
        st,
        StatusCode::BAD_REQUEST,
        "Sign-in request expired",
        "This sign-in request is no longer valid. Return to the application and try again.",
        None,
    )
}

/// The page for a refused cross-site or token-less form post.
pub fn csrf_refused(st: &AppState) -> Response {
    error_page(
        st,
        StatusCode::FORBIDDEN,
        "Request refused",
        "This form was not submitted from this site, or it has expired. Go back, reload the page and try again.",
        None,
    )
}

/// A redirect: 302 answers a GET, 303 answers a POST (never 307/308, which would re-post).
pub fn redirect(location: &str, after_post: bool) -> Response {
    let status = if after_post {
        StatusCode::SEE_OTHER
    } else {
        StatusCode::FOUND
    };
    match HeaderValue::from_str(location) {
        Ok(v) => {
            let mut res = Response::new(Body::empty());
            *res.status_mut() = status;
            res.headers_mut().insert(header::LOCATION, v);
            res
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// JSON with `Cache-Control: no-store` (tokens and personal data).
pub fn json_no_store<T: Serialize>(status: StatusCode, body: &T) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut res = (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

/// An RFC 6749 §5.2 error body; the private detail goes to the log only.
pub fn oauth_json_error(e: &OAuthError) -> Response {
    if let Some(d) = &e.detail {
        tracing::info!(error = e.code.as_str(), detail = %d, "oauth error");
    }
    let status = StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    json_no_store(
        status,
        &ErrorBody {
            error: e.code.as_str(),
            error_description: &e.description,
        },
    )
}

/// Adds a `Set-Cookie` header if the value could be built.
pub fn with_cookie(mut res: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(c) = cookie {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}
