//! A small axum app protected by `portcullis-guard`: security headers with a CSP nonce, a
//! CSRF-protected form whose token lives in a `__Host-` cookie, the client address behind a
//! trusted proxy, CORS on a JSON route, and a safe `return_to`.
//!
//! Run: `cargo run -p portcullis-guard --example guarded_app`, then open
//! <http://127.0.0.1:3000/> (plain HTTP here to stay self-contained; `__Host-` cookies need
//! HTTPS, so in a browser serve it over TLS as Portcullis does, or test with curl).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Extension, Form, Query};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use portcullis_guard::client_addr::{self, ClientAddr, TrustedProxies};
use portcullis_guard::cookies::{HostCookie, SameSite};
use portcullis_guard::csp::{CspNonce, PagePolicy};
use portcullis_guard::{cors, csrf, headers, redirect};

/// The CSRF cookie: a random token the form must echo.
const CSRF: HostCookie = HostCookie::new("__Host-example-csrf", SameSite::Strict);
/// This app's own origin, for the same-origin check on posts.
const ORIGIN: &str = "http://127.0.0.1:3000";

#[derive(serde::Deserialize)]
struct Next {
    return_to: Option<String>,
}

#[derive(serde::Deserialize)]
struct Post {
    csrf_token: String,
    note: String,
    return_to: Option<String>,
}

async fn form(Extension(nonce): Extension<CspNonce>, Query(next): Query<Next>) -> Response {
    let token = csrf::new_token();
    // Only a same-origin path may come back from the query; anything else becomes "/".
    let return_to = next
        .return_to
        .as_deref()
        .and_then(redirect::safe_return_path)
        .unwrap_or("/")
        .to_owned();
    let html = format!(
        "<!doctype html><title>Guarded</title>\
         <form method=post action=/><input type=hidden name=csrf_token value={token}>\
         <input type=hidden name=return_to value=\"{}\">\
         <input name=note><button>Save</button></form>\
         <script nonce=\"{}\" src=\"/app.js\"></script>",
        return_to.replace('"', "&quot;"),
        nonce.as_str()
    );
    let mut res = Html(html).into_response();
    res.extensions_mut().insert(PagePolicy::new());
    if let Some(c) = CSRF.set(&token, 3600) {
        res.headers_mut().append(axum::http::header::SET_COOKIE, c);
    }
    res
}

async fn save(
    Extension(ClientAddr(ip)): Extension<ClientAddr>,
    headers: HeaderMap,
    Form(post): Form<Post>,
) -> Response {
    let expected = CSRF.get(&headers).unwrap_or_default();
    if csrf::check_same_origin(&headers, ORIGIN).is_err()
        || csrf::check_token(Some(&post.csrf_token), &expected).is_err()
    {
        return (StatusCode::FORBIDDEN, "Request refused").into_response();
    }
    println!("{ip} saved a note of {} bytes", post.note.len());
    let to = post
        .return_to
        .as_deref()
        .and_then(redirect::safe_return_path)
        .unwrap_or("/");
    // 303: the browser follows with a GET, never re-posting the form.
    Redirect::to(to).into_response()
}

fn app() -> Router {
    let proxies = Arc::new(TrustedProxies::parse("127.0.0.1").unwrap_or_default());
    Router::new()
        .route("/", get(form).post(save))
        .route(
            "/api/status",
            get(|| async { "{\"ok\":true}" }).layer(cors::allowlist(
                |origin| async move { origin.as_bytes() == b"https://spa.example.com" },
                &[Method::GET],
            )),
        )
        .layer(axum::middleware::from_fn_with_state(
            proxies,
            client_addr::resolve_client_addr,
        ))
        .layer(axum::middleware::from_fn(headers::security_headers))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on {ORIGIN}");
    axum::serve(
        listener,
        app().into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[tokio::test]
    async fn the_example_is_guarded() {
        let res = app()
            .oneshot(
                axum::http::Request::post("/")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("origin", "https://evil.example")
                    .body(axum::body::Body::from("csrf_token=x&note=hi"))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(res.headers().contains_key("strict-transport-security"));
    }
}
