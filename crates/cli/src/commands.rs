//! Management commands. Each validates its input with the same core types the server uses.

use std::io::Read;

use anyhow::{bail, Context};
use clap::Subcommand;
use portcullis_core::audit::{Event, EventKind};
use portcullis_core::backchannel::BackchannelUri;
use portcullis_core::crypto::HashKey;
use portcullis_core::email::Email;
use portcullis_core::ids::{ClientId, SessionId, UserId};
use portcullis_core::model::{Api, Client, ClientKind, GrantType, SigningAlg, User};
use portcullis_core::password::{self, PasswordHasher, PasswordPolicy};
use portcullis_core::redirect_uri::RedirectUri;
use portcullis_core::scope;
use portcullis_core::secret::{self, reveal, SecretKind};
use portcullis_core::store::{
    AdminTokenStore, ApiStore, AuditStore, ClientStore, SessionStore, StoreError, UserStore,
};
use portcullis_server::config::Config;
use portcullis_server::state::now;
use serde_json::json;

#[derive(Subcommand)]
pub enum ApisCommand {
    /// Register an API.
    Create {
        /// The API's identifier, used as the `aud` of its tokens (an absolute URI).
        #[arg(long)]
        audience: String,
        /// A scope the API defines (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// A display name.
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List APIs.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Issue a new introspection secret for an API (shown once; the previous one stays valid
    /// until the next rotation). The API authenticates at `/introspect` with its audience as
    /// `client_id` and this secret.
    RotateSecret {
        audience: String,
        #[arg(long)]
        json: bool,
    },
}

// Parsed once per process: the size of the `Create` variant costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum ClientsCommand {
    /// Register a client application; prints its client_id and (confidential clients) its
    /// client_secret, exactly once.
    Create {
        #[arg(long)]
        name: String,
        /// A redirect URI (repeatable), matched exactly.
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// A post-logout redirect URI (repeatable).
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// A public client (browser or native app): no secret, PKCE only.
        #[arg(long)]
        public: bool,
        /// An allowed grant (repeatable): authorization_code, refresh_token, client_credentials.
        /// Default: authorization_code and refresh_token.
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// An API this client may get tokens for (repeatable; the first is the default).
        #[arg(long = "api")]
        apis: Vec<String>,
        /// An API scope this client may request (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// A first-party app: confidential first-party clients get silent single sign-on.
        #[arg(long)]
        first_party: bool,
        /// ID token signing algorithm: RS256 (the default, as OpenID Connect requires) or ES256.
        /// Never EdDSA: OpenID Connect names no `at_hash` hash for it.
        #[arg(long, default_value = "RS256")]
        id_token_alg: String,
        /// This client's access-token lifetime, seconds (only shorter than the server's).
        #[arg(long)]
        access_token_ttl: Option<i64>,
        /// A session older than this (seconds since sign-in) signs in again for this client,
        /// and its session-bound refresh tokens end then (only tighter than the server's).
        #[arg(long)]
        session_max_age: Option<i64>,
        /// A session idle longer than this (seconds) signs in again for this client.
        #[arg(long)]
        session_idle: Option<i64>,
        /// Where to POST a logout token (OpenID Connect Back-Channel Logout) when a session
        /// in which this client received tokens ends: `https` (with `--dev`, also `http` on
        /// localhost, 127.0.0.1 or [::1]), no fragment, no user name or password, not a
        /// link-local or cloud metadata address.
        #[arg(long = "backchannel-logout-uri")]
        backchannel_logout_uri: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Disable a client: its tokens can no longer be refreshed and it cannot authenticate.
    Disable { client_id: String },
    /// Enable a disabled client.
    Enable { client_id: String },
    /// Issue a new secret; the previous one stays valid until the next rotation (two at most).
    RotateSecret {
        client_id: String,
        #[arg(long)]
        json: bool,
    },
    /// List clients.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Create a user; the password is read from standard input.
    Create {
        #[arg(long)]
        email: String,
        /// Read the password from standard input (the only way to pass it).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Mark the address as verified (only if you have proven it).
        #[arg(long)]
        email_verified: bool,
        #[arg(long)]
        json: bool,
    },
    /// Disable a user: ends all their sessions and tokens at once.
    Disable { email: String },
    /// Enable a disabled user.
    Enable { email: String },
    /// Delete a user with all their sessions and tokens.
    Delete { email: String },
    /// Revoke every device cookie of a user: their browsers lose the right to keep signing in
    /// while the account is throttled (sessions are not touched).
    RevokeDevices { email: String },
    /// Set a new password (read from standard input); ends the user's sessions and tokens.
    SetPassword {
        email: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List users.
    List {
        #[arg(long)]
        json: bool,
    },
}

fn conflict(e: StoreError, what: &str) -> anyhow::Error {
    match e {
        StoreError::Conflict(_) => anyhow::anyhow!("{what} already exists"),
        other => anyhow::Error::new(other),
    }
}

fn valid_name(name: &str) -> anyhow::Result<String> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 100 || n.chars().any(char::is_control) {
        bail!("--name must be 1 to 100 characters without control characters");
    }
    Ok(n.to_owned())
}

fn valid_audience(a: &str) -> anyhow::Result<()> {
    let url = url::Url::parse(a).map_err(|_| {
        anyhow::anyhow!("--audience must be an absolute URI, e.g. https://api.example.com")
    })?;
    if url.fragment().is_some() || a.len() > 2000 || a.bytes().any(|b| !(0x21..=0x7e).contains(&b))
    {
        bail!("--audience must be an absolute URI without a fragment or spaces");
    }
    Ok(())
}

pub async fn apis(config: &Config, cmd: ApisCommand) -> anyhow::Result<()> {
    let store = portcullis_server::open_store(config).await?;
    match cmd {
        ApisCommand::Create {
            audience,
            scopes,
            name,
            json,
        } => {
            valid_audience(&audience)?;
            for s in &scopes {
                if !scope::is_valid_token(s)
                    || scope::IDENTITY_SCOPES.contains(&s.as_str())
                    || s == scope::OFFLINE_ACCESS
                {
                    bail!("--scope {s:?} is not a valid API scope");
                }
            }
            let api = Api {
                audience: audience.clone(),
                name: valid_name(name.as_deref().unwrap_or(&audience))?,
                scopes,
                created_at: now(),
            };
            store
                .create_api(&api)
                .await
                .map_err(|e| conflict(e, "an API with this audience"))?;
            admin_event(&store, EventKind::ApiCreated, |e| {
                e.detail(&format!("audience={}", api.audience))
            })
            .await?;
            if json {
                println!(
                    "{}",
                    json!({"audience": api.audience, "scopes": api.scopes})
                );
            } else {
                println!("API created: {}", api.audience);
            }
        }
        ApisCommand::List { json } => {
            let list = store.list_apis().await?;
            if json {
                println!("{}", serde_json::Value::Array(list.iter().map(|a| json!({"audience": a.audience, "name": a.name, "scopes": a.scopes})).collect()));
            } else {
                for a in list {
                    println!("{}\t{}\t{}", a.audience, a.name, a.scopes.join(" "));
                }
            }
        }
        ApisCommand::RotateSecret { audience, json } => {
            let key = HashKey::new(&config.hash_key);
            let issued = secret::issue(SecretKind::ApiSecret, &key);
            if !store.add_api_secret(&audience, &issued.hash, now()).await? {
                bail!("no such API");
            }
            admin_event(&store, EventKind::ApiSecretRotated, |e| {
                e.detail(&format!("audience={audience}"))
            })
            .await?;
            if json {
                println!(
                    "{}",
                    json!({"audience": audience, "api_secret": reveal(&issued.value)})
                );
            } else {
                println!("api_secret: {}", reveal(&issued.value));
                println!("(the API's previous secret, if it had one, stays valid until the next rotation)");
            }
        }
    }
    Ok(())
}

/// What key commands make keys with: the key settings the server last started listening
/// with (recorded in the store: access-token algorithm, publish lead, rotation period), not
/// this command's own, which may differ (a server's environment is often not the shell's;
/// said on stderr when they do), and this command's encrypter, only if its current key is
/// the server's: a key sealed under any other (a newer one the server was not restarted
/// with, or a wrong one) could not be opened by the server.
async fn key_maker<S: portcullis_core::store::SigningKeyStore + ?Sized>(
    store: &S,
    config: &Config,
) -> anyhow::Result<(
    portcullis_server::keyring::KeyPolicy,
    portcullis_core::crypto::Encrypter,
)> {
    use portcullis_core::store::RecordedAlg;
    use portcullis_server::keyring::{self, KeyPolicy};
    let Some(serving) = store.serving_keys().await? else {
        bail!("no server has recorded its key settings yet: start the server (this version) once");
    };
    let enc = keyring::encrypter(config)?;
    if enc.current_key_id() != serving.encryption_key_id {
        bail!(
            "this command's PORTCULLIS_ENCRYPTION_KEY (key id {}) is not the one the server last started with (key id {}): run it with the server's key, or restart the server with this one first",
            enc.current_key_id(),
            serving.encryption_key_id
        );
    }
    let own = KeyPolicy::from_config(config);
    let chosen = keyring::access_token_alg(
        config.access_token_alg,
        store.recorded_alg(RecordedAlg::AccessTokenDefault).await?,
    );
    if serving.access_token_alg != chosen || serving.rotation != own.rotation {
        eprintln!(
            "note: the server was last started with {} access tokens, keys published {} s before they sign and rotated every {} s; this command keeps to that (its own settings differ: restart the server to apply them)",
            serving.access_token_alg.as_str(),
            serving.rotation.lead,
            serving.rotation.period
        );
    }
    Ok((
        KeyPolicy {
            access_token_alg: Some(serving.access_token_alg),
            rotation: serving.rotation,
            ..own
        },
        enc,
    ))
}

/// Records an administrative action in the audit trail (`reason=cli`). The action has
/// already happened: a failure to record it is reported on stderr and fails the command, so
/// no admin change goes unrecorded silently.
async fn admin_event<S: AuditStore + ?Sized>(
    store: &S,
    kind: EventKind,
    build: impl FnOnce(Event) -> Event,
) -> anyhow::Result<()> {
    let e = build(Event::new(kind, now()).reason("cli"));
    // Logged like the server's events, so a log pipeline sees administrative changes too.
    portcullis_server::audit::log_line(&e);
    store.append_events(&[e]).await.map_err(|err| {
        anyhow::anyhow!("the change was made, but its audit event could not be stored: {err}")
    })
}

/// One `session.revoked` event for each session an action on the user ended (`live`: the
/// sessions active just before it, which the action revokes in its own transaction), naming
/// the action, so every ended session can be traced by its id. A session begun between the
/// reading and the action ends too, under the action's own event only.
async fn sessions_ended<S: AuditStore + ?Sized>(
    store: &S,
    user: &UserId,
    live: &[portcullis_core::model::Session],
    because: EventKind,
) -> anyhow::Result<()> {
    for s in live {
        admin_event(store, EventKind::SessionRevoked, |e| {
            e.user(user)
                .session(&s.id)
                .detail(&format!("because={}", because.as_str()))
        })
        .await?;
    }
    Ok(())
}

fn parse_client_id(s: &str) -> anyhow::Result<ClientId> {
    ClientId::parse(s).ok_or_else(|| anyhow::anyhow!("{s:?} is not a client id"))
}

pub async fn clients(config: &Config, cmd: ClientsCommand) -> anyhow::Result<()> {
    let store = portcullis_server::open_store(config).await?;
    let key = HashKey::new(&config.hash_key);
    match cmd {
        ClientsCommand::Create {
            name,
            redirect_uris,
            post_logout_redirect_uris,
            public,
            grants,
            apis,
            scopes,
            first_party,
            id_token_alg,
            access_token_ttl,
            session_max_age,
            session_idle,
            backchannel_logout_uri,
            json,
        } => {
            let name = valid_name(&name)?;
            let backchannel_logout_uri = backchannel_logout_uri
                .map(|u| {
                    BackchannelUri::parse(&u, config.dev)
                        .map(|b| b.as_str().to_owned())
                        .map_err(|e| anyhow::anyhow!("--backchannel-logout-uri {u:?}: {e}"))
                })
                .transpose()?;
            let mut grant_list = Vec::new();
            let grant_names = if grants.is_empty() {
                vec!["authorization_code".to_owned(), "refresh_token".to_owned()]
            } else {
                grants
            };
            for g in &grant_names {
                let parsed = GrantType::parse(g).ok_or_else(|| anyhow::anyhow!("--grant {g:?} is not one of authorization_code, refresh_token, client_credentials"))?;
                if !grant_list.contains(&parsed) {
                    grant_list.push(parsed);
                }
            }
            let kind = if public {
                ClientKind::Public
            } else {
                ClientKind::Confidential
            };
            if public && grant_list.contains(&GrantType::ClientCredentials) {
                bail!("a public client cannot use client_credentials");
            }
            for u in redirect_uris.iter().chain(post_logout_redirect_uris.iter()) {
                RedirectUri::parse(u).map_err(|e| anyhow::anyhow!("{u:?}: {e}"))?;
            }
            if grant_list.contains(&GrantType::AuthorizationCode) && redirect_uris.is_empty() {
                bail!("--redirect-uri is required for the authorization_code grant");
            }
            if !grant_list.contains(&GrantType::AuthorizationCode) && !redirect_uris.is_empty() {
                bail!("--redirect-uri is only for clients with the authorization_code grant");
            }
            if grant_list == [GrantType::RefreshToken] {
                bail!("refresh_token alone is useless: add authorization_code");
            }
            let mut defined_scopes = Vec::new();
            for a in &apis {
                let api = store.api_by_audience(a).await?.ok_or_else(|| anyhow::anyhow!("--api {a:?} is not a registered API (create it with `portcullis apis create`)"))?;
                defined_scopes.extend(api.scopes);
            }
            for s in &scopes {
                if !defined_scopes.contains(s) {
                    bail!("--scope {s:?} is not defined by any of the client's APIs");
                }
            }
            let alg = SigningAlg::parse(&id_token_alg)
                .filter(|a| a.signs_id_tokens())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "--id-token-alg must be RS256 or ES256 (EdDSA signs access tokens only)"
                    )
                })?;
            let policy = portcullis_core::model::ClientPolicy {
                access_token_ttl,
                session_max_age,
                session_idle,
            };
            policy
                .validate(&config.lifetimes)
                .map_err(|e| anyhow::anyhow!("client policy: {e}"))?;
            let issued = (kind == ClientKind::Confidential)
                .then(|| secret::issue(SecretKind::ClientSecret, &key));
            let client = Client {
                id: ClientId::generate(),
                name,
                kind,
                redirect_uris,
                post_logout_redirect_uris,
                grants: grant_list,
                apis,
                scopes,
                first_party,
                id_token_alg: alg,
                disabled: false,
                backchannel_logout_uri,
                secret_hashes: issued.iter().map(|s| s.hash.clone()).collect(),
                policy,
                created_at: now(),
            };
            store.create_client(&client).await?;
            admin_event(&store, EventKind::ClientCreated, |e| e.client(&client.id)).await?;
            let secret_text = issued.as_ref().map(|s| reveal(&s.value).to_owned());
            if json {
                let mut v = json!({"client_id": client.id.as_str()});
                if let Some(s) = &secret_text {
                    v["client_secret"] = json!(s);
                }
                println!("{v}");
            } else {
                println!("client_id:     {}", client.id);
                if let Some(s) = &secret_text {
                    println!("client_secret: {s}");
                    println!(
                        "(the secret is shown only this once; store it in your app's secret store)"
                    );
                }
            }
        }
        ClientsCommand::Disable { client_id } => {
            if !store
                .set_client_disabled(&parse_client_id(&client_id)?, true, now())
                .await?
            {
                bail!("no such client");
            }
            admin_event(&store, EventKind::ClientDisabled, |e| e.client(&client_id)).await?;
            println!("client disabled");
        }
        ClientsCommand::Enable { client_id } => {
            if !store
                .set_client_disabled(&parse_client_id(&client_id)?, false, now())
                .await?
            {
                bail!("no such client");
            }
            admin_event(&store, EventKind::ClientEnabled, |e| e.client(&client_id)).await?;
            println!("client enabled");
        }
        ClientsCommand::RotateSecret { client_id, json } => {
            let id = parse_client_id(&client_id)?;
            match store.client_by_id(&id).await? {
                Some(c) if c.kind == ClientKind::Confidential => {}
                Some(_) => bail!("public clients have no secret"),
                None => bail!("no such client"),
            }
            let issued = secret::issue(SecretKind::ClientSecret, &key);
            store.add_client_secret(&id, &issued.hash, now()).await?;
            admin_event(&store, EventKind::ClientSecretRotated, |e| e.client(&id)).await?;
            if json {
                println!(
                    "{}",
                    json!({"client_id": id.as_str(), "client_secret": reveal(&issued.value)})
                );
            } else {
                println!("client_secret: {}", reveal(&issued.value));
                println!("(the previous secret stays valid until the next rotation)");
            }
        }
        ClientsCommand::List { json } => {
            let list = store.list_clients().await?;
            if json {
                println!("{}", serde_json::Value::Array(list.iter().map(|c| json!({
                    "client_id": c.id.as_str(), "name": c.name, "public": c.kind == ClientKind::Public,
                    "redirect_uris": c.redirect_uris, "grants": c.grants.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
                    "apis": c.apis, "scopes": c.scopes, "first_party": c.first_party, "disabled": c.disabled,
                    "backchannel_logout_uri": c.backchannel_logout_uri,
                })).collect()));
            } else {
                for c in list {
                    println!(
                        "{}\t{}\t{}{}",
                        c.id,
                        c.name,
                        if c.kind == ClientKind::Public {
                            "public"
                        } else {
                            "confidential"
                        },
                        if c.disabled { "\tdisabled" } else { "" }
                    );
                }
            }
        }
    }
    Ok(())
}

