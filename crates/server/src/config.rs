//! Configuration: environment variables, a `.env` file and an optional TOML file.
//!
//! Secrets come only from the environment (or `.env`), are validated at start, and are never
//! printed: errors name the variable, never its value. Unknown TOML keys and close misspellings
//! of our variables are errors; other `PORTCULLIS_*` variables are ignored with one warning.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use portcullis_core::crypto::KeyBytes;
use portcullis_core::policy::Lifetimes;
use serde::Deserialize;

/// Every variable Portcullis reads.
pub const KNOWN_VARS: &[&str] = &[
    "PORTCULLIS_CONFIG",
    "PORTCULLIS_ISSUER",
    "PORTCULLIS_LISTEN",
    "PORTCULLIS_HTTP_REDIRECT_LISTEN",
    "PORTCULLIS_DATABASE_URL",
    "PORTCULLIS_DATA_DIR",
    "PORTCULLIS_SQLITE_SYNCHRONOUS",
    "PORTCULLIS_TLS_CERT",
    "PORTCULLIS_TLS_KEY",
    "PORTCULLIS_ENCRYPTION_KEY",
    "PORTCULLIS_ENCRYPTION_KEY_PREVIOUS",
    "PORTCULLIS_TOKEN_HASH_KEY",
    "PORTCULLIS_TRUSTED_PROXIES",
    "PORTCULLIS_DANGEROUS_PLAIN_HTTP_BEHIND_PROXY",
    "PORTCULLIS_ACCESS_TOKEN_TTL",
    "PORTCULLIS_ACCESS_TOKEN_ALG",
    "PORTCULLIS_ID_TOKEN_TTL",
    "PORTCULLIS_SESSION_TTL",
    "PORTCULLIS_OFFLINE_TTL",
    "PORTCULLIS_OFFLINE_IDLE",
    "PORTCULLIS_KEY_ROTATION_DAYS",
    "PORTCULLIS_KEY_PUBLISH_LEAD",
    "PORTCULLIS_SESSION_PRESET",
    "PORTCULLIS_SESSION_IDLE",
    "PORTCULLIS_MAX_SESSIONS_PER_USER",
    "PORTCULLIS_REFRESH_REUSE_GRACE",
    "PORTCULLIS_PASSWORD_MIN_LENGTH",
    "PORTCULLIS_HASHING_CONCURRENCY",
    "PORTCULLIS_LOG_LEVEL",
    "PORTCULLIS_LOG_BUFFER",
    "PORTCULLIS_LOGIN_MAX_FAILURES",
    "PORTCULLIS_LOGIN_WINDOW",
    "PORTCULLIS_LIMITER_CAPACITY",
    "PORTCULLIS_HASHING_QUEUE",
    "PORTCULLIS_CLIENT_AUTH_MAX_FAILURES",
    "PORTCULLIS_STUFFING_ACCOUNTS",
    "PORTCULLIS_STUFFING_WINDOW",
    "PORTCULLIS_CLIENT_QUOTA",
    "PORTCULLIS_IPV6_PREFIX",
    "PORTCULLIS_OUTBOUND_CA_FILE",
    "PORTCULLIS_BACKCHANNEL_POLL_MS",
    "PORTCULLIS_BACKCHANNEL_RETRY_BASE",
    "PORTCULLIS_ADMIN_LISTEN",
    "PORTCULLIS_EVENT_RETENTION_DAYS",
    "PORTCULLIS_EVENT_BUFFER",
    "PORTCULLIS_DETECT_LOGIN_FAILURES_ACCOUNT",
    "PORTCULLIS_DETECT_LOGIN_FAILURES_ADDRESS",
    "PORTCULLIS_DETECT_REFRESH_FAILURES_CLIENT",
    "PORTCULLIS_DETECT_REFRESH_FAILURES_USER",
    "PORTCULLIS_DETECT_CLIENT_AUTH_FAILURES_ADDRESS",
    "PORTCULLIS_DETECT_TOKEN_FAILURES_CLIENT",
    "PORTCULLIS_DETECT_TRAVEL_KMH",
    "PORTCULLIS_DETECT_RESPONSES",
    "PORTCULLIS_DETECT_BLOCK_SECS",
    "PORTCULLIS_DETECT_DELAY_MS",
    "PORTCULLIS_GEOIP_DB",
    "PORTCULLIS_ALERT_WEBHOOK_URL",
    "PORTCULLIS_ALERT_WEBHOOK_SECRET",
];

/// The window of the token endpoint's failed-client-authentication limit, seconds.
pub const CLIENT_AUTH_WINDOW: i64 = 300;

/// A configuration problem, naming the setting (never a secret's value).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

/// Settings allowed in the TOML file (no secrets: those come from the environment only).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    issuer: Option<String>,
    listen: Option<String>,
    http_redirect_listen: Option<String>,
    admin_listen: Option<String>,
    detect_login_failures_account: Option<String>,
    detect_login_failures_address: Option<String>,
    detect_refresh_failures_client: Option<String>,
    detect_refresh_failures_user: Option<String>,
    detect_client_auth_failures_address: Option<String>,
    detect_token_failures_client: Option<String>,
    detect_travel_kmh: Option<f64>,
    detect_responses: Option<String>,
    detect_block_secs: Option<i64>,
    detect_delay_ms: Option<u64>,
    geoip_db: Option<PathBuf>,
    alert_webhook_url: Option<String>,
    database_url: Option<String>,
    sqlite_synchronous: Option<String>,
    data_dir: Option<String>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    trusted_proxies: Option<Vec<String>>,
    access_token_ttl: Option<i64>,
    id_token_ttl: Option<i64>,
    access_token_alg: Option<String>,
    session_ttl: Option<i64>,
    offline_ttl: Option<i64>,
    key_rotation_days: Option<i64>,
    key_publish_lead: Option<i64>,
    session_preset: Option<String>,
    session_idle: Option<String>,
    max_sessions_per_user: Option<u32>,
    offline_idle: Option<i64>,
    refresh_reuse_grace: Option<i64>,
    password_min_length: Option<usize>,
    hashing_concurrency: Option<usize>,
    login_max_failures: Option<u32>,
    login_window: Option<i64>,
    limiter_capacity: Option<usize>,
    hashing_queue: Option<usize>,
    event_retention_days: Option<i64>,
    event_buffer: Option<usize>,
    client_auth_max_failures: Option<u32>,
    stuffing_accounts: Option<u32>,
    stuffing_window: Option<i64>,
    client_quota: Option<u32>,
    ipv6_prefix: Option<u8>,
    outbound_ca_file: Option<String>,
    backchannel_poll_ms: Option<u64>,
    backchannel_retry_base: Option<i64>,
}

