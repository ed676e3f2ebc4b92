//! CORS for browser apps, on top of `tower-http`'s CORS layer, with the two policies an
//! authorization server (or an API) needs and nothing looser:
//!
//! - [`public_metadata`]: public documents (discovery, JWKS): any origin, `GET`/`HEAD`, no
//!   credentials.
//! - [`allowlist`]: token-bearing endpoints: only the origins an async check accepts (for
//!   Portcullis, the origins of public clients' registered redirect URIs), never with
//!   credentials (cookies), with preflights answered. A refused origin gets no CORS headers, so
//!   the browser withholds the response from the page.
//!
//! Routes without one of these layers send no CORS headers at all.
//!
//! ```
//! use axum::{routing::{get, post}, Router};
//! use portcullis_guard::cors;
//! use http::Method;
//!
//! let app: Router = Router::new()
//!     .route("/jwks", get(|| async { "{}" }).layer(cors::public_metadata()))
//!     .route(
//!         "/token",
//!         post(|| async { "{}" }).layer(cors::allowlist(
//!             |origin| async move { origin.as_bytes() == b"https://app.example.com" },
//!             &[Method::POST],
//!         )),
//!     );
//! ```

use std::future::Future;
use std::time::Duration;

use http::{header, HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long browsers may cache a preflight answer.
pub const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// Headers a page may read from token-bearing responses besides the CORS-safelisted ones.
const EXPOSED: [HeaderName; 4] = [
    header::WWW_AUTHENTICATE,
    header::RETRY_AFTER,
    HeaderName::from_static("ratelimit"),
    HeaderName::from_static("ratelimit-policy"),
];

/// Any origin may read these responses; no credentials are involved.
pub fn public_metadata() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::any())
        .allow_methods([Method::GET, Method::HEAD])
        .max_age(Duration::from_secs(3600))
}

/// Only origins for which `allowed` answers `true` may call these endpoints from a page, with
/// the given methods and the `Authorization` and `Content-Type` request headers. Credentials
/// (cookies, TLS client certificates) are never allowed.
pub fn allowlist<F, Fut>(allowed: F, methods: &[Method]) -> CorsLayer
where
    F: Fn(HeaderValue) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    CorsLayer::new()
        .allow_origin(AllowOrigin::async_predicate(move |origin, _parts| {
            // Opaque origins (`null`: sandboxed frames, `file:`, redirects across origins) and
            // anything that is not a plain `scheme://host[:port]` never reach the predicate.
            let plain = is_tuple_origin(&origin);
            let check = allowed.clone();
            async move { plain && check(origin).await }
        }))
        .allow_methods(methods.to_vec())
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers(EXPOSED)
        .allow_credentials(false)
        .max_age(PREFLIGHT_MAX_AGE)
}

/// Is `origin` a serialised tuple origin, `http(s)://host[:port]` with nothing after it?
fn is_tuple_origin(origin: &HeaderValue) -> bool {
    let Ok(s) = origin.to_str() else {
        return false;
    };
    origin_of(s).is_some_and(|o| o == s)
}

/// The origin (`scheme://host[:port]`) of an absolute `http(s)` URL, as browsers send it in
/// `Origin`; `None` for anything else (opaque origins never match).
pub fn origin_of(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    if !matches!(u.scheme(), "https" | "http") {
        return None;
    }
    let o = u.origin();
    o.is_tuple().then(|| o.ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::{get, post};
    use axum::Router;
    use tower::ServiceExt;

    fn app() -> Router {
        Router::new()
            .route("/jwks", get(|| async { "{}" }).layer(public_metadata()))
            .route(
                "/token",
                post(|| async { "{}" }).layer(allowlist(
                    |o| async move { o.as_bytes() == b"https://app.example.com" },
                    &[Method::POST],
                )),
            )
            .route(
                "/lenient",
                post(|| async { "{}" }).layer(allowlist(|_| async { true }, &[Method::POST])),
            )
            .route("/login", post(|| async { "ok" }))
    }

    async fn send(method: &str, path: &str, origin: &str, preflight: bool) -> http::Response<Body> {
        let mut b = http::Request::builder()
            .method(method)
            .uri(path)
            .header("origin", origin);
        if preflight {
            b = b.header("access-control-request-method", "POST").header(
                "access-control-request-headers",
                "authorization, content-type",
            );
        }
        app().oneshot(b.body(Body::empty()).unwrap()).await.unwrap()
    }

    #[tokio::test]
    async fn metadata_is_open_to_any_origin() {
        let r = send("GET", "/jwks", "https://anything.example", false).await;
        assert_eq!(r.headers()["access-control-allow-origin"], "*");
        assert!(!r.headers().contains_key("access-control-allow-credentials"));
    }

    #[tokio::test]
    async fn token_endpoint_answers_only_allowed_origins() {
        let r = send("OPTIONS", "/token", "https://app.example.com", true).await;
        assert!(r.status().is_success());
        let h = r.headers();
        assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
        assert!(h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST"));
        assert!(!h.contains_key("access-control-allow-credentials"));
        assert!(h["vary"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("origin"));

        let r = send("POST", "/token", "https://app.example.com", false).await;
        assert_eq!(
            r.headers()["access-control-allow-origin"],
            "https://app.example.com"
        );

        for evil in [
            "https://evil.example",
            "null",
            "https://app.example.com.evil.example",
        ] {
            let r = send("OPTIONS", "/token", evil, true).await;
            assert!(
                !r.headers().contains_key("access-control-allow-origin"),
                "{evil}"
            );
            let r = send("POST", "/token", evil, false).await;
            assert!(
                !r.headers().contains_key("access-control-allow-origin"),
                "{evil}"
            );
        }
    }

    #[tokio::test]
    async fn opaque_and_malformed_origins_never_reach_the_predicate() {
        for bad in [
            "null",
            "file://",
            "https://a.example/path",
            "https://a.example:",
            "x",
        ] {
            let r = send("POST", "/lenient", bad, false).await;
            assert!(
                !r.headers().contains_key("access-control-allow-origin"),
                "{bad}"
            );
        }
        let r = send("POST", "/lenient", "https://a.example", false).await;
        assert_eq!(
            r.headers()["access-control-allow-origin"],
            "https://a.example"
        );
    }

    #[tokio::test]
    async fn other_routes_send_no_cors_headers() {
        let r = send("POST", "/login", "https://app.example.com", false).await;
        assert!(!r
            .headers()
            .keys()
            .any(|k| k.as_str().starts_with("access-control-")));
    }

    #[test]
    fn origins() {
        assert_eq!(
            origin_of("https://app.example.com/cb?x=1").as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:9000/cb").as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(
            origin_of("https://app.example.com:443/cb").as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(origin_of("com.example.app:/cb"), None);
        assert_eq!(origin_of("data:text/html,x"), None);
    }
}