fn read_password() -> anyhow::Result<String> {
    let mut buf = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut buf)
        .context("reading the password from standard input")?;
    let trimmed = buf
        .strip_suffix('\n')
        .map(|s| s.strip_suffix('\r').unwrap_or(s))
        .unwrap_or(&buf);
    Ok(trimmed.to_owned())
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// The signing keys: kid, algorithm, state (pending, signing, retired), dates.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Start a rotation now: a new key is published at once and signs from
    /// `PORTCULLIS_KEY_PUBLISH_LEAD` seconds later (1 hour by default); the current key signs
    /// until then, and stays published while the tokens it signed live.
    Rotate {
        /// EdDSA, ES256 or RS256; by default every algorithm this deployment has a signing key
        /// of.
        #[arg(long)]
        alg: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Emergency: remove a key at once. Nothing it signed verifies any more (running servers
    /// drop it within 5 seconds, or at SIGHUP); a new key replaces it if it was signing.
    Revoke { kid: String },
}

pub async fn keys(config: &Config, cmd: KeysCommand) -> anyhow::Result<()> {
    use portcullis_core::ids::KeyId;
    use portcullis_core::keys;
    use portcullis_core::store::SigningKeyStore;
    let store = portcullis_server::open_store(config).await?;
    let now = now();
    match cmd {
        KeysCommand::List { json } => {
            let list = store.list_signing_keys().await?;
            let state = |k: &portcullis_core::model::StoredSigningKey| {
                if k.activates_at > now {
                    "pending"
                } else if k.retired_at.is_some_and(|r| r <= now) {
                    "retired"
                } else {
                    "signing"
                }
            };
            if json {
                println!(
                    "{}",
                    serde_json::Value::Array(
                        list.iter()
                            .map(|k| json!({
                                "kid": k.kid.as_str(), "alg": k.alg.as_str(), "state": state(k),
                                "created_at": k.created_at, "activates_at": k.activates_at,
                                "retired_at": k.retired_at,
                            }))
                            .collect()
                    )
                );
            } else {
                for k in &list {
                    println!(
                        "{}\t{}\t{}\tactivates {}\tretires {}",
                        k.kid,
                        k.alg.as_str(),
                        state(k),
                        k.activates_at,
                        k.retired_at.map_or("-".to_owned(), |r| r.to_string())
                    );
                }
            }
        }
        KeysCommand::Rotate { alg, json } => {
            // The algorithms this deployment keeps keys for and that have a signing key: a
            // rotation never starts an algorithm (the server does, at its first start or when
            // PORTCULLIS_ACCESS_TOKEN_ALG names a new one, with its publish lead).
            let stored = store.list_signing_keys().await?;
            if stored.is_empty() {
                bail!("no signing keys yet: the server makes them at its first start");
            }
            let (policy, enc) = key_maker(&store, config).await?;
            let kept: Vec<SigningAlg> = portcullis_server::keyring::kept_algorithms(
                policy.access_token_alg.unwrap_or(SigningAlg::EdDSA),
                &stored,
                now,
            )
            .into_iter()
            .filter(|a| stored.iter().any(|k| k.alg == *a && k.signs_at(now)))
            .collect();
            let algs = match alg.as_deref() {
                None => kept,
                Some(a) => {
                    let alg = SigningAlg::parse(a)
                        .ok_or_else(|| anyhow::anyhow!("--alg must be EdDSA, ES256 or RS256"))?;
                    if !kept.contains(&alg) {
                        bail!("this deployment has no signing {a} key to rotate (access tokens start using EdDSA with PORTCULLIS_ACCESS_TOKEN_ALG=EdDSA; a key that is still waiting to sign is not rotated)");
                    }
                    vec![alg]
                }
            };
            let mut out = Vec::new();
            for alg in algs {
                let next = keys::generate(alg, &enc, now, now + policy.rotation.lead)?;
                let started = store.rotate_signing_key(&next, now).await?;
                if started {
                    admin_event(&store, EventKind::KeyRotated, |e| {
                        e.detail(&format!("kid={} alg={}", next.kid, alg.as_str()))
                    })
                    .await?;
                }
                out.push((alg, next, started));
            }
            if json {
                println!(
                    "{}",
                    serde_json::Value::Array(
                        out.iter()
                            .map(|(alg, k, started)| json!({
                                "alg": alg.as_str(), "rotated": started,
                                "kid": started.then(|| k.kid.as_str()),
                                "activates_at": started.then_some(k.activates_at),
                            }))
                            .collect()
                    )
                );
            } else {
                for (alg, k, started) in out {
                    if started {
                        println!(
                            "{}: new key {} published now, signs from {}",
                            alg.as_str(),
                            k.kid,
                            k.activates_at
                        );
                    } else {
                        println!("{}: a rotation is already pending", alg.as_str());
                    }
                }
            }
        }
        KeysCommand::Revoke { kid } => {
            let kid =
                KeyId::parse(&kid).ok_or_else(|| anyhow::anyhow!("{kid:?} is not a key id"))?;
            if !store.revoke_signing_key(&kid, now).await? {
                bail!("no such key (or it was already revoked)");
            }
            // The revocation stands whatever follows. Its algorithm may be left without a
            // signer: maintenance, as the server runs it, lets an ID-token algorithm's published
            // successor sign now (else a new key does), and leaves an access-token-only one
            // (EdDSA) to its stand-in until a key published now signs one lead later. A running
            // server does the same at its next key reload, with its own encryption key.
            let after = async {
                admin_event(&store, EventKind::KeyRevoked, |e| {
                    e.detail(&format!("kid={kid}"))
                })
                .await?;
                let (policy, enc) = key_maker(&store, config).await?;
                let keys =
                    portcullis_server::keyring::maintain(&store, &enc, &policy, now, None).await?;
                anyhow::Ok((policy, keys))
            };
            let (policy, keys) = match after.await {
                Ok(done) => done,
                Err(e) => bail!("key {kid} revoked, but no replacement was made here ({e:#}); a running server makes one at its next key reload (within 5 s)"),
            };
            println!("key {kid} revoked");
            // Access tokens of an algorithm that now waits for a published key are signed by
            // the stand-in meanwhile: APIs that accept only that algorithm refuse them.
            let access = policy.access_token_alg.unwrap_or(SigningAlg::EdDSA);
            let signing = keys.iter().any(|k| k.alg == access && k.signs_at(now));
            let next = keys
                .iter()
                .filter(|k| k.alg == access && k.waits_at(now))
                .min_by_key(|k| k.activates_at)
                .filter(|_| !signing && !access.signs_id_tokens());
            if let Some(next) = next {
                use portcullis_core::store::{RecordedAlg, SigningKeyStore as _};
                let stand_in = store
                    .recorded_alg(RecordedAlg::StandIn)
                    .await?
                    .unwrap_or(SigningAlg::ES256);
                println!(
                    "{} access tokens are signed with {} (the stand-in) until key {} signs, in {} s: APIs that accept only {} refuse them until then",
                    access.as_str(),
                    stand_in.as_str(),
                    next.kid,
                    next.activates_at - now,
                    access.as_str()
                );
            }
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum SessionsCommand {
    /// A user's active sessions: id, device, address, created, last active (newest first).
    List {
        email: String,
        #[arg(long)]
        json: bool,
    },
    /// End one session (its session-bound refresh tokens end with it).
    Revoke { session_id: String },
    /// End every session of a user.
    RevokeAll { email: String },
}

pub async fn sessions(config: &Config, cmd: SessionsCommand) -> anyhow::Result<()> {
    let store = portcullis_server::open_store(config).await?;
    match cmd {
        SessionsCommand::List { email, json } => {
            let user = user_by_email(&store, &email).await?;
            let list = store.list_sessions(&user.id, now()).await?;
            if json {
                println!(
                    "{}",
                    serde_json::Value::Array(
                        list.iter()
                            .map(|s| json!({
                                "session_id": s.id.as_str(),
                                "user_agent": s.user_agent,
                                "address": s.address,
                                "created_at": s.created_at,
                                "last_seen_at": s.last_seen_at,
                                "auth_time": s.auth_time,
                                "expires_at": s.expires_at,
                                "idle_timeout": s.idle_timeout,
                            }))
                            .collect()
                    )
                );
            } else {
                for s in list {
                    println!(
                        "{}\t{}\t{}\tcreated {}\tlast active {}",
                        s.id,
                        s.user_agent.as_deref().unwrap_or("-"),
                        s.address.as_deref().unwrap_or("-"),
                        s.created_at,
                        s.last_seen_at
                    );
                }
            }
        }
        SessionsCommand::Revoke { session_id } => {
            let id = SessionId::parse(&session_id)
                .ok_or_else(|| anyhow::anyhow!("{session_id:?} is not a session id"))?;
            match store.session_by_id(&id).await? {
                Some(s) if s.revoked_at.is_none() => {
                    store.revoke_session(&id, now()).await?;
                    admin_event(&store, EventKind::SessionRevoked, |e| {
                        e.user(&s.user_id).session(&id)
                    })
                    .await?;
                    println!("session ended");
                }
                Some(_) => println!("session already ended"),
                None => bail!("no such session"),
            }
        }
        SessionsCommand::RevokeAll { email } => {
            let user = user_by_email(&store, &email).await?;
            let ended = store.revoke_user_sessions(&user.id, None, now()).await?;
            for id in &ended {
                admin_event(&store, EventKind::SessionRevoked, |e| {
                    e.user(&user.id).session(id)
                })
                .await?;
            }
            println!("{} session(s) ended", ended.len());
        }
    }
    Ok(())
}

async fn user_by_email<S: UserStore>(store: &S, email: &str) -> anyhow::Result<User> {
    let e = Email::parse(email).map_err(|e| anyhow::anyhow!("{e}"))?;
    store
        .user_by_email_key(e.key())
        .await?
        .ok_or_else(|| anyhow::anyhow!("no such user"))
}

async fn checked_hash(config: &Config, email: &Email, pw: &str) -> anyhow::Result<String> {
    let normalized = password::normalize(pw);
    let policy = PasswordPolicy {
        min_chars: config.password_min_length,
        ..PasswordPolicy::default()
    };
    policy
        .check(&normalized, &[email.as_str()])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let hasher = PasswordHasher::new(1)?;
    Ok(hasher.hash(normalized).await?)
}

pub async fn users(config: &Config, cmd: UsersCommand) -> anyhow::Result<()> {
    let store = portcullis_server::open_store(config).await?;
    match cmd {
        UsersCommand::Create {
            email,
            password_stdin: _,
            email_verified,
            json,
        } => {
            let email = Email::parse(&email).map_err(|e| anyhow::anyhow!("{e}"))?;
            let pw = read_password()?;
            let hash = checked_hash(config, &email, &pw).await?;
            let user = User {
                id: UserId::generate(),
                email: email.as_str().to_owned(),
                email_key: email.key().to_owned(),
                email_verified,
                password_hash: hash,
                disabled: false,
                created_at: now(),
                device_epoch: 0,
                password_changed_at: None,
                password_version: 0,
            };
            store
                .create_user(&user)
                .await
                .map_err(|e| conflict(e, "a user with this e-mail address"))?;
            admin_event(&store, EventKind::UserCreated, |e| e.user(&user.id)).await?;
            if email_verified {
                admin_event(&store, EventKind::UserEmailVerified, |e| e.user(&user.id)).await?;
            }
            if json {
                println!(
                    "{}",
                    json!({"user_id": user.id.as_str(), "email": user.email})
                );
            } else {
                println!("user created: {} ({})", user.email, user.id);
            }
        }
        UsersCommand::Disable { email } => {
            let u = user_by_email(&store, &email).await?;
            let live = store.list_sessions(&u.id, now()).await?;
            store.set_user_disabled(&u.id, true, now()).await?;
            admin_event(&store, EventKind::UserDisabled, |e| e.user(&u.id)).await?;
            sessions_ended(&store, &u.id, &live, EventKind::UserDisabled).await?;
            println!("user disabled; their sessions and tokens have ended");
        }
        UsersCommand::Enable { email } => {
            let u = user_by_email(&store, &email).await?;
            store.set_user_disabled(&u.id, false, now()).await?;
            admin_event(&store, EventKind::UserEnabled, |e| e.user(&u.id)).await?;
            println!("user enabled");
        }
        UsersCommand::Delete { email } => {
            let u = user_by_email(&store, &email).await?;
            let live = store.list_sessions(&u.id, now()).await?;
            store.delete_user(&u.id, now()).await?;
            admin_event(&store, EventKind::UserDeleted, |e| e.user(&u.id)).await?;
            sessions_ended(&store, &u.id, &live, EventKind::UserDeleted).await?;
            println!("user deleted");
        }
        UsersCommand::RevokeDevices { email } => {
            let u = user_by_email(&store, &email).await?;
            store.revoke_devices(&u.id).await?;
            admin_event(&store, EventKind::UserDevicesRevoked, |e| e.user(&u.id)).await?;
            println!("every device cookie of the user is revoked");
        }
        UsersCommand::SetPassword {
            email,
            password_stdin: _,
        } => {
            let u = user_by_email(&store, &email).await?;
            let parsed = Email::parse(&u.email).map_err(|e| anyhow::anyhow!("{e}"))?;
            let pw = read_password()?;
            let hash = checked_hash(config, &parsed, &pw).await?;
            let live = store.list_sessions(&u.id, now()).await?;
            store.set_password_hash(&u.id, &hash, now()).await?;
            admin_event(&store, EventKind::UserPasswordSet, |e| e.user(&u.id)).await?;
            sessions_ended(&store, &u.id, &live, EventKind::UserPasswordSet).await?;
            println!("password changed; the user's sessions and tokens have ended");
        }
        UsersCommand::List { json } => {
            let list = store.list_users().await?;
            if json {
                println!("{}", serde_json::Value::Array(list.iter().map(|u| json!({"user_id": u.id.as_str(), "email": u.email, "email_verified": u.email_verified, "disabled": u.disabled})).collect()));
            } else {
                for u in list {
                    println!(
                        "{}\t{}{}",
                        u.id,
                        u.email,
                        if u.disabled { "\tdisabled" } else { "" }
                    );
                }
            }
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Make a new admin API token and print it once; the previous one stays valid until the
    /// next rotation.
    RotateToken {
        #[arg(long)]
        json: bool,
    },
    /// Revoke every admin API token at once (a leaked one); make a new one with
    /// `rotate-token` afterwards.
    RevokeTokens,
}

pub async fn admin(config: &Config, cmd: AdminCommand) -> anyhow::Result<()> {
    let store = portcullis_server::open_store(config).await?;
    match cmd {
        AdminCommand::RotateToken { json } => {
            let key = HashKey::new(&config.hash_key);
            let issued = secret::issue(SecretKind::AdminToken, &key);
            store.add_admin_token(&issued.hash, now()).await?;
            admin_event(&store, EventKind::AdminTokenRotated, |e| e).await?;
            if json {
                println!("{}", json!({"admin_token": reveal(&issued.value)}));
            } else {
                println!("admin_token: {}", reveal(&issued.value));
                println!("(shown only this once; the previous token stays valid until the next rotation)");
            }
        }
        AdminCommand::RevokeTokens => {
            let n = store.revoke_admin_tokens().await?;
            admin_event(&store, EventKind::AdminTokensRevoked, |e| {
                e.detail(&format!("revoked={n}"))
            })
            .await?;
            println!(
                "{n} admin token(s) revoked; make a new one with `portcullis admin rotate-token`"
            );
        }
    }
    Ok(())
}
