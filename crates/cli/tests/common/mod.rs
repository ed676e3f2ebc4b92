//! Test harness: spawns the real `portcullis` binary on a free port with TLS (a test CA and a
//! `localhost` certificate), a temporary data directory and a fresh SQLite database.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

pub mod receiver;

pub const PASSWORD: &str = "velvet orbit lantern harbor";
pub const API: &str = "https://api.example.com";

pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub issuer: String,
    pub ca_pem: String,
    pub env: HashMap<String, String>,
    child: Option<Child>,
    pub log_path: PathBuf,
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn hex32() -> String {
    let mut s = String::new();
    for _ in 0..4 {
        s.push_str(&format!("{:016x}", rand_u64()));
    }
    s
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    let f = std::fs::File::open("/dev/urandom").unwrap();
    use std::io::Read;
    (&f).read_exact(&mut b).unwrap();
    u64::from_le_bytes(b)
}

impl TestServer {
    /// Starts a server with extra environment variables.
    pub fn start_with(extra: &[(&str, &str)]) -> Self {
        let mut s = Self::prepare_with(extra);
        s.spawn();
        s
    }

    /// Everything [`TestServer::start_with`] sets up (directory, certificates, settings),
    /// without starting the server: `restart` starts it.
    pub fn prepare_with(extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        // A test CA and a leaf certificate for localhost / 127.0.0.1.
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Portcullis test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf_params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
        let cert_path = dir.path().join("cert.pem");
        let key_path = dir.path().join("key.pem");
        std::fs::write(&cert_path, leaf.pem()).unwrap();
        std::fs::write(&key_path, leaf_key.serialize_pem()).unwrap();
        // The test CA as a file too, for settings that name one (e.g. a relative
        // `PORTCULLIS_OUTBOUND_CA_FILE=ca.pem`: the server runs in this directory).
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        let issuer = format!("https://localhost:{port}");
        let mut env: HashMap<String, String> = HashMap::new();
        env.insert("PORTCULLIS_ISSUER".into(), issuer.clone());
        env.insert("PORTCULLIS_LISTEN".into(), format!("127.0.0.1:{port}"));
        env.insert(
            "PORTCULLIS_DATA_DIR".into(),
            dir.path().display().to_string(),
        );
        env.insert(
            "PORTCULLIS_TLS_CERT".into(),
            cert_path.display().to_string(),
        );
        env.insert("PORTCULLIS_TLS_KEY".into(), key_path.display().to_string());
        env.insert("PORTCULLIS_ENCRYPTION_KEY".into(), hex32());
        env.insert("PORTCULLIS_TOKEN_HASH_KEY".into(), hex32());
        env.insert("PORTCULLIS_LOG_LEVEL".into(), "debug".into());
        // Tests run many servers at once: the admin API only where a test asks for it (on a
        // port of its own).
        env.insert("PORTCULLIS_ADMIN_LISTEN".into(), "off".into());
        for (k, v) in extra {
            env.insert((*k).into(), (*v).into());
        }
        let log_path = dir.path().join("server.log");
        TestServer {
            dir,
            port,
            issuer,
            ca_pem: ca.pem(),
            env,
            child: None,
            log_path,
        }
    }

    pub fn start() -> Self {
        Self::start_with(&[])
    }

    fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_portcullis"));
        c.env_clear();
        c.env("PATH", std::env::var("PATH").unwrap_or_default());
        c.envs(&self.env);
        c.current_dir(self.dir.path());
        c
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap();
        let child = self
            .command()
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        // Wait until it answers over TLS.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                break;
            }
            if std::time::Instant::now() > deadline {
                panic!("server did not start: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The server's log so far. Lines are written by the server's log thread a moment after
    /// they happen, so this waits until the file has stopped growing for a short while.
    pub fn log(&self) -> String {
        let size = || std::fs::metadata(&self.log_path).map_or(0, |m| m.len());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let mut last = size();
        loop {
            std::thread::sleep(std::time::Duration::from_millis(40));
            let now = size();
            if now == last || std::time::Instant::now() > deadline {
                break;
            }
            last = now;
        }
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.issuer, path)
    }

    /// Runs a CLI command against the same database; returns stdout, panics on failure.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.cli_raw(args, stdin);
        assert!(
            out.status.success(),
            "portcullis {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn cli_raw(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        {
            let mut si = child.stdin.take().unwrap();
            if let Some(s) = stdin {
                si.write_all(s.as_bytes()).unwrap();
            }
        }
        child.wait_with_output().unwrap()
    }

    pub fn cli_json(&self, args: &[&str], stdin: Option<&str>) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str(&self.cli(&a, stdin)).unwrap()
    }

    /// An HTTP client that trusts the test CA and follows no redirects.
    pub fn http(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap()])
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    /// Registers the standard API, a confidential first-party web client, a public client, a
    /// machine client, and a user. Returns their ids and secrets.
    pub fn seed(&self) -> Seed {
        self.cli(
            &[
                "apis",
                "create",
                "--audience",
                API,
                "--scope",
                "read:things",
                "--scope",
                "write:things",
            ],
            None,
        );
        let web = self.cli_json(
            &[
                "clients",
                "create",
                "--name",
                "Web <App>",
                "--redirect-uri",
                "https://app.example.com/cb",
                "--redirect-uri",
                "http://127.0.0.1/cb",
                "--api",
                API,
                "--scope",
                "read:things",
                "--first-party",
            ],
            None,
        );
        let public = self.cli_json(
            &[
                "clients",
                "create",
                "--name",
                "SPA",
                "--public",
                "--redirect-uri",
                "https://app.example.com/cb",
                "--redirect-uri",
                "http://127.0.0.1/cb",
                "--api",
                API,
                "--scope",
                "read:things",
            ],
            None,
        );
        let machine = self.cli_json(
            &[
                "clients",
                "create",
                "--name",
                "Machine",
                "--grant",
                "client_credentials",
                "--api",
                API,
                "--scope",
                "read:things",
            ],
            None,
        );
        let user = self.cli_json(
            &[
                "users",
                "create",
                "--email",
                "alice@example.com",
                "--password-stdin",
            ],
            Some(PASSWORD),
        );
        Seed {
            web_id: web["client_id"].as_str().unwrap().to_owned(),
            web_secret: web["client_secret"].as_str().unwrap().to_owned(),
            public_id: public["client_id"].as_str().unwrap().to_owned(),
            machine_id: machine["client_id"].as_str().unwrap().to_owned(),
            machine_secret: machine["client_secret"].as_str().unwrap().to_owned(),
            user_id: user["user_id"].as_str().unwrap().to_owned(),
        }
    }

    /// The server process id (panics if it is not running).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server not running").id()
    }

    /// Whether the server process is still alive.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().map(|s| s.is_none()).unwrap_or(false),
            None => false,
        }
    }

    /// The SQLite database file in the data directory.
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("portcullis.sqlite3")
    }

    /// A `portcullis` command with this server's environment and working directory, to be
    /// given arguments, changed and run by the caller.
    pub fn base_command(&self) -> Command {
        self.command()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub struct Seed {
    pub web_id: String,
    pub web_secret: String,
    pub public_id: String,
    pub machine_id: String,
    pub machine_secret: String,
    pub user_id: String,
}

/// A PKCE pair (verifier, S256 challenge).
pub fn pkce() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(
        (0..4)
            .flat_map(|_| rand_u64().to_le_bytes())
            .collect::<Vec<u8>>(),
    );
    let digest = aws_sha256(verifier.as_bytes());
    (verifier, URL_SAFE_NO_PAD.encode(digest))
}

fn aws_sha256(data: &[u8]) -> Vec<u8> {
    // An independent SHA-256 (the `sha2` crate), so PKCE is checked against another library.
    use sha2::Digest;
    sha2::Sha256::digest(data).to_vec()
}

/// A browser-like cookie jar that keeps whole `Set-Cookie` lines for attribute checks.
#[derive(Default, Clone)]
pub struct Jar {
    pub cookies: HashMap<String, String>,
    pub set_cookie_lines: Vec<String>,
}

impl Jar {
    pub fn absorb(&mut self, res: &reqwest::Response) {
        for v in res.headers().get_all("set-cookie") {
            let line = v.to_str().unwrap().to_owned();
            let first = line.split(';').next().unwrap();
            let (name, value) = first.split_once('=').unwrap();
            if value.is_empty() || line.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
            self.set_cookie_lines.push(line);
        }
    }

