//! The demo's own settings, from the environment (the SDK reads its own `PORTCULLIS_*`
//! variables through `Portcullis::from_env`). Nothing here is a secret.

use std::net::SocketAddr;
use std::path::PathBuf;

/// A setting that is missing or malformed; names the variable, never a secret.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Where the app listens, what its public URL is, and which API its `/api/things` route is.
#[derive(Clone, Debug)]
pub struct DemoConfig {
    /// `DEMO_LISTEN`: the socket address (default `127.0.0.1:3443`).
    pub listen: SocketAddr,
    /// `DEMO_URL`: the app's public origin, `https://host[:port]`, no path (default
    /// `https://127.0.0.1:3443`). Redirect URIs and the same-origin check come from it,
    /// never from the request's `Host`.
    pub url: String,
    /// `DEMO_API_AUDIENCE`: the API (`aud`) that `/api/things` accepts tokens for.
    pub api_audience: String,
    /// `DEMO_API_SCOPE`: the scope `/api/things` requires (default `read:things`).
    pub api_scope: String,
    /// `DEMO_TLS_CERT` and `DEMO_TLS_KEY`: PEM files; when both are absent a self-signed
    /// development certificate is generated in memory at every start.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `DEMO_REFRESH_BEFORE`: refresh the access token when it expires within this many
    /// seconds (0 to 3600, default 60).
    pub refresh_before: i64,
    /// How long an app session lasts at most, seconds (8 hours).
    pub session_ttl: i64,
}

/// The redirect URI path (the transaction cookie is scoped to it).
pub const CALLBACK_PATH: &str = "/callback";
/// Where Portcullis sends the browser after logout.
pub const SIGNED_OUT_PATH: &str = "/signed-out";
/// Where Portcullis POSTs back-channel logout tokens.
pub const BACKCHANNEL_PATH: &str = "/backchannel-logout";

impl DemoConfig {
    /// A configuration for `url` (an `https` origin) and `api_audience`, with the defaults.
    pub fn new(url: &str, api_audience: &str) -> Result<Self, ConfigError> {
        Ok(DemoConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 3443)),
            url: parse_origin(url)?,
            api_audience: nonempty("DEMO_API_AUDIENCE", api_audience)?,
            api_scope: "read:things".to_owned(),
            tls: None,
            refresh_before: 60,
            session_ttl: 8 * 3600,
        })
    }

    /// Reads the `DEMO_*` variables.
    pub fn from_env() -> Result<Self, ConfigError> {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let audience = var("DEMO_API_AUDIENCE")
            .ok_or_else(|| ConfigError("DEMO_API_AUDIENCE is not set".into()))?;
        let mut c = DemoConfig::new(
            &var("DEMO_URL").unwrap_or_else(|| "https://127.0.0.1:3443".into()),
            &audience,
        )?;
        if let Some(l) = var("DEMO_LISTEN") {
            c.listen = l.parse().map_err(|_| {
                ConfigError("DEMO_LISTEN must be an address:port such as 127.0.0.1:3443".into())
            })?;
        }
        if let Some(s) = var("DEMO_API_SCOPE") {
            if !s
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
            {
                return Err(ConfigError("DEMO_API_SCOPE must be one scope".into()));
            }
            c.api_scope = s;
        }
        c.tls = match (var("DEMO_TLS_CERT"), var("DEMO_TLS_KEY")) {
            (Some(cert), Some(key)) => Some((cert.into(), key.into())),
            (None, None) => None,
            _ => {
                return Err(ConfigError(
                    "set both DEMO_TLS_CERT and DEMO_TLS_KEY, or neither".into(),
                ))
            }
        };
        if let Some(r) = var("DEMO_REFRESH_BEFORE") {
            c.refresh_before = r
                .parse()
                .ok()
                .filter(|n| (0..=3600).contains(n))
                .ok_or_else(|| {
                    ConfigError("DEMO_REFRESH_BEFORE must be 0 to 3600 seconds".into())
                })?;
        }
        Ok(c)
    }

    /// The redirect URI to register: `<DEMO_URL>/callback`.
    pub fn redirect_uri(&self) -> String {
        format!("{}{CALLBACK_PATH}", self.url)
    }

    /// The post-logout redirect URI to register: `<DEMO_URL>/signed-out`.
    pub fn post_logout_redirect_uri(&self) -> String {
        format!("{}{SIGNED_OUT_PATH}", self.url)
    }

    /// The back-channel logout URI to register: `<DEMO_URL>/backchannel-logout`.
    pub fn backchannel_logout_uri(&self) -> String {
        format!("{}{BACKCHANNEL_PATH}", self.url)
    }

    /// The host of `DEMO_URL` (for a generated certificate).
    pub fn host(&self) -> String {
        url::Url::parse(&self.url)
            .ok()
            .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_owned()))
            .unwrap_or_else(|| "localhost".to_owned())
    }
}

fn nonempty(name: &str, v: &str) -> Result<String, ConfigError> {
    let v = v.trim();
    if v.is_empty() || v.len() > 512 {
        return Err(ConfigError(format!("{name} is empty or too long")));
    }
    Ok(v.to_owned())
}

/// `https://host[:port]` exactly as a browser would send it in `Origin`.
fn parse_origin(value: &str) -> Result<String, ConfigError> {
    let bad = || {
        ConfigError(
            "DEMO_URL must be an https origin such as https://127.0.0.1:3443 (no path)".into(),
        )
    };
    let u = url::Url::parse(value.trim()).map_err(|_| bad())?;
    if u.scheme() != "https"
        || u.host_str().is_none()
        || u.path() != "/"
        || u.query().is_some()
        || u.fragment().is_some()
        || !u.username().is_empty()
        || u.password().is_some()
    {
        return Err(bad());
    }
    Ok(u.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let c = DemoConfig::new("https://127.0.0.1:3443/", "https://api.example.com").unwrap();
        assert_eq!(c.url, "https://127.0.0.1:3443");
        assert_eq!(c.redirect_uri(), "https://127.0.0.1:3443/callback");
        assert_eq!(c.host(), "127.0.0.1");
        let c = DemoConfig::new("https://App.Example.com:443", "x").unwrap();
        assert_eq!(c.url, "https://app.example.com");
        for bad in [
            "http://127.0.0.1:3443",
            "https://127.0.0.1:3443/app",
            "https://u@127.0.0.1",
            "https://127.0.0.1/?q",
            "nonsense",
        ] {
            assert!(DemoConfig::new(bad, "x").is_err(), "{bad}");
        }
        assert!(DemoConfig::new("https://a.example", " ").is_err());
    }
}
