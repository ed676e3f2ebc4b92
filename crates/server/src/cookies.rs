//! The cookies Portcullis sets.

use portcullis_guard::cookies::{HostCookie, SameSite};

/// The pending sign-in (flow id and its CSRF secret live server-side; this grants nothing).
/// `Lax`, so it survives the top-level navigation back from an app.
pub const FLOW: HostCookie = HostCookie::new("__Host-portcullis-flow", SameSite::Lax);
/// The signed-in session. `Strict`: read only after a same-site step.
pub const SESSION: HostCookie = HostCookie::new("__Host-portcullis-session", SameSite::Strict);
/// A browser that signed in to an account before (see `portcullis_core::device`): lets it
/// keep trying while the account is throttled. Strict: only our own form posts carry it.
pub const DEVICE: HostCookie = HostCookie::new("__Host-portcullis-device", SameSite::Strict);
