//! Newtype identifiers. Raw strings do not cross module boundaries; each ID has a prefix so
//! that user and client subjects can never collide.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::crypto::random_token;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The prefix every value of this ID carries.
            pub const PREFIX: &'static str = $prefix;

            /// A fresh random ID (128 bits).
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, random_token(16)))
            }

            /// Accepts a stored or user-supplied value if it has the right shape.
            pub fn parse(value: &str) -> Option<Self> {
                let rest = value.strip_prefix($prefix)?;
                if rest.is_empty()
                    || rest.len() > 64
                    || !rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    return None;
                }
                Some(Self(value.to_owned()))
            }

            /// Wraps a value read back from our own storage.
            pub fn from_trusted(value: String) -> Self {
                Self(value)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A user; also the `sub` of tokens issued to that user.
    UserId,
    "usr_"
);
id_type!(
    /// A registered client application; also the `sub` of its client-credentials tokens.
    ClientId,
    "cl_"
);
id_type!(
    /// A browser session, as published in the `sid` claim (not the cookie value).
    SessionId,
    "ses_"
);
id_type!(
    /// A refresh-token family: every token rotated from one grant.
    FamilyId,
    "fam_"
);
id_type!(
    /// A signing key's `kid`.
    KeyId,
    "k_"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_distinct_prefixes_and_parse_back() {
        let u = UserId::generate();
        let c = ClientId::generate();
        assert!(u.as_str().starts_with("usr_"));
        assert!(c.as_str().starts_with("cl_"));
        assert_eq!(UserId::parse(u.as_str()), Some(u.clone()));
        assert_eq!(ClientId::parse(u.as_str()), None);
        assert_eq!(UserId::parse("usr_"), None);
        assert_eq!(UserId::parse("usr_a b"), None);
    }
}
