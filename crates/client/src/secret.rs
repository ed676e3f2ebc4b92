//! A value that must never be printed: client secrets, tokens, the PKCE verifier.

use zeroize::Zeroizing;

/// A secret string. `Debug` shows `Secret(…)`; there is no `Display` and no `Serialize`, so it
/// cannot reach a log line or a JSON body by accident. The memory is zeroed on drop.
///
/// ```
/// use portcullis_client::Secret;
/// let s = Secret::new("pcs_example");
/// assert_eq!(format!("{s:?}"), "Secret(…)");
/// assert_eq!(s.expose(), "pcs_example");
/// ```
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Zeroizing::new(value.into()))
    }

    /// The value itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret::new(value)
    }
}