    pub fn header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Extracts the hidden `csrf_token` value from a page.
pub fn csrf_of(html: &str) -> String {
    let i = html
        .find("name=\"csrf_token\" value=\"")
        .expect("no csrf token in page");
    let rest = &html[i + 25..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// Query parameters of a URL.
pub fn query_of(location: &str) -> HashMap<String, String> {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Drives the hosted pages like a browser: /authorize, the interstitial hop, the login form.
/// Returns the final response (303 to the client, or the login page on failure).
pub async fn browser_login(
    srv: &TestServer,
    http: &reqwest::Client,
    jar: &mut Jar,
    authorize_url: &str,
    email: &str,
    password: &str,
) -> reqwest::Response {
    let res = http
        .get(authorize_url)
        .header("cookie", jar.header())
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        200,
        "authorize: {:?}",
        res.headers().get("location")
    );
    jar.absorb(&res);
    let res = http
        .get(srv.url("/authorize/resume"))
        .header("cookie", jar.header())
        .send()
        .await
        .unwrap();
    jar.absorb(&res);
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    let csrf = csrf_of(&html);
    let res = post_login_form(srv, http, &jar.header(), &csrf, email, password, &[]).await;
    jar.absorb(&res);
    res
}

/// Posts the sign-in form as our own page does (the issuer's `Origin`), with `cookie` as the
/// Cookie header and `extra` request headers.
pub async fn post_login_form(
    srv: &TestServer,
    http: &reqwest::Client,
    cookie: &str,
    csrf: &str,
    email: &str,
    password: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = http
        .post(srv.url("/login"))
        .header("cookie", cookie)
        .header("origin", &srv.issuer)
        .form(&[
            ("csrf_token", csrf),
            ("email", email),
            ("password", password),
        ]);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// A standard authorization URL for `client_id`.
pub fn authorize_url(
    srv: &TestServer,
    client_id: &str,
    redirect_uri: &str,
    challenge: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut u = url::Url::parse(&srv.url("/authorize")).unwrap();
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", "openid email")
            .append_pair("state", "s1")
            .append_pair("nonce", "n1")
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        for (k, v) in extra {
            q.append_pair(k, v);
        }
    }
    u.to_string()
}

/// Signs in and returns the authorization code.
pub async fn get_code(
    srv: &TestServer,
    http: &reqwest::Client,
    client_id: &str,
    redirect_uri: &str,
    challenge: &str,
) -> String {
    let mut jar = Jar::default();
    let res = browser_login(
        srv,
        http,
        &mut jar,
        &authorize_url(srv, client_id, redirect_uri, challenge, &[]),
        "alice@example.com",
        PASSWORD,
    )
    .await;
    assert_eq!(res.status(), 303);
    let loc = res.headers()["location"].to_str().unwrap().to_owned();
    query_of(&loc)["code"].clone()
}

/// The directives of a CSP header, names lower-cased.
pub fn csp_directives(csp: &str) -> Vec<(String, Vec<String>)> {
    csp.split(';')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            let mut parts = d.split_whitespace();
            let name = parts.next().unwrap().to_ascii_lowercase();
            (name, parts.map(str::to_owned).collect())
        })
        .collect()
}

/// Checks the headers every hosted HTML page must carry; `app_origin` must be allowed as a
/// form target when given. Returns the body.
pub async fn check_html_page(
    what: &str,
    res: reqwest::Response,
    app_origin: Option<&str>,
) -> String {
    let h = res.headers().clone();
    let body = res.text().await.unwrap();
    let get = |name: &str| {
        h.get(name)
            .unwrap_or_else(|| panic!("{what}: no {name} header"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert!(
        get("content-type").starts_with("text/html"),
        "{what}: not HTML"
    );
    let csp = get("content-security-policy");
    assert_eq!(
        h.get_all("content-security-policy").iter().count(),
        1,
        "{what}: one CSP"
    );
    let dirs = csp_directives(&csp);
    let dir = |name: &str| -> Vec<String> {
        dirs.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{what}: CSP lacks {name}: {csp}"))
    };
    assert_eq!(dir("default-src"), ["'self'"], "{what}: {csp}");
    // Scripts only with this response's nonce (the pages use none); a nonce is never reused.
    let script = dir("script-src");
    assert!(
        script.len() == 1 && script[0].starts_with("'nonce-") && script[0].len() >= 30,
        "{what}: script-src must be one nonce: {csp}"
    );
    assert_eq!(
        dir("style-src"),
        ["'self'".to_owned(), script[0].clone()],
        "{what}: {csp}"
    );
    {
        static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
        let mut seen = SEEN.lock().unwrap();
        assert!(!seen.contains(&script[0]), "{what}: a CSP nonce was reused");
        seen.push(script[0].clone());
    }
    assert_eq!(dir("object-src"), ["'none'"], "{what}: {csp}");
    assert_eq!(dir("base-uri"), ["'none'"], "{what}: {csp}");
    assert_eq!(dir("frame-ancestors"), ["'none'"], "{what}: {csp}");
    let form_action = dir("form-action");
    assert!(form_action.iter().any(|s| s == "'self'"), "{what}: {csp}");
    if let Some(origin) = app_origin {
        assert!(
            form_action.iter().any(|s| s == origin),
            "{what}: form-action lacks {origin}: {csp}"
        );
    }
    for s in form_action.iter().filter(|s| *s != "'self'") {
        assert_eq!(
            Some(s.as_str()),
            app_origin,
            "{what}: form-action allows more than 'self' and the app: {csp}"
        );
    }
    // Nothing may relax the policy.
    for bad in [
        "unsafe-inline",
        "unsafe-eval",
        "unsafe-hashes",
        "data:",
        "*",
    ] {
        assert!(
            !csp.split_whitespace().any(|t| t.contains(bad)),
            "{what}: CSP contains {bad}: {csp}"
        );
    }
    for d in [
        "style-src",
        "script-src-elem",
        "script-src-attr",
        "style-src-attr",
    ] {
        if let Some((_, v)) = dirs.iter().find(|(n, _)| n == d) {
            assert!(!v.iter().any(|s| s.contains("unsafe")), "{what}: {csp}");
        }
    }
    assert_eq!(get("referrer-policy"), "same-origin", "{what}");
    assert_eq!(get("cache-control"), "no-store", "{what}");
    assert_eq!(get("x-frame-options"), "DENY", "{what}");
    assert_eq!(get("cross-origin-opener-policy"), "same-origin", "{what}");
    assert_eq!(get("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(
        get("strict-transport-security"),
        "max-age=31536000; includeSubDomains",
        "{what}"
    );
    // No inline script or style in the markup either.
    let lower = body.to_ascii_lowercase();
    for bad in [
        "<script",
        "<style",
        " style=",
        "javascript:",
        " onload=",
        " onclick=",
        " onsubmit=",
        " onerror=",
        " onfocus=",
    ] {
        assert!(!lower.contains(bad), "{what}: page contains {bad}: {body}");
    }
    body
}

/// GET /authorize, then the same-site hop to /authorize/resume; returns the second answer.
pub async fn authorize_and_resume(
    srv: &TestServer,
    http: &reqwest::Client,
    jar: &mut Jar,
    url: &str,
) -> reqwest::Response {
    let res = http
        .get(url)
        .header("cookie", jar.header())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "authorize {url}");
    jar.absorb(&res);
    let res = http
        .get(srv.url("/authorize/resume"))
        .header("cookie", jar.header())
        .send()
        .await
        .unwrap();
    jar.absorb(&res);
    res
}

/// Signs alice in with the first-party web client; returns the jar (with the session cookie).
pub async fn signed_in_jar(srv: &TestServer, http: &reqwest::Client, seed: &Seed) -> Jar {
    let (_v, c) = pkce();
    let mut jar = Jar::default();
    let res = browser_login(
        srv,
        http,
        &mut jar,
        &authorize_url(srv, &seed.web_id, "https://app.example.com/cb", &c, &[]),
        "alice@example.com",
        PASSWORD,
    )
    .await;
    assert_eq!(res.status(), 303);
    assert!(jar.cookies.contains_key("__Host-portcullis-session"));
    jar
}

/// The redirect URI of the seeded clients used by most tests.
pub const CB: &str = "https://app.example.com/cb";

/// POSTs a token request with `Basic` credentials; returns status, JSON body and headers.
pub async fn token_request(
    srv: &TestServer,
    http: &reqwest::Client,
    basic: (&str, &str),
    form: &[(&str, &str)],
) -> (u16, serde_json::Value, reqwest::header::HeaderMap) {
    post_form(srv, http, "/token", Some(basic), form).await
}

/// POSTs a form to `path`, with `Basic` credentials when given; returns status, JSON body
/// (`null` when empty or not JSON) and headers.
pub async fn post_form(
    srv: &TestServer,
    http: &reqwest::Client,
    path: &str,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (u16, serde_json::Value, reqwest::header::HeaderMap) {
    let mut req = http.post(srv.url(path));
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let res = req.form(form).send().await.unwrap();
    let status = res.status().as_u16();
    let h = res.headers().clone();
    (
        status,
        res.json().await.unwrap_or(serde_json::Value::Null),
        h,
    )
}

/// Signs alice in through `client` (redirect `CB`) and exchanges the code; returns the token
/// response (asserting a 200).
pub async fn signed_in_tokens(
    srv: &TestServer,
    http: &reqwest::Client,
    client: &str,
    auth: (&str, &str),
) -> serde_json::Value {
    let (v, c) = pkce();
    let code = get_code(srv, http, client, CB, &c).await;
    let (s, t, _) = token_request(
        srv,
        http,
        auth,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
            ("code_verifier", &v),
        ],
    )
    .await;
    assert_eq!(s, 200, "{t}");
    t
}

/// Parses a `Set-Cookie` line into its name, value and lower-cased attributes.
pub fn parse_set_cookie(line: &str) -> (String, String, Vec<String>) {
    let mut parts = line.split(';').map(str::trim);
    let (name, value) = parts.next().unwrap().split_once('=').unwrap();
    (
        name.to_owned(),
        value.to_owned(),
        parts.map(|p| p.to_ascii_lowercase()).collect(),
    )
}

/// The attributes of a `Set-Cookie` line apart from its lifetime (`Max-Age`, `Expires`): what
/// a deletion must repeat exactly.
pub fn cookie_shape(line: &str) -> (String, Vec<String>) {
    let (name, _, attrs) = parse_set_cookie(line);
    let mut shape: Vec<String> = attrs
        .into_iter()
        .filter(|a| !a.starts_with("max-age") && !a.starts_with("expires"))
        .collect();
    shape.sort();
    (name, shape)
}

/// Registers a confidential first-party client with `CB`-style redirect `redirect_uri` and
/// extra `clients create` arguments; returns its id and secret.
pub fn create_client(
    srv: &TestServer,
    name: &str,
    redirect_uri: &str,
    extra: &[&str],
) -> (String, String) {
    let mut args = vec![
        "clients",
        "create",
        "--name",
        name,
        "--redirect-uri",
        redirect_uri,
        "--api",
        API,
        "--scope",
        "read:things",
        "--first-party",
    ];
    args.extend_from_slice(extra);
    let c = srv.cli_json(&args, None);
    (
        c["client_id"].as_str().unwrap().to_owned(),
        c["client_secret"].as_str().unwrap().to_owned(),
    )
}

/// Signs `email` in through the confidential `client` in the browser `jar` and redeems the
/// code; returns the token response (asserting a 200). The jar keeps the session cookie.
pub async fn sign_in_for_tokens(
    srv: &TestServer,
    http: &reqwest::Client,
    jar: &mut Jar,
    client: (&str, &str),
    redirect_uri: &str,
    email: &str,
) -> serde_json::Value {
    let (v, c) = pkce();
    let res = browser_login(
        srv,
        http,
        jar,
        &authorize_url(srv, client.0, redirect_uri, &c, &[]),
        email,
        PASSWORD,
    )
    .await;
    assert_eq!(res.status(), 303, "sign-in");
    let code = query_of(res.headers()["location"].to_str().unwrap())["code"].clone();
    let res = http
        .post(srv.url("/token"))
        .basic_auth(client.0, Some(client.1))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect_uri),
            ("code_verifier", v.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// `GET /logout?<query>` as a browser: with the jar's cookies and `extra` headers, following
/// our same-site step (the "Signing out…" page) to `/logout/resume` when it is the answer.
pub async fn browser_logout(
    srv: &TestServer,
    http: &reqwest::Client,
    jar: &mut Jar,
    query: &[(&str, &str)],
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut u = url::Url::parse(&srv.url("/logout")).unwrap();
    if !query.is_empty() {
        u.query_pairs_mut().extend_pairs(query);
    }
    let mut req = http.get(u.as_str()).header("cookie", jar.header());
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    jar.absorb(&res);
    if res.status() != 200 {
        return res;
    }
    let headers = res.headers().clone();
    let html = res.text().await.unwrap();
    let Some(next) = refresh_target(&html) else {
        return rebuild(headers, html);
    };
    assert!(next.starts_with("/logout/resume"), "{next}");
    let res = http
        .get(srv.url(&next))
        .header("cookie", jar.header())
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    jar.absorb(&res);
    res
}

/// Where a page's meta refresh sends the browser, unescaped.
pub fn refresh_target(html: &str) -> Option<String> {
    const REFRESH: &str = "http-equiv=\"refresh\" content=\"0;url=";
    let rest = &html[html.find(REFRESH)? + REFRESH.len()..];
    Some(html_unescape(&rest[..rest.find('"')?]))
}

/// A response rebuilt from parts already read (to hand back a page after peeking at it).
fn rebuild(headers: reqwest::header::HeaderMap, body: String) -> reqwest::Response {
    let mut b = http::Response::builder().status(200);
    for (k, v) in headers.iter() {
        b = b.header(k, v);
    }
    reqwest::Response::from(b.body(body).unwrap())
}

/// Is the session behind `access_token` still active? (`/userinfo` checks it on every call.)
pub async fn session_alive(srv: &TestServer, http: &reqwest::Client, access_token: &str) -> bool {
    let res = http
        .get(srv.url("/userinfo"))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap();
    match res.status().as_u16() {
        200 => true,
        401 => false,
        s => panic!("userinfo answered {s}"),
    }
}

/// A refresh-token grant for the confidential `client`: (status, body).
pub async fn refresh(
    srv: &TestServer,
    http: &reqwest::Client,
    client: (&str, &str),
    refresh_token: &str,
) -> (u16, serde_json::Value) {
    let res = http
        .post(srv.url("/token"))
        .basic_auth(client.0, Some(client.1))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or_default())
}

/// Undoes the template engine's HTML escaping (`& < > " ' /`).
pub fn html_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/")
        .replace("&amp;", "&")
}

/// The value of the hidden form field `name` in a page, unescaped.
pub fn hidden_field(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let i = html.find(&marker)?;
    let rest = &html[i + marker.len()..];
    Some(html_unescape(&rest[..rest.find('"')?]))
}

/// GETs `url` and parses the JSON answer (panics otherwise: a test helper).
pub async fn get_json(http: &reqwest::Client, url: &str) -> serde_json::Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

/// A TLS acceptor with the test server's own leaf certificate and key (for `localhost` and
/// `127.0.0.1`, from the test CA), HTTP/1.1 only (no ALPN): for receivers and apps the tests
/// run beside the server.
pub fn tls_acceptor(srv: &TestServer) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(srv.dir.path().join("cert.pem"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_file(srv.dir.path().join("key.pem")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config))
}

/// Waits (at most a second) until the wall clock enters its next whole second: for rules
/// that compare times in whole seconds (`auth_time`, a password change).
pub async fn next_second() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let left = std::time::Duration::from_nanos(1_000_000_000 - u64::from(now.subsec_nanos()));
    tokio::time::sleep(left.min(std::time::Duration::from_secs(1))).await;
}

/// The decoded JSON of part `i` of a JWT (0 the header, 1 the claims).
pub fn jwt_part(jwt: &str, i: usize) -> serde_json::Value {
    use base64::Engine;
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(i).unwrap())
            .unwrap(),
    )
    .unwrap()
}

