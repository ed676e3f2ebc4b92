//! A small axum app protected by `portcullis-guard`: security headers with a CSP nonce, a
//! session cookie with the `__Host-` prefix, forms protected by a session-bound CSRF token and
//! the same-origin check, the client address behind a trusted proxy, CORS on a JSON route, and
//! a safe `return_to`.
//!
//! Run: `cargo run -p portcullis-guard --example guarded_app`, then open
//! <http://localhost:3000/>. It listens on plain HTTP to stay self-contained; browsers accept
//! `Secure` and `__Host-` cookies from `http://localhost` only. A real app serves HTTPS (as
//! Portcullis does) and never plain HTTP.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Extension, Form, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use portcullis_guard::client_addr::{self, ClientAddr, TrustedProxies};
use portcullis_guard::cookies::{HostCookie, SameSite};
use portcullis_guard::csp::{CspNonce, PagePolicy};
use portcullis_guard::csrf::{self, SessionBoundTokens};
use portcullis_guard::{cors, headers, redirect};

/// The session cookie: an opaque random id, Strict, `__Host-`.
const SESSION: HostCookie = HostCookie::new("__Host-example-session", SameSite::Strict);
/// This app's own origin, for the same-origin check on posts.
const ORIGIN: &str = "http://localhost:3000";

#[derive(Clone)]
struct AppState {
    csrf: Arc<SessionBoundTokens>,
}

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

/// Escapes text for HTML (a real app uses an auto-escaping template engine, as Portcullis
/// does; this keeps the example free of one).
fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#x27;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

async fn form(
    State(st): State<AppState>,
    Extension(nonce): Extension<CspNonce>,
    headers: HeaderMap,
    Query(next): Query<Next>,
) -> Response {
    // A session id: the existing one, or a new random one.
    let session = SESSION.get(&headers).unwrap_or_else(csrf::new_token);
    let token = st.csrf.token_for(&session);
    // Only a same-origin path may come back from the query; anything else becomes "/".
    let return_to = next
        .return_to
        .as_deref()
        .and_then(redirect::safe_return_path)
        .unwrap_or("/");
    let html = format!(
        "<!doctype html><title>Guarded</title>\
         <form method=\"post\" action=\"/\">\
         <input type=\"hidden\" name=\"csrf_token\" value=\"{}\">\
         <input type=\"hidden\" name=\"return_to\" value=\"{}\">\
         <input name=\"note\"><button>Save</button></form>\
         <script nonce=\"{}\" src=\"/app.js\"></script>",
        escape(&token),
        escape(return_to),
        escape(nonce.as_str())
    );
    let mut res = Html(html).into_response();
    res.extensions_mut().insert(PagePolicy::new());
    if let Some(c) = SESSION.set(&session, 3600) {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

async fn save(
    State(st): State<AppState>,
    Extension(ClientAddr(ip)): Extension<ClientAddr>,
    headers: HeaderMap,
    Form(post): Form<Post>,
) -> Response {
    let session = SESSION.get(&headers).unwrap_or_default();
    if csrf::check_same_origin(&headers, ORIGIN).is_err()
        || st.csrf.verify(&session, Some(&post.csrf_token)).is_err()
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

fn app(csrf: SessionBoundTokens) -> Router {
    let proxies = Arc::new(TrustedProxies::parse("127.0.0.1").unwrap_or_default());
    Router::new()
        .route("/", get(form).post(save))
        .route(
            "/app.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    "document.querySelector('input[name=note]')?.focus();\n",
                )
            }),
        )
        .route(
            "/api/status",
            get(|| async { "{\"ok\":true}" }).layer(cors::allowlist(
                |origin| async move { origin.as_bytes() == b"https://spa.example.com" },
                &[Method::GET],
            )),
        )
        .with_state(AppState {
            csrf: Arc::new(csrf),
        })
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
        app(SessionBoundTokens::random()).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    async fn send(app: &Router, req: axum::http::Request<axum::body::Body>) -> Response {
        app.clone().oneshot(req).await.unwrap()
    }

    #[tokio::test]
    async fn the_example_is_guarded() {
        let app = app(SessionBoundTokens::random());
        // The form: a session cookie, a token bound to it, a nonce'd CSP.
        let res = send(
            &app,
            axum::http::Request::get("/?return_to=//evil.example")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
        assert!(res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("'nonce-"));
        let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
        let session = cookie.split(';').next().unwrap().to_owned();
        let body = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(!body.contains("evil.example"), "return_to was sanitised");
        let token = body
            .split("name=\"csrf_token\" value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned();
        let post = |origin: &str, token: &str, session: &str| {
            axum::http::Request::post("/")
                .header("content-type", "application/x-www-form-urlencoded")
                .header("origin", origin)
                .header("cookie", session)
                .body(axum::body::Body::from(format!(
                    "csrf_token={token}&note=hi&return_to=%2Fdone"
                )))
                .unwrap()
        };
        // Cross-site with a valid token and cookie: refused by the same-origin check.
        let res = send(&app, post("https://evil.example", &token, &session)).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(res.headers().contains_key("strict-transport-security"));
        // Same origin, but another session's token: refused by the token check.
        let res = send(&app, post(ORIGIN, &token, "__Host-example-session=other")).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        // Same origin, right token: 303 to the safe return path.
        let res = send(&app, post(ORIGIN, &token, &session)).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(res.headers()["location"], "/done");
    }
}
