//! Portcullis guard: the browser-facing defenses Portcullis uses, packaged for any axum app.
//!
//! - [`headers`]: HSTS, a per-response CSP nonce, `nosniff`, COOP, `X-Frame-Options`,
//!   Referrer-Policy and `no-store` on every response, errors included.
//! - [`csp`]: the page policy (`default-src 'self'`, nonces, `form-action` origins).
//! - [`cookies`]: `__Host-` cookies that are always `Secure`, `HttpOnly`, `Path=/`, host-only,
//!   and path-scoped `__Secure-` ones (a sign-in transaction cookie for one callback path).
//! - [`csrf`]: synchronizer tokens and the `Sec-Fetch-Site` / `Origin` check.
//! - [`cors`]: open CORS for public metadata, allow-listed origins for token endpoints.
//! - [`client_addr`]: the client address behind trusted proxies, and IPv6 /64 buckets.
//! - [`redirect`]: exact-match redirect allowlists and safe same-origin `return_to` paths.
//! - [`limiter`]: attempt limits for brute-force defenses, race-free and bounded in memory.
//!
//! `examples/guarded_app.rs` puts them together in a small axum app.
#![forbid(unsafe_code)]

pub mod client_addr;
pub mod cookies;
pub mod cors;
pub mod csp;
pub mod csrf;
pub mod headers;
pub mod limiter;
pub mod redirect;
