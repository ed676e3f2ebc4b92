//! Portcullis core: the OAuth 2.1 / OpenID Connect protocol and the domain rules.
//!
//! Nothing here speaks HTTP or SQL. Storage is reached through the small traits in
//! [`store`]; time is always passed in as `now` (Unix seconds); secrets live in types that never
//! print.
#![forbid(unsafe_code)]

pub mod audit;
pub mod authorize;
pub mod backchannel;
pub mod client_auth;
pub mod crypto;
pub mod detect;
pub mod device;
pub mod discovery;
pub mod email;
pub mod error;
pub mod geo;
pub mod grants;
pub mod ids;
pub mod introspection;
pub mod jwt;
pub mod keys;
pub mod login;
pub mod logout;
pub mod model;
pub mod params;
pub mod password;
pub mod password_change;
pub mod policy;
pub mod redirect_uri;
pub mod revocation;
pub mod scope;
pub mod secret;
pub mod store;
pub mod userinfo;

pub use error::OAuthError;
pub use secrecy;