/// Makes the server reload its keys (SIGHUP).
pub fn hup(srv: &TestServer) {
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &srv.pid().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// What a real-browser test needs: the script `tests/browser/<script>`, playwright-core,
/// node and Chromium; fails with the command that installs what is missing. Returns the
/// script's path and Chromium's.
pub fn browser_prerequisites(root: &std::path::Path, script: &str) -> (PathBuf, String) {
    let script = root.join("tests/browser").join(script);
    assert!(script.is_file(), "missing {}", script.display());
    let modules = root.join("tests/browser/node_modules/playwright-core");
    assert!(
        modules.is_dir(),
        "{} is missing: run `npm ci --prefix tests/browser` in {} (the browser tests do not install anything themselves)",
        modules.display(),
        root.display()
    );
    let node_ok = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        node_ok,
        "`node` is not on PATH: install Node.js 20 or newer"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        std::path::Path::new(&chromium).is_file(),
        "{chromium} is missing: run `apt-get install -y chromium` (or set CHROMIUM)"
    );
    (script, chromium)
}

/// `$CARGO_TARGET_DIR/browser-artifacts/<sub>` (or under the workspace's `target`), made,
/// absolute (the scripts run from `tests/browser` and write there).
pub fn artifacts_dir(root: &std::path::Path, sub: &str) -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("browser-artifacts")
        .join(sub);
    std::fs::create_dir_all(&dir).unwrap();
    dir.canonicalize().unwrap()
}

/// The system clock moved by `offset` seconds, for the SDK's time-dependent checks.
#[derive(Default)]
pub struct ShiftedClock {
    pub offset: std::sync::atomic::AtomicI64,
}

impl portcullis_client::Clock for ShiftedClock {
    fn now(&self) -> i64 {
        portcullis_client::SystemClock.now()
            + self.offset.load(std::sync::atomic::Ordering::Relaxed)
    }
}