/// TLS certificate and key files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The loaded configuration.
#[derive(Debug)]
pub struct Config {
    /// Public https URL, without a trailing slash.
    pub issuer: String,
    /// `scheme://host[:port]` of the issuer (for Origin checks).
    pub issuer_origin: String,
    /// Host header values that name us.
    pub issuer_hosts: Vec<String>,
    pub listen: SocketAddr,
    pub http_redirect_listen: Option<SocketAddr>,
    /// The admin API's listener (`None`: off).
    pub admin_listen: Option<SocketAddr>,
    /// The threat detections' thresholds and responses.
    pub detect_rules: portcullis_core::detect::Rules,
    /// How long a `block` or `delay` response lasts, seconds.
    pub detect_block_secs: i64,
    /// The extra wait of a `delay` response.
    pub detect_delay: std::time::Duration,
    /// The IP-geolocation database (MaxMind DB format), if any.
    pub geoip_db: Option<PathBuf>,
    /// Where alerts are POSTed, and the signing secret (from the environment only).
    pub alert_webhook: Option<(String, crate::webhook::WebhookSecret)>,
    pub database_url: String,
    /// SQLite commit durability (`PORTCULLIS_SQLITE_SYNCHRONOUS`, `full` by default).
    pub durability: portcullis_store::Durability,
    pub data_dir: PathBuf,
    /// `None` only in plain-HTTP-behind-proxy mode.
    pub tls: Option<TlsFiles>,
    pub encryption_key: KeyBytes,
    pub encryption_key_previous: Option<KeyBytes>,
    pub hash_key: KeyBytes,
    pub trusted_proxies: Vec<IpNet>,
    pub dangerous_plain_http_behind_proxy: bool,
    pub lifetimes: Lifetimes,
    /// Signing-key rotation: every `PORTCULLIS_KEY_ROTATION_DAYS`, published
    /// `PORTCULLIS_KEY_PUBLISH_LEAD` seconds before it signs.
    pub key_rotation: portcullis_core::keys::RotationPolicy,
    /// `PORTCULLIS_ACCESS_TOKEN_ALG`; unset, the deployment's own (`keyring::access_token_alg`).
    pub access_token_alg: Option<portcullis_core::model::SigningAlg>,
    pub password_min_length: usize,
    pub hashing_concurrency: usize,
    /// Failed sign-ins allowed per account and per client address within `login_window`.
    pub login_max_failures: u32,
    /// Seconds.
    pub login_window: i64,
    /// Most keys each in-memory limiter tracks.
    pub limiter_capacity: usize,
    /// Most password checks waiting for a hashing thread; beyond that, 503.
    pub hashing_queue: usize,
    /// Stored audit events older than this many days are deleted.
    pub event_retention_days: i64,
    /// Audit events that may wait for storage before new ones are dropped (and counted).
    pub event_buffer: usize,
    /// Failed client authentications allowed per address at the token endpoint per
    /// [`CLIENT_AUTH_WINDOW`] seconds.
    pub client_auth_max_failures: u32,
    /// Distinct accounts failed from one address within `stuffing_window` seconds that mark it
    /// as credential stuffing (refused for the rest of the window).
    pub stuffing_accounts: u32,
    pub stuffing_window: i64,
    /// Token requests per second each authenticated client may make.
    pub client_quota: u32,
    /// IPv6 clients are limited per network of this prefix length.
    pub ipv6_prefix: u8,
    /// Extra CA certificates (PEM) trusted for outbound calls, besides the system roots.
    pub outbound_ca_file: Option<PathBuf>,
    /// How often the back-channel logout dispatcher looks for ended sessions and due notices.
    pub backchannel_poll: std::time::Duration,
    /// Seconds before the first retry of a failed logout notice; each further retry waits
    /// twice as long.
    pub backchannel_retry_base: i64,
    pub dev: bool,
    /// Warnings to log once the logger is up.
    pub warnings: Vec<String>,
}

/// Where variables come from (the process environment, in tests a map).
pub trait Env {
    fn get(&self, name: &str) -> Option<String>;
    fn portcullis_names(&self) -> Vec<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
    fn portcullis_names(&self) -> Vec<String> {
        std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .filter(|k| k.starts_with("PORTCULLIS_"))
            .collect()
    }
}

impl Env for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        BTreeMap::get(self, name).cloned().filter(|v| !v.is_empty())
    }
    fn portcullis_names(&self) -> Vec<String> {
        self.keys()
            .filter(|k| k.starts_with("PORTCULLIS_"))
            .cloned()
            .collect()
    }
}

/// Checks variable names: misspellings of ours are errors, other `PORTCULLIS_*` names are
/// returned to be warned about once.
pub fn check_names(names: &[String]) -> Result<Vec<String>, ConfigError> {
    let mut ignored = Vec::new();
    for name in names {
        if KNOWN_VARS.contains(&name.as_str()) {
            continue;
        }
        let close = KNOWN_VARS.iter().find(|k| {
            let d = strsim::damerau_levenshtein(k, name);
            d <= 2 || (d <= 3 && name.len() > 28)
        });
        if let Some(k) = close {
            return err(format!(
                "{name} is not a Portcullis setting; did you mean {k}?"
            ));
        }
        ignored.push(name.clone());
    }
    ignored.sort();
    Ok(ignored)
}

