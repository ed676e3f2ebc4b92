//! Security headers on every response, errors included.
//!
//! Use with `axum::middleware::from_fn(portcullis_guard::headers::security_headers)` as the
//! outermost layer. It forces HSTS, `nosniff`, COOP, `X-Frame-Options`, the Referrer-Policy
//! (`same-origin` on HTML, `no-referrer` elsewhere) and a per-response CSP nonce (see
//! [`crate::csp`]); handlers may set their own `Cache-Control` (the default is `no-store`) and
//! attach a [`PagePolicy`] to widen `form-action`.
//!
//! ```
//! use axum::{routing::get, Router, Extension};
//! use axum::response::{Html, IntoResponse};
//! use portcullis_guard::csp::{CspNonce, PagePolicy};
//!
//! async fn page(Extension(nonce): Extension<CspNonce>) -> impl IntoResponse {
//!     let mut res = Html(format!("<script nonce=\"{}\" src=\"/app.js\"></script>", nonce.as_str()))
//!         .into_response();
//!     res.extensions_mut().insert(PagePolicy::new());
//!     res
//! }
//! let app: Router = Router::new()
//!     .route("/", get(page))
//!     .layer(axum::middleware::from_fn(portcullis_guard::headers::security_headers));
//! ```

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::header::{self, HeaderValue};

use crate::csp::{CspNonce, PagePolicy, API_POLICY};

/// HSTS: one year, subdomains included (RFC 6797).
pub const HSTS: &str = "max-age=31536000; includeSubDomains";

fn is_html(res: &Response) -> bool {
    res.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"))
}

/// Adds the header set to `res`, with `nonce` in the page policy.
pub fn apply(res: &mut Response, nonce: &CspNonce) {
    let html = is_html(res);
    let csp = match (res.extensions_mut().remove::<PagePolicy>(), html) {
        (Some(policy), _) => policy.header_value(nonce),
        (None, true) => PagePolicy::new().header_value(nonce),
        (None, false) => HeaderValue::from_static(API_POLICY),
    };
    let h = res.headers_mut();
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static(HSTS),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // `same-origin` on pages: `no-referrer` would make browsers send `Origin: null` on the
    // page's own forms, which the CSRF check (rightly) refuses.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static(if html { "same-origin" } else { "no-referrer" }),
    );
    // One policy, ours: a handler's own header would be a second, unchecked one.
    h.insert(header::CONTENT_SECURITY_POLICY, csp);
    // A page carries this response's nonce (and usually a CSRF token): a cached copy would
    // hand both to the next reader, so pages are never cacheable. Other responses choose.
    if html || !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// Middleware form of [`apply`]: a fresh [`CspNonce`] goes into the request's extensions and
/// into the response's policy.
pub async fn security_headers(mut req: Request, next: Next) -> Response {
    let nonce = CspNonce::generate();
    req.extensions_mut().insert(nonce.clone());
    let mut res = next.run(req).await;
    apply(&mut res, &nonce);
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::response::IntoResponse;
    use axum::routing::get;
    use axum::Router;
    use http::StatusCode;
    use tower::ServiceExt;

    fn app() -> Router {
        Router::new()
            .route(
                "/",
                get(|| async { axum::response::Html("<p>x</p>") }).post(|| async { "posted" }),
            )
            .route(
                "/widened",
                get(|| async {
                    let mut r = axum::response::Html("<form></form>").into_response();
                    r.extensions_mut().insert(
                        PagePolicy::new()
                            .allow_form_action("https://app.example.com")
                            .unwrap(),
                    );
                    r
                }),
            )
            .route(
                "/redirect",
                get(|| async { axum::response::Redirect::to("/") }),
            )
            .route(
                "/fail",
                get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
            )
            .route(
                "/cached",
                get(|| async { ([(header::CACHE_CONTROL, "public, max-age=60")], "css") }),
            )
            .route(
                "/cached-page",
                get(|| async {
                    (
                        [(header::CACHE_CONTROL, "public, max-age=60")],
                        axum::response::Html("<p>x</p>"),
                    )
                }),
            )
            .layer(axum::middleware::from_fn(security_headers))
    }

    async fn send(method: &str, path: &str) -> http::Response<Body> {
        app()
            .oneshot(
                http::Request::builder()
                    .method(method)
                    .uri(path)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn every_status_and_method_gets_the_headers() {
        for (method, path, status) in [
            ("GET", "/", 200),
            ("HEAD", "/", 200),
            ("POST", "/", 200),
            ("GET", "/missing", 404),
            ("DELETE", "/", 405),
            ("PUT", "/missing", 404),
            ("GET", "/redirect", 303),
            ("GET", "/fail", 500),
            ("OPTIONS", "/", 405),
        ] {
            let res = send(method, path).await;
            assert_eq!(res.status().as_u16(), status, "{method} {path}");
            let h = res.headers();
            assert_eq!(h["strict-transport-security"], HSTS, "{method} {path}");
            assert_eq!(h["x-content-type-options"], "nosniff");
            assert_eq!(h["cross-origin-opener-policy"], "same-origin");
            assert_eq!(h["x-frame-options"], "DENY");
            assert_eq!(h.get_all("content-security-policy").iter().count(), 1);
            assert!(h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'"));
            assert_eq!(h["cache-control"], "no-store");
        }
    }

    #[tokio::test]
    async fn pages_get_a_fresh_nonce_and_same_origin_referrers() {
        let a = send("GET", "/").await;
        let b = send("GET", "/").await;
        let csp = |r: &http::Response<Body>| {
            r.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert!(csp(&a).contains("script-src 'nonce-"));
        assert_ne!(csp(&a), csp(&b), "the nonce differs per response");
        assert_eq!(a.headers()["referrer-policy"], "same-origin");
        assert!(csp(&a).ends_with("form-action 'self'"));
        let w = send("GET", "/widened").await;
        assert!(csp(&w).ends_with("form-action 'self' https://app.example.com"));
        let api = send("POST", "/").await;
        assert_eq!(csp(&api), API_POLICY);
        assert_eq!(api.headers()["referrer-policy"], "no-referrer");
    }

    #[tokio::test]
    async fn handlers_may_choose_caching() {
        let r = send("GET", "/cached").await;
        assert_eq!(r.headers()["cache-control"], "public, max-age=60");
        // Never a page: it carries a per-response nonce.
        let r = send("GET", "/cached-page").await;
        assert_eq!(r.headers()["cache-control"], "no-store");
    }
}
