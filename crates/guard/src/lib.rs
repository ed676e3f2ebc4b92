//! Portcullis guard: the browser-facing defenses Portcullis uses, packaged for any axum app.
//!
//! - [`headers`]: HSTS, CSP, `nosniff`, COOP, Referrer-Policy and `no-store` on every response.
//! - [`cookies`]: `__Host-` cookies that are always `Secure`, `HttpOnly`, `Path=/`, host-only.
//! - [`csrf`]: synchronizer tokens and the `Sec-Fetch-Site` / `Origin` check.
#![forbid(unsafe_code)]

pub mod cookies;
pub mod csrf;
pub mod headers;