/// Loads `.env` from the working directory into the process environment (existing variables
/// win). Called by the binary before [`load`].
pub fn load_dotenv(path: &Path) -> Result<(), ConfigError> {
    match dotenvy::from_path(path) {
        Ok(()) => Ok(()),
        Err(dotenvy::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => err(format!(
            "could not read {}: {}",
            path.display(),
            redact_dotenv_error(&e)
        )),
    }
}

fn redact_dotenv_error(e: &dotenvy::Error) -> String {
    match e {
        dotenvy::Error::LineParse(_, idx) => format!("syntax error at byte {idx}"),
        dotenvy::Error::Io(io) => io.to_string(),
        _ => "invalid file".to_owned(),
    }
}

fn parse_key(env: &dyn Env, name: &str, required: bool) -> Result<Option<KeyBytes>, ConfigError> {
    match env.get(name) {
        None if required => err(format!(
            "{name} is not set: it must be 32 random bytes written as 64 hex characters (for example the output of `openssl rand -hex 32`)"
        )),
        None => Ok(None),
        Some(v) => KeyBytes::from_hex(&v)
            .map(Some)
            .map_err(|e| ConfigError(format!("{name} is invalid: {e}"))),
    }
}

fn parse_issuer(raw: &str, dev: bool) -> Result<(String, String, Vec<String>), ConfigError> {
    let url = url::Url::parse(raw)
        .map_err(|_| ConfigError("PORTCULLIS_ISSUER is not an absolute URL".into()))?;
    let host = url
        .host_str()
        .ok_or_else(|| ConfigError("PORTCULLIS_ISSUER has no host".into()))?;
    let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
    match url.scheme() {
        "https" => {}
        "http" if dev && loopback => {}
        _ => return err("PORTCULLIS_ISSUER must be an https:// URL"),
    }
    if !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return err("PORTCULLIS_ISSUER must not contain userinfo, a query or a fragment");
    }
    if url.path() != "/" {
        return err("PORTCULLIS_ISSUER must not have a path (Portcullis serves from the root)");
    }
    let origin = url.origin().ascii_serialization();
    let mut hosts = Vec::new();
    match url.port() {
        Some(p) => hosts.push(format!("{host}:{p}")),
        None => {
            hosts.push(host.to_owned());
            hosts.push(format!(
                "{host}:{}",
                url.port_or_known_default().unwrap_or(443)
            ));
        }
    }
    Ok((origin.clone(), origin, hosts))
}

fn parse_addr(name: &str, v: &str) -> Result<SocketAddr, ConfigError> {
    v.parse().map_err(|_| {
        ConfigError(format!(
            "{name} must be an address:port such as 0.0.0.0:8443"
        ))
    })
}

fn parse_num<T: std::str::FromStr>(
    name: &str,
    v: Option<String>,
    file: Option<T>,
) -> Result<Option<T>, ConfigError> {
    match v {
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| ConfigError(format!("{name} must be a number"))),
        None => Ok(file),
    }
}

