//! One module per endpoint.

pub mod authorize;
pub mod discovery;
pub mod index;
pub mod introspect;
pub mod login;
pub mod logout;
pub mod password;
pub mod resume;
pub mod revoke;
pub mod sessions;
pub mod token;
pub mod userinfo;
