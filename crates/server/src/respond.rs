//! Building responses: pages, redirects, OAuth JSON errors. Handlers stay thin.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use portcullis_core::error::{ErrorCode, OAuthError};
use portcullis_guard::csp::PagePolicy;
use serde::Serialize;

use crate::state::AppState;

/// An HTML page. Its CSP (rendered with the response's nonce by the guard's headers layer)
/// allows forms to post to ourselves and, when given, to the redirect origin the page returns
/// to (browsers apply `form-action` to the redirect that follows a form post). An origin no CSP
/// source can name (an IPv6 literal) is left out: [`to_client`] then answers the post with an
/// interstitial page instead of a redirect.
pub fn page(status: StatusCode, html: String, form_action_extra: Option<&str>) -> Response {
    let mut res = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response();
    let policy = match form_action_extra {
        Some(origin) => PagePolicy::new()
            .allow_form_action(origin)
            .unwrap_or_default(),
        None => PagePolicy::new(),
    };
    res.extensions_mut().insert(policy);
    res
}

/// Sends the browser to the client's redirect URI `location`: a redirect (302 after a GET,
/// 303 after a POST), except after a POST to a redirect origin that a CSP `form-action` cannot
/// name (`http://[::1]:port`): there the redirect would be blocked, so the answer is a page of
/// ours whose meta refresh (and link) navigates on, which `form-action` does not govern.
pub fn to_client(st: &AppState, location: &str, after_post: bool) -> Response {
    if after_post {
        let unexpressible = crate::flow::redirect_origin(location)
            .is_some_and(|o| PagePolicy::new().allow_form_action(&o).is_err());
        if unexpressible {
            let html = st.templates.render(
                "returning.html",
                minijinja::context! { location => location },
            );
            return page(StatusCode::OK, html, None);
        }
    }
    redirect(location, after_post)
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

/// `503` with `Retry-After: 1`: the bounded password-hashing queue is full (nothing was
/// checked, so nothing counts against the user).
pub fn hashing_busy(st: &AppState) -> Response {
    let mut res = error_page(
        st,
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        "Too many sign-ins are in progress. Please try again in a moment.",
        None,
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    res
}
