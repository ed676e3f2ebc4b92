//! The router: routes, body limits, host check, security headers, request log.

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use portcullis_core::discovery::paths;
use portcullis_guard::{client_addr, cors};
use tower_http::catch_panic::CatchPanicLayer;

use crate::routes;
use crate::state::AppState;

/// Largest request body any endpoint accepts (forms and token requests are small).
pub const MAX_BODY: usize = 64 * 1024;
/// Most request header fields accepted (431 beyond).
pub const MAX_HEADERS: usize = 100;
/// Longest request target accepted, bytes (414 beyond). hyper itself refuses targets over
/// 64 KiB before any layer runs; ours is lower so that the answer carries our headers.
pub const MAX_URI: usize = 16 * 1024;

/// Builds the application router: [`routes`] inside [`layered`].
pub fn router(state: AppState) -> Router {
    layered(routes(&state), state)
}

/// Every route, one module per endpoint, with the CORS policy of each.
pub fn routes(state: &AppState) -> Router<AppState> {
    let origins = state.cors_origins.clone();
    let token_cors = move |methods: &[Method]| {
        let origins = origins.clone();
        cors::allowlist(
            move |origin| {
                let origins = origins.clone();
                async move { origins.allows(&origin).await }
            },
            methods,
        )
    };
    Router::new()
        .route("/", get(routes::index::index))
        .route("/static/portcullis.css", get(routes::index::stylesheet))
        .route("/favicon.ico", get(routes::index::favicon))
        .route(
            "/.well-known/openid-configuration",
            get(routes::discovery::metadata).layer(cors::public_metadata()),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(routes::discovery::metadata).layer(cors::public_metadata()),
        )
        .route(
            paths::JWKS,
            get(routes::discovery::jwks).layer(cors::public_metadata()),
        )
        .route(
            paths::AUTHORIZE,
            get(routes::authorize::authorize).post(routes::authorize::authorize_post),
        )
        .route("/authorize/resume", get(routes::resume::resume))
        .route("/authorize/continue", post(routes::resume::continue_as))
        .route("/login", post(routes::login::login))
        .route(
            routes::password::PATH,
            get(routes::password::show).post(routes::password::change),
        )
        .route(
            "/account/sessions",
            get(routes::sessions::list).post(routes::sessions::end),
        )
        .route(
            paths::END_SESSION,
            get(routes::logout::logout).post(routes::logout::logout_post),
        )
        .route(routes::logout::RESUME_PATH, get(routes::logout::resume))
        .route(
            paths::TOKEN,
            post(routes::token::token).layer(token_cors(&[Method::POST])),
        )
        // Browser apps (public clients) revoke their tokens at sign-out; introspection is for
        // servers, so it sends no CORS headers at all.
        .route(
            paths::REVOKE,
            post(routes::revoke::revoke).layer(token_cors(&[Method::POST])),
        )
        .route(paths::INTROSPECT, post(routes::introspect::introspect))
        .route(
            paths::USERINFO,
            get(routes::userinfo::userinfo)
                .post(routes::userinfo::userinfo)
                .layer(token_cors(&[Method::GET, Method::POST])),
        )
        .fallback(routes::index::not_found)
}

/// Wraps `routes` in the layers every response passes through, outermost last: security
/// headers (on everything, errors included), panic catcher, client address, request log, host
/// check, body limit.
pub fn layered(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(body_too_large))
        .layer(middleware::from_fn_with_state(state.clone(), host_check))
        .layer(middleware::from_fn(head_limits))
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            request_log,
        ))
        .layer(middleware::from_fn_with_state(
            state.trusted_proxies.clone(),
            client_addr::resolve_client_addr,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal error\n").into_response()
        }))
        .layer(middleware::from_fn(
            portcullis_guard::headers::security_headers,
        ))
        .with_state(state)
}

/// An oversized body: axum answers 413 with its own text from the extractor; the endpoints
/// that speak RFC 6749 §5.2 JSON errors answer in that format instead, the others with a
/// short text of ours. The headers set inside (CORS on the token endpoints) are kept.
async fn body_too_large(req: Request, next: Next) -> Response {
    let oauth = matches!(
        req.uri().path(),
        paths::TOKEN | paths::REVOKE | paths::INTROSPECT
    );
    let res = next.run(req).await;
    if res.status() != StatusCode::PAYLOAD_TOO_LARGE {
        return res;
    }
    let (mut parts, _) = res.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let mut ours = if oauth {
        crate::respond::oauth_json_error(&portcullis_core::error::OAuthError::invalid_request(
            format!("the request body is larger than {} KiB", MAX_BODY / 1024),
        ))
    } else {
        (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("Request body too large (at most {} KiB)\n", MAX_BODY / 1024),
        )
            .into_response()
    };
    for (name, value) in ours.headers() {
        parts.headers.insert(name.clone(), value.clone());
    }
    *ours.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
    let (_, body) = ours.into_parts();
    Response::from_parts(parts, body)
}

/// Oversized request heads: 414 for a long target, 431 for too many header fields.
async fn head_limits(req: Request, next: Next) -> Response {
    let too_long = req
        .uri()
        .path_and_query()
        .is_some_and(|pq| pq.as_str().len() > MAX_URI);
    if too_long {
        return (
            StatusCode::URI_TOO_LONG,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "Request target too long\n",
        )
            .into_response();
    }
    if req.headers().len() > MAX_HEADERS {
        return (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "Too many request header fields\n",
        )
            .into_response();
    }
    next.run(req).await
}

/// A request that names another host gets 421: every URL we emit comes from the issuer, and
/// we answer only for it.
async fn host_check(State(st): State<AppState>, req: Request, next: Next) -> Response {
    // RFC 9112 §3.2: a request with more than one Host header is a 400.
    if req.headers().get_all(header::HOST).iter().nth(1).is_some() {
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "Bad request: more than one Host header\n",
        )
            .into_response();
    }
    let host = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        });
    match host {
        Some(h) if st.issuer_hosts.iter().any(|ok| ok.eq_ignore_ascii_case(&h)) => {
            next.run(req).await
        }
        _ => (
            StatusCode::MISDIRECTED_REQUEST,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "Misdirected request: this server answers only for its issuer host\n",
        )
            .into_response(),
    }
}

/// One structured line per request: method, path (never the query, which may hold codes),
/// status and latency.
async fn request_log(
    State(metrics): State<std::sync::Arc<crate::metrics::Metrics>>,
    req: Request,
    next: Next,
) -> Response {
    let client = req
        .extensions()
        .get::<client_addr::ClientAddr>()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    let method = req.method().clone();
    // Cleaned like every audit text field: no control, line-separator or bidi characters.
    let path = portcullis_core::audit::clean(req.uri().path(), 200);
    // The route template, never the raw path: a bounded set of metric labels.
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    // Our own id for the request (never one the client sends): in the log line, in every audit
    // event the request causes, and in the `X-Request-Id` response header for support.
    let id: std::sync::Arc<str> = portcullis_core::crypto::random_token(12).into();
    let mut req = req;
    req.extensions_mut()
        .insert(crate::audit::RequestId(id.clone()));
    let started = std::time::Instant::now();
    let mut res = next.run(req).await;
    if let Ok(v) = axum::http::HeaderValue::from_str(&id) {
        res.headers_mut().insert("x-request-id", v);
    }
    let elapsed = started.elapsed().as_secs_f64();
    metrics.observe_request(&route, method.as_str(), elapsed);
    tracing::info!(target: "portcullis::http", %method, path = %path, client = %client, status = res.status().as_u16(), request_id = %id, ms = elapsed * 1000.0);
    res
}