/// Loads and validates the configuration. In `dev` mode, missing secrets and the TLS
/// certificate are generated into the data directory (see [`crate::dev`]).
pub fn load(env: &dyn Env, dev: bool) -> Result<Config, ConfigError> {
    let ignored = check_names(&env.portcullis_names())?;
    let mut warnings = Vec::new();
    if !ignored.is_empty() {
        warnings.push(format!(
            "ignoring environment variables that are not Portcullis server settings: {}",
            ignored.join(", ")
        ));
    }
    let file: FileConfig = match env.get("PORTCULLIS_CONFIG") {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| ConfigError(format!("PORTCULLIS_CONFIG: cannot read {path}: {e}")))?;
            toml::from_str(&text)
                .map_err(|e| ConfigError(format!("PORTCULLIS_CONFIG {path}: {}", e.message())))?
        }
        None => FileConfig::default(),
    };
    let data_dir = PathBuf::from(
        env.get("PORTCULLIS_DATA_DIR")
            .or(file.data_dir)
            .unwrap_or_else(|| "portcullis-data".into()),
    );
    let dev_env = if dev {
        Some(crate::dev::prepare(&data_dir)?)
    } else {
        None
    };
    // In dev mode, values generated into the data directory fill what the environment lacks.
    let get = |name: &str| {
        env.get(name)
            .or_else(|| dev_env.as_ref().and_then(|d| d.get(name).cloned()))
    };
    struct Merged<'a>(&'a dyn Fn(&str) -> Option<String>);
    impl Env for Merged<'_> {
        fn get(&self, name: &str) -> Option<String> {
            (self.0)(name)
        }
        fn portcullis_names(&self) -> Vec<String> {
            Vec::new()
        }
    }
    let merged = Merged(&get);

    let issuer_raw = match get("PORTCULLIS_ISSUER").or(file.issuer) {
        Some(i) => i,
        None if dev => "https://localhost:8443".to_owned(),
        None => return err("PORTCULLIS_ISSUER is not set: the public https URL of this server, e.g. https://id.example.com"),
    };
    let (issuer, issuer_origin, issuer_hosts) = parse_issuer(&issuer_raw, dev)?;
    let listen = match get("PORTCULLIS_LISTEN").or(file.listen) {
        Some(v) => parse_addr("PORTCULLIS_LISTEN", &v)?,
        None if dev => parse_addr("PORTCULLIS_LISTEN", "127.0.0.1:8443")?,
        None => parse_addr("PORTCULLIS_LISTEN", "0.0.0.0:8443")?,
    };
    let http_redirect_listen =
        match get("PORTCULLIS_HTTP_REDIRECT_LISTEN").or(file.http_redirect_listen) {
            Some(v) => Some(parse_addr("PORTCULLIS_HTTP_REDIRECT_LISTEN", &v)?),
            None => None,
        };
    let admin_listen = match get("PORTCULLIS_ADMIN_LISTEN").or(file.admin_listen) {
        Some(v) if v.eq_ignore_ascii_case("off") => None,
        Some(v) => Some(parse_addr("PORTCULLIS_ADMIN_LISTEN", &v)?),
        None => Some(parse_addr("PORTCULLIS_ADMIN_LISTEN", "127.0.0.1:9443")?),
    };
    if admin_listen.is_some_and(|a| !a.ip().is_loopback()) {
        warnings.push(format!(
            "PORTCULLIS_ADMIN_LISTEN={} is not a loopback address: the admin API is reachable from the network (it still needs an admin token)",
            admin_listen.map(|a| a.to_string()).unwrap_or_default()
        ));
    }
    let threshold = |name: &str, v: Option<String>, default| -> Result<_, ConfigError> {
        match v {
            None => Ok(default),
            Some(s) => portcullis_core::detect::Threshold::parse(&s).ok_or_else(|| {
                ConfigError(format!(
                    "{name} must be COUNT/SECONDS, e.g. 10/300 (count 1-100000, window 1-86400)"
                ))
            }),
        }
    };
    let defaults = portcullis_core::detect::Rules::default();
    let account_set = get("PORTCULLIS_DETECT_LOGIN_FAILURES_ACCOUNT").is_some()
        || file.detect_login_failures_account.is_some();
    let address_set = get("PORTCULLIS_DETECT_LOGIN_FAILURES_ADDRESS").is_some()
        || file.detect_login_failures_address.is_some();
    let client_auth_set = get("PORTCULLIS_DETECT_CLIENT_AUTH_FAILURES_ADDRESS").is_some()
        || file.detect_client_auth_failures_address.is_some();
    let mut detect_rules = portcullis_core::detect::Rules {
        login_failures_account: threshold(
            "PORTCULLIS_DETECT_LOGIN_FAILURES_ACCOUNT",
            get("PORTCULLIS_DETECT_LOGIN_FAILURES_ACCOUNT").or(file.detect_login_failures_account),
            defaults.login_failures_account,
        )?,
        login_failures_address: threshold(
            "PORTCULLIS_DETECT_LOGIN_FAILURES_ADDRESS",
            get("PORTCULLIS_DETECT_LOGIN_FAILURES_ADDRESS").or(file.detect_login_failures_address),
            defaults.login_failures_address,
        )?,
        refresh_failures_client: threshold(
            "PORTCULLIS_DETECT_REFRESH_FAILURES_CLIENT",
            get("PORTCULLIS_DETECT_REFRESH_FAILURES_CLIENT")
                .or(file.detect_refresh_failures_client),
            defaults.refresh_failures_client,
        )?,
        refresh_failures_user: threshold(
            "PORTCULLIS_DETECT_REFRESH_FAILURES_USER",
            get("PORTCULLIS_DETECT_REFRESH_FAILURES_USER").or(file.detect_refresh_failures_user),
            defaults.refresh_failures_user,
        )?,
        client_auth_failures_address: threshold(
            "PORTCULLIS_DETECT_CLIENT_AUTH_FAILURES_ADDRESS",
            get("PORTCULLIS_DETECT_CLIENT_AUTH_FAILURES_ADDRESS")
                .or(file.detect_client_auth_failures_address),
            defaults.client_auth_failures_address,
        )?,
        token_failures_client: threshold(
            "PORTCULLIS_DETECT_TOKEN_FAILURES_CLIENT",
            get("PORTCULLIS_DETECT_TOKEN_FAILURES_CLIENT").or(file.detect_token_failures_client),
            defaults.token_failures_client,
        )?,
        travel_kmh: parse_num(
            "PORTCULLIS_DETECT_TRAVEL_KMH",
            get("PORTCULLIS_DETECT_TRAVEL_KMH"),
            file.detect_travel_kmh,
        )?
        .unwrap_or(defaults.travel_kmh),
        responses: match get("PORTCULLIS_DETECT_RESPONSES").or(file.detect_responses) {
            None => Vec::new(),
            Some(s) => portcullis_core::detect::Rules::parse_responses(&s)
                .map_err(|e| ConfigError(format!("PORTCULLIS_DETECT_RESPONSES: {e}")))?,
        },
    };
    if !(100.0..=20_000.0).contains(&detect_rules.travel_kmh) {
        return err("PORTCULLIS_DETECT_TRAVEL_KMH must be between 100 and 20000");
    }
    let detect_block_secs = parse_num(
        "PORTCULLIS_DETECT_BLOCK_SECS",
        get("PORTCULLIS_DETECT_BLOCK_SECS"),
        file.detect_block_secs,
    )?
    .unwrap_or(900);
    if !(1..=86_400).contains(&detect_block_secs) {
        return err("PORTCULLIS_DETECT_BLOCK_SECS must be between 1 and 86400");
    }
    let detect_delay_ms = parse_num(
        "PORTCULLIS_DETECT_DELAY_MS",
        get("PORTCULLIS_DETECT_DELAY_MS"),
        file.detect_delay_ms,
    )?
    .unwrap_or(2000);
    if !(1..=10_000).contains(&detect_delay_ms) {
        return err("PORTCULLIS_DETECT_DELAY_MS must be between 1 and 10000");
    }
    let geoip_db = get("PORTCULLIS_GEOIP_DB")
        .map(PathBuf::from)
        .or(file.geoip_db);
    let alert_webhook = match get("PORTCULLIS_ALERT_WEBHOOK_URL").or(file.alert_webhook_url) {
        None => {
            if get("PORTCULLIS_ALERT_WEBHOOK_SECRET").is_some() {
                warnings.push(
                    "PORTCULLIS_ALERT_WEBHOOK_SECRET is set without PORTCULLIS_ALERT_WEBHOOK_URL: no alert is sent".into(),
                );
            }
            None
        }
        Some(url) => {
            // A secret: from the environment or .env only, never the TOML file.
            let secret = get("PORTCULLIS_ALERT_WEBHOOK_SECRET").ok_or_else(|| {
                ConfigError(
                    "PORTCULLIS_ALERT_WEBHOOK_URL needs PORTCULLIS_ALERT_WEBHOOK_SECRET (whsec_ + base64, in the environment or .env)".into(),
                )
            })?;
            let secret = crate::webhook::WebhookSecret::parse(&secret)
                .map_err(|e| ConfigError(format!("PORTCULLIS_ALERT_WEBHOOK_SECRET {e}")))?;
            // The outbound rules, at start: https (http on loopback only with --dev), no
            // userinfo or fragment, no link-local or metadata address.
            crate::backchannel::check_target(&url, dev).map_err(|e| {
                ConfigError(format!("PORTCULLIS_ALERT_WEBHOOK_URL is refused: {e}"))
            })?;
            Some((url, secret))
        }
    };
    let database_url = get("PORTCULLIS_DATABASE_URL")
        .or(file.database_url)
        .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("portcullis.sqlite3").display()));
    let durability = match get("PORTCULLIS_SQLITE_SYNCHRONOUS").or(file.sqlite_synchronous) {
        None => portcullis_store::Durability::default(),
        Some(v) => portcullis_store::Durability::parse(&v).ok_or_else(|| {
            ConfigError("PORTCULLIS_SQLITE_SYNCHRONOUS must be full or normal".into())
        })?,
    };
    if durability == portcullis_store::Durability::Normal {
        warnings.push("PORTCULLIS_SQLITE_SYNCHRONOUS=normal: a power loss or OS crash may undo the last commits, revocations and sign-outs included".into());
    }

    let encryption_key = parse_key(&merged, "PORTCULLIS_ENCRYPTION_KEY", true)?
        .ok_or_else(|| ConfigError("PORTCULLIS_ENCRYPTION_KEY is not set".into()))?;
    let encryption_key_previous = parse_key(&merged, "PORTCULLIS_ENCRYPTION_KEY_PREVIOUS", false)?;
    let hash_key = parse_key(&merged, "PORTCULLIS_TOKEN_HASH_KEY", true)?
        .ok_or_else(|| ConfigError("PORTCULLIS_TOKEN_HASH_KEY is not set".into()))?;
    let norm = |v: Option<String>| v.map(|s| s.trim().to_ascii_lowercase());
    if norm(get("PORTCULLIS_ENCRYPTION_KEY")) == norm(get("PORTCULLIS_TOKEN_HASH_KEY")) {
        return err("PORTCULLIS_TOKEN_HASH_KEY must differ from PORTCULLIS_ENCRYPTION_KEY");
    }

    let trusted_proxies = match get("PORTCULLIS_TRUSTED_PROXIES") {
        Some(v) => v
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        None => file.trusted_proxies.unwrap_or_default(),
    }
    .iter()
    .map(|s| parse_cidr(s))
    .collect::<Result<Vec<_>, _>>()?;
    let dangerous_plain = match get("PORTCULLIS_DANGEROUS_PLAIN_HTTP_BEHIND_PROXY").as_deref() {
        None | Some("0") | Some("false") => false,
        Some("1") | Some("true") => true,
        Some(_) => return err("PORTCULLIS_DANGEROUS_PLAIN_HTTP_BEHIND_PROXY must be 1 or 0"),
    };
    let tls = if dangerous_plain {
        if trusted_proxies.is_empty() {
            return err("PORTCULLIS_DANGEROUS_PLAIN_HTTP_BEHIND_PROXY=1 needs PORTCULLIS_TRUSTED_PROXIES (the only addresses then accepted)");
        }
        warnings.push("PORTCULLIS_DANGEROUS_PLAIN_HTTP_BEHIND_PROXY=1: serving plain HTTP, accepted only from PORTCULLIS_TRUSTED_PROXIES; the proxy must terminate TLS".into());
        None
    } else {
        match (get("PORTCULLIS_TLS_CERT").or(file.tls_cert), get("PORTCULLIS_TLS_KEY").or(file.tls_key)) {
            (Some(c), Some(k)) => Some(TlsFiles { cert: c.into(), key: k.into() }),
            (None, None) => return err("PORTCULLIS_TLS_CERT and PORTCULLIS_TLS_KEY are not set (PEM files); Portcullis serves HTTPS only"),
            _ => return err("set both PORTCULLIS_TLS_CERT and PORTCULLIS_TLS_KEY"),
        }
    };

    let mut lifetimes = Lifetimes::default();
    // A preset sets the absolute timeout, the idle timeout and the access-token lifetime; the
    // individual settings below override its figures one by one.
    if let Some(p) = get("PORTCULLIS_SESSION_PRESET").or(file.session_preset) {
        let preset = portcullis_core::policy::Preset::parse(&p).ok_or_else(|| {
            ConfigError(
                "PORTCULLIS_SESSION_PRESET must be consumer, enterprise, financial or internal"
                    .into(),
            )
        })?;
        lifetimes.apply(preset);
    }
    if let Some(v) = get("PORTCULLIS_SESSION_IDLE").or(file.session_idle) {
        lifetimes.session_idle = if v.eq_ignore_ascii_case("off") {
            None
        } else {
            Some(v.parse().map_err(|_| {
                ConfigError("PORTCULLIS_SESSION_IDLE must be a number of seconds or off".into())
            })?)
        };
    }
    if let Some(n) = parse_num(
        "PORTCULLIS_MAX_SESSIONS_PER_USER",
        get("PORTCULLIS_MAX_SESSIONS_PER_USER"),
        file.max_sessions_per_user,
    )? {
        lifetimes.max_sessions_per_user = Some(n);
    }
    if let Some(t) = parse_num(
        "PORTCULLIS_ACCESS_TOKEN_TTL",
        get("PORTCULLIS_ACCESS_TOKEN_TTL"),
        file.access_token_ttl,
    )? {
        lifetimes.access_token = t;
    }
    if let Some(t) = parse_num(
        "PORTCULLIS_ID_TOKEN_TTL",
        get("PORTCULLIS_ID_TOKEN_TTL"),
        file.id_token_ttl,
    )? {
        lifetimes.id_token = t;
    }
    if let Some(t) = parse_num(
        "PORTCULLIS_SESSION_TTL",
        get("PORTCULLIS_SESSION_TTL"),
        file.session_ttl,
    )? {
        lifetimes.session_absolute = t;
    }
    if let Some(t) = parse_num(
        "PORTCULLIS_OFFLINE_TTL",
        get("PORTCULLIS_OFFLINE_TTL"),
        file.offline_ttl,
    )? {
        lifetimes.offline_absolute = t;
    }
    if let Some(t) = parse_num(
        "PORTCULLIS_OFFLINE_IDLE",
        get("PORTCULLIS_OFFLINE_IDLE"),
        file.offline_idle,
    )? {
        lifetimes.offline_idle = t;
    }
    if let Some(t) = parse_num(
        "PORTCULLIS_REFRESH_REUSE_GRACE",
        get("PORTCULLIS_REFRESH_REUSE_GRACE"),
        file.refresh_reuse_grace,
    )? {
        lifetimes.refresh_reuse_grace = t;
        if t > 2 {
            warnings.push(format!("PORTCULLIS_REFRESH_REUSE_GRACE={t}: a stolen rotated refresh token may be replayed for {t} s without raising theft (the default, 2 s, covers parallel tabs and retries)"));
        }
    }
    lifetimes.validate().map_err(ConfigError)?;
    let mut key_rotation = portcullis_core::keys::RotationPolicy::default();
    if let Some(days) = parse_num(
        "PORTCULLIS_KEY_ROTATION_DAYS",
        get("PORTCULLIS_KEY_ROTATION_DAYS"),
        file.key_rotation_days,
    )? {
        if !(1..=3650).contains(&days) {
            return err("PORTCULLIS_KEY_ROTATION_DAYS must be between 1 and 3650");
        }
        key_rotation.period = days * 86_400;
    }
    if let Some(lead) = parse_num(
        "PORTCULLIS_KEY_PUBLISH_LEAD",
        get("PORTCULLIS_KEY_PUBLISH_LEAD"),
        file.key_publish_lead,
    )? {
        if !(0..=7 * 86_400).contains(&lead) || lead >= key_rotation.period {
            return err("PORTCULLIS_KEY_PUBLISH_LEAD must be between 0 and 7 days, and shorter than the rotation period");
        }
        if lead < crate::keyring::JWKS_MAX_AGE {
            warnings.push(format!("PORTCULLIS_KEY_PUBLISH_LEAD={lead}: shorter than the JWKS cache lifetime ({} s); an app with a cached JWKS may refuse tokens from a new key until its cache expires", crate::keyring::JWKS_MAX_AGE));
        }
        key_rotation.lead = lead;
    }
    let access_token_alg = match get("PORTCULLIS_ACCESS_TOKEN_ALG").or(file.access_token_alg) {
        None => None,
        Some(a) => Some(
            portcullis_core::model::SigningAlg::parse(&a).ok_or_else(|| {
                ConfigError(
                    "PORTCULLIS_ACCESS_TOKEN_ALG must be EdDSA (Ed25519 keys), ES256 or RS256"
                        .into(),
                )
            })?,
        ),
    };
    let password_min_length = parse_num(
        "PORTCULLIS_PASSWORD_MIN_LENGTH",
        get("PORTCULLIS_PASSWORD_MIN_LENGTH"),
        file.password_min_length,
    )?
    .unwrap_or(15);
    if !(8..=64).contains(&password_min_length) {
        return err("PORTCULLIS_PASSWORD_MIN_LENGTH must be between 8 and 64");
    }
    if password_min_length < 15 {
        warnings.push(format!("PORTCULLIS_PASSWORD_MIN_LENGTH={password_min_length} is below the recommended 15 characters (NIST SP 800-63B for single-factor passwords)"));
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let hashing_concurrency = parse_num(
        "PORTCULLIS_HASHING_CONCURRENCY",
        get("PORTCULLIS_HASHING_CONCURRENCY"),
        file.hashing_concurrency,
    )?
    .unwrap_or(cores);
    if !(1..=256).contains(&hashing_concurrency) {
        return err("PORTCULLIS_HASHING_CONCURRENCY must be between 1 and 256");
    }
    let login_max_failures = parse_num(
        "PORTCULLIS_LOGIN_MAX_FAILURES",
        get("PORTCULLIS_LOGIN_MAX_FAILURES"),
        file.login_max_failures,
    )?
    .unwrap_or(5);
    if !(1..=100).contains(&login_max_failures) {
        return err("PORTCULLIS_LOGIN_MAX_FAILURES must be between 1 and 100");
    }
    let login_window = parse_num(
        "PORTCULLIS_LOGIN_WINDOW",
        get("PORTCULLIS_LOGIN_WINDOW"),
        file.login_window,
    )?
    .unwrap_or(900);
    if !(60..=86_400).contains(&login_window) {
        return err("PORTCULLIS_LOGIN_WINDOW must be between 60 and 86400 seconds");
    }
    // The sign-in burst detections count failures the limiter lets through (after its limit
    // the answer is a throttle, not a checked password): by default they fire exactly when the
    // limiter starts refusing an account or an address. A higher count is never reached
    // without device cookies: said at start.
    let limit = portcullis_core::detect::Threshold {
        count: login_max_failures,
        window: login_window,
    };
    if !account_set {
        detect_rules.login_failures_account = limit;
    }
    if !address_set {
        detect_rules.login_failures_address = limit;
    }
    for (name, t) in [
        (
            "PORTCULLIS_DETECT_LOGIN_FAILURES_ACCOUNT",
            detect_rules.login_failures_account,
        ),
        (
            "PORTCULLIS_DETECT_LOGIN_FAILURES_ADDRESS",
            detect_rules.login_failures_address,
        ),
    ] {
        if t.count > login_max_failures {
            warnings.push(format!(
                "{name}={}/{} cannot fire for attempts without a device cookie: the sign-in limiter refuses after {login_max_failures} failures (PORTCULLIS_LOGIN_MAX_FAILURES)",
                t.count, t.window
            ));
        }
    }
    let limiter_capacity = parse_num(
        "PORTCULLIS_LIMITER_CAPACITY",
        get("PORTCULLIS_LIMITER_CAPACITY"),
        file.limiter_capacity,
    )?
    .unwrap_or(100_000);
    if !(1_000..=10_000_000).contains(&limiter_capacity) {
        return err("PORTCULLIS_LIMITER_CAPACITY must be between 1000 and 10000000");
    }
    let hashing_queue = parse_num(
        "PORTCULLIS_HASHING_QUEUE",
        get("PORTCULLIS_HASHING_QUEUE"),
        file.hashing_queue,
    )?
    .unwrap_or(portcullis_core::password::DEFAULT_MAX_WAITING);
    if !(1..=100_000).contains(&hashing_queue) {
        return err("PORTCULLIS_HASHING_QUEUE must be between 1 and 100000");
    }
    let event_retention_days = parse_num(
        "PORTCULLIS_EVENT_RETENTION_DAYS",
        get("PORTCULLIS_EVENT_RETENTION_DAYS"),
        file.event_retention_days,
    )?
    .unwrap_or(90);
    if !(1..=3650).contains(&event_retention_days) {
        return err("PORTCULLIS_EVENT_RETENTION_DAYS must be between 1 and 3650");
    }
    let event_buffer = parse_num(
        "PORTCULLIS_EVENT_BUFFER",
        get("PORTCULLIS_EVENT_BUFFER"),
        file.event_buffer,
    )?
    .unwrap_or(100_000);
    if !(1_000..=10_000_000).contains(&event_buffer) {
        return err("PORTCULLIS_EVENT_BUFFER must be between 1000 and 10000000");
    }
    let client_auth_max_failures = parse_num(
        "PORTCULLIS_CLIENT_AUTH_MAX_FAILURES",
        get("PORTCULLIS_CLIENT_AUTH_MAX_FAILURES"),
        file.client_auth_max_failures,
    )?
    .unwrap_or(100);
    if !(1..=10_000).contains(&client_auth_max_failures) {
        return err("PORTCULLIS_CLIENT_AUTH_MAX_FAILURES must be between 1 and 10000");
    }
    // Like the sign-in bursts: by default the alert comes when the limiter starts refusing.
    if !client_auth_set {
        detect_rules.client_auth_failures_address = portcullis_core::detect::Threshold {
            count: client_auth_max_failures,
            window: CLIENT_AUTH_WINDOW,
        };
    }
    let stuffing_accounts = parse_num(
        "PORTCULLIS_STUFFING_ACCOUNTS",
        get("PORTCULLIS_STUFFING_ACCOUNTS"),
        file.stuffing_accounts,
    )?
    .unwrap_or(10);
    if !(2..=10_000).contains(&stuffing_accounts) {
        return err("PORTCULLIS_STUFFING_ACCOUNTS must be between 2 and 10000");
    }
    let stuffing_window = parse_num(
        "PORTCULLIS_STUFFING_WINDOW",
        get("PORTCULLIS_STUFFING_WINDOW"),
        file.stuffing_window,
    )?
    .unwrap_or(3600);
    if !(60..=86_400).contains(&stuffing_window) {
        return err("PORTCULLIS_STUFFING_WINDOW must be between 60 and 86400 seconds");
    }
    let client_quota = parse_num(
        "PORTCULLIS_CLIENT_QUOTA",
        get("PORTCULLIS_CLIENT_QUOTA"),
        file.client_quota,
    )?
    .unwrap_or(crate::quota::DEFAULT_PER_SECOND);
    if !(1..=1_000_000).contains(&client_quota) {
        return err("PORTCULLIS_CLIENT_QUOTA must be between 1 and 1000000 requests per second");
    }
    let ipv6_prefix = parse_num(
        "PORTCULLIS_IPV6_PREFIX",
        get("PORTCULLIS_IPV6_PREFIX"),
        file.ipv6_prefix,
    )?
    .unwrap_or(64);
    if !(32..=128).contains(&ipv6_prefix) {
        return err("PORTCULLIS_IPV6_PREFIX must be between 32 and 128");
    }
    let outbound_ca_file = get("PORTCULLIS_OUTBOUND_CA_FILE")
        .or(file.outbound_ca_file)
        .map(PathBuf::from);
    let backchannel_poll_ms = parse_num(
        "PORTCULLIS_BACKCHANNEL_POLL_MS",
        get("PORTCULLIS_BACKCHANNEL_POLL_MS"),
        file.backchannel_poll_ms,
    )?
    .unwrap_or(2000);
    if !(100..=60_000).contains(&backchannel_poll_ms) {
        return err("PORTCULLIS_BACKCHANNEL_POLL_MS must be between 100 and 60000 milliseconds");
    }
    let backchannel_retry_base = parse_num(
        "PORTCULLIS_BACKCHANNEL_RETRY_BASE",
        get("PORTCULLIS_BACKCHANNEL_RETRY_BASE"),
        file.backchannel_retry_base,
    )?
    .unwrap_or(10);
    if !(1..=600).contains(&backchannel_retry_base) {
        return err("PORTCULLIS_BACKCHANNEL_RETRY_BASE must be between 1 and 600 seconds");
    }
    if dev {
        warnings.push(format!(
            "development mode: secrets and a development certificate live in {dir}; never use --dev in production. To avoid the browser's certificate warning, trust {dir}/dev-ca.pem",
            dir = data_dir.display()
        ));
    }
    Ok(Config {
        issuer,
        issuer_origin,
        issuer_hosts,
        listen,
        http_redirect_listen,
        admin_listen,
        detect_rules,
        detect_block_secs,
        detect_delay: std::time::Duration::from_millis(detect_delay_ms),
        geoip_db,
        alert_webhook,
        database_url,
        durability,
        data_dir,
        tls,
        encryption_key,
        encryption_key_previous,
        hash_key,
        trusted_proxies,
        dangerous_plain_http_behind_proxy: dangerous_plain,
        lifetimes,
        key_rotation,
        access_token_alg,
        password_min_length,
        hashing_concurrency,
        login_max_failures,
        login_window,
        limiter_capacity,
        hashing_queue,
        event_retention_days,
        event_buffer,
        client_auth_max_failures,
        stuffing_accounts,
        stuffing_window,
        client_quota,
        ipv6_prefix,
        outbound_ca_file,
        backchannel_poll: std::time::Duration::from_millis(backchannel_poll_ms),
        backchannel_retry_base,
        dev,
        warnings,
    })
}

