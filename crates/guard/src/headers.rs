//! Security headers on every response, errors included.
//!
//! Use with `axum::middleware::from_fn(portcullis_guard::headers::security_headers)`. Handlers
//! may set their own `Content-Security-Policy` or `Cache-Control`; everything else is forced.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::header::{self, HeaderValue};

/// HSTS: one year, subdomains included (RFC 6797).
pub const HSTS: &str = "max-age=31536000; includeSubDomains";
/// The policy for pages that did not set one: same-origin resources only, no plugins, no
/// framing, no `<base>`, forms only to ourselves.
pub const DEFAULT_HTML_CSP: &str = "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";
/// The policy for API responses: nothing may load from them.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

fn is_html(res: &Response) -> bool {
    res.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"))
}

/// Adds the header set to `res`.
pub fn apply(res: &mut Response) {
    let html = is_html(res);
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
    // page's own forms, which our CSRF check (rightly) refuses.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static(if html { "same-origin" } else { "no-referrer" }),
    );
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(if html { DEFAULT_HTML_CSP } else { API_CSP }),
        );
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// Middleware form of [`apply`].
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    apply(&mut res);
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    #[tokio::test]
    async fn every_status_gets_the_headers() {
        let app = Router::new()
            .route("/", get(|| async { axum::response::Html("<p>x</p>") }))
            .layer(axum::middleware::from_fn(security_headers));
        for (method, path) in [
            ("GET", "/"),
            ("GET", "/missing"),
            ("POST", "/"),
            ("HEAD", "/"),
        ] {
            let res = app
                .clone()
                .oneshot(
                    http::Request::builder()
                        .method(method)
                        .uri(path)
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            let h = res.headers();
            assert_eq!(h["strict-transport-security"], HSTS, "{method} {path}");
            assert_eq!(h["x-content-type-options"], "nosniff");
            assert_eq!(h["cross-origin-opener-policy"], "same-origin");
            assert!(h.contains_key("content-security-policy"));
            assert_eq!(h["cache-control"], "no-store");
        }
    }
}
