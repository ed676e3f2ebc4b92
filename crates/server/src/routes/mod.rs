//! One module per endpoint.

pub mod authorize;
pub mod discovery;
pub mod index;
pub mod login;
pub mod logout;
pub mod resume;
pub mod token;
pub mod userinfo;