fn parse_cidr(s: &str) -> Result<IpNet, ConfigError> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| {
            ConfigError(format!(
                "PORTCULLIS_TRUSTED_PROXIES: '{s}' is not an address or CIDR"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn base() -> Vec<(&'static str, String)> {
        vec![
            ("PORTCULLIS_ISSUER", "https://id.example.com".into()),
            ("PORTCULLIS_ENCRYPTION_KEY", KeyBytes::generate_hex()),
            ("PORTCULLIS_TOKEN_HASH_KEY", KeyBytes::generate_hex()),
            ("PORTCULLIS_TLS_CERT", "/c.pem".into()),
            ("PORTCULLIS_TLS_KEY", "/k.pem".into()),
        ]
    }

    fn with(extra: &[(&str, &str)], drop: &[&str]) -> BTreeMap<String, String> {
        let mut m: BTreeMap<String, String> = base()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        for d in drop {
            m.remove(*d);
        }
        for (k, v) in extra {
            m.insert(k.to_string(), v.to_string());
        }
        m
    }

    #[test]
    fn loads_a_valid_production_config() {
        let c = load(&with(&[], &[]), false).unwrap();
        assert_eq!(c.issuer, "https://id.example.com");
        assert_eq!(c.issuer_hosts, vec!["id.example.com", "id.example.com:443"]);
        assert_eq!(c.lifetimes.access_token, 300);
        assert_eq!(c.lifetimes.id_token, 300);
    }

    #[test]
    fn the_access_token_algorithm_is_one_of_three_or_the_deployments_own() {
        use portcullis_core::model::SigningAlg;
        // Unset: decided with the store (EdDSA, or what an older deployment recorded).
        assert_eq!(load(&with(&[], &[]), false).unwrap().access_token_alg, None);
        for (v, alg) in [
            ("EdDSA", SigningAlg::EdDSA),
            ("ES256", SigningAlg::ES256),
            ("RS256", SigningAlg::RS256),
        ] {
            let c = load(&with(&[("PORTCULLIS_ACCESS_TOKEN_ALG", v)], &[]), false).unwrap();
            assert_eq!(c.access_token_alg, Some(alg));
        }
        for bad in ["Ed25519", "eddsa", "HS256", "none", " "] {
            let e = load(&with(&[("PORTCULLIS_ACCESS_TOKEN_ALG", bad)], &[]), false)
                .unwrap_err()
                .0;
            assert_eq!(
                e, "PORTCULLIS_ACCESS_TOKEN_ALG must be EdDSA (Ed25519 keys), ES256 or RS256",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn id_token_lifetime_is_bounded() {
        let c = load(&with(&[("PORTCULLIS_ID_TOKEN_TTL", "60")], &[]), false).unwrap();
        assert_eq!(c.lifetimes.id_token, 60);
        for bad in ["59", "3601", "x"] {
            let e = load(&with(&[("PORTCULLIS_ID_TOKEN_TTL", bad)], &[]), false)
                .unwrap_err()
                .0;
            assert!(
                e.contains("ID token") || e.contains("PORTCULLIS_ID_TOKEN_TTL"),
                "{e}"
            );
        }
    }

    #[test]
    fn secrets_errors_name_the_variable_never_the_value() {
        let short = "abcd1234";
        let e = load(&with(&[("PORTCULLIS_ENCRYPTION_KEY", short)], &[]), false)
            .unwrap_err()
            .0;
        assert!(
            e.contains("PORTCULLIS_ENCRYPTION_KEY") && !e.contains(short),
            "{e}"
        );
        let sample = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let e = load(&with(&[("PORTCULLIS_TOKEN_HASH_KEY", sample)], &[]), false)
            .unwrap_err()
            .0;
        assert!(
            e.contains("PORTCULLIS_TOKEN_HASH_KEY") && e.contains("sample") && !e.contains(sample),
            "{e}"
        );
        let e = load(&with(&[], &["PORTCULLIS_ENCRYPTION_KEY"]), false)
            .unwrap_err()
            .0;
        assert!(e.contains("PORTCULLIS_ENCRYPTION_KEY is not set"), "{e}");
        let k = KeyBytes::generate_hex();
        let e = load(
            &with(
                &[
                    ("PORTCULLIS_ENCRYPTION_KEY", &k),
                    ("PORTCULLIS_TOKEN_HASH_KEY", &k),
                ],
                &[],
            ),
            false,
        )
        .unwrap_err()
        .0;
        assert!(e.contains("must differ") && !e.contains(&k), "{e}");
    }

    #[test]
    fn misspellings_fail_and_foreign_variables_warn() {
        let e = load(&with(&[("PORTCULLIS_ISSUR", "x")], &[]), false)
            .unwrap_err()
            .0;
        assert!(e.contains("did you mean PORTCULLIS_ISSUER"), "{e}");
        let e = load(&with(&[("PORTCULLIS_TLS_CRT", "x")], &[]), false)
            .unwrap_err()
            .0;
        assert!(e.contains("PORTCULLIS_TLS_CERT"), "{e}");
        let c = load(
            &with(
                &[
                    ("PORTCULLIS_PORT", "tcp://10.0.0.1:443"),
                    ("PORTCULLIS_CLIENT_ID", "x"),
                    ("PORTCULLIS_ENVIRONMENT_URL", "x"),
                    ("PORTCULLIS_CLIENT_SECRET", "x"),
                    ("PORTCULLIS_SERVICE_HOST", "x"),
                ],
                &[],
            ),
            false,
        )
        .unwrap();
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].contains("PORTCULLIS_PORT"));
    }

    #[test]
    fn issuer_must_be_https_and_plain_http_needs_both_settings() {
        assert!(load(
            &with(&[("PORTCULLIS_ISSUER", "http://id.example.com")], &[]),
            false
        )
        .is_err());
        assert!(load(
            &with(&[("PORTCULLIS_ISSUER", "https://id.example.com/x?y")], &[]),
            false
        )
        .is_err());
        let e = load(
            &with(
                &[("PORTCULLIS_DANGEROUS_PLAIN_HTTP_BEHIND_PROXY", "1")],
                &[],
            ),
            false,
        )
        .unwrap_err()
        .0;
        assert!(e.contains("PORTCULLIS_TRUSTED_PROXIES"));
        let c = load(
            &with(
                &[
                    ("PORTCULLIS_DANGEROUS_PLAIN_HTTP_BEHIND_PROXY", "1"),
                    ("PORTCULLIS_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1"),
                ],
                &["PORTCULLIS_TLS_CERT", "PORTCULLIS_TLS_KEY"],
            ),
            false,
        )
        .unwrap();
        assert!(c.tls.is_none());
        assert!(c.warnings.iter().any(|w| w.contains("DANGEROUS")));
        assert!(load(&with(&[], &["PORTCULLIS_TLS_KEY"]), false).is_err());
    }

    #[test]
    fn toml_unknown_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let p = dir.join("p.toml");
        std::fs::write(
            &p,
            "issuer = \"https://id.example.com\"\nlisen = \"0.0.0.0:1\"\n",
        )
        .unwrap();
        let e = load(
            &with(&[("PORTCULLIS_CONFIG", p.to_str().unwrap())], &[]),
            false,
        )
        .unwrap_err()
        .0;
        assert!(e.contains("lisen"), "{e}");
        std::fs::write(&p, "encryption_key = \"x\"\n").unwrap();
        assert!(load(
            &with(&[("PORTCULLIS_CONFIG", p.to_str().unwrap())], &[]),
            false
        )
        .is_err());
        std::fs::write(&p, "listen = \"127.0.0.1:9999\"\n").unwrap();
        let c = load(
            &with(&[("PORTCULLIS_CONFIG", p.to_str().unwrap())], &[]),
            false,
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9999);
        let _ = env(&[]);
    }
}
