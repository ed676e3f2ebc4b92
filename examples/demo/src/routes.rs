//! The routes. Handlers only read the request, call the SDK or the store, and answer.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, OriginalUri, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::header::{self, HeaderMap, HeaderValue};
use http::StatusCode;
use portcullis_client::{Error as SdkError, InvalidToken, TokenTypeHint};
use portcullis_guard::csp::PagePolicy;
use portcullis_guard::csrf;
use serde_json::json;

use crate::config::{BACKCHANNEL_PATH, CALLBACK_PATH, SIGNED_OUT_PATH};
use crate::pages::Message;
use crate::store::{Session, PENDING_TTL};
use crate::{Demo, SESSION_COOKIE, TX_BINDING_COOKIE, TX_COOKIE};

type App = State<Arc<Demo>>;

/// Request bodies: the logout form is tiny, a logout token at most 16 KiB.
const MAX_BODY: usize = 32 * 1024;
/// Longest request target accepted (the callback's query included).
const MAX_TARGET: usize = 8 * 1024;

pub fn router(demo: Arc<Demo>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/login", get(login))
        .route(CALLBACK_PATH, get(callback))
        .route("/me", get(me))
        .route("/logout", post(logout))
        .route(SIGNED_OUT_PATH, get(signed_out))
        .route(BACKCHANNEL_PATH, post(backchannel_logout))
        .route("/api/things", get(api_things))
        .route("/static/demo.css", get(stylesheet))
        .route(
            "/favicon.ico",
            get(|| async {
                (
                    StatusCode::NO_CONTENT,
                    [(header::CACHE_CONTROL, "public, max-age=86400")],
                )
            }),
        )
        .fallback(not_found)
        .with_state(demo)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(limit_target))
        // Outermost: every answer, errors and 404s included, gets the header set.
        .layer(axum::middleware::from_fn(
            portcullis_guard::headers::security_headers,
        ))
}

async fn limit_target(req: Request, next: Next) -> Response {
    let len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if len > MAX_TARGET {
        return (StatusCode::URI_TOO_LONG, "Request target too long").into_response();
    }
    next.run(req).await
}

async fn not_found(State(demo): App) -> Response {
    demo.pages.message(
        StatusCode::NOT_FOUND,
        Message {
            title: "Not found",
            heading: "Not found",
            heading_id: "not-found",
            text: "There is no such page.",
            link: Some("/"),
            link_text: "Home",
            ..Default::default()
        },
    )
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../static/demo.css"),
    )
        .into_response()
}

async fn index(State(demo): App, headers: HeaderMap) -> Response {
    let who = match demo.current_session(&headers).await {
        Ok(Some((_, s))) => {
            let s = s.lock().await;
            Some(
                s.claims
                    .email
                    .clone()
                    .unwrap_or_else(|| s.claims.sub.clone()),
            )
        }
        _ => None,
    };
    demo.pages.render(
        StatusCode::OK,
        "index.html",
        json!({"title": "Home", "signed_in_as": who}),
    )
}

/// Starts a sign-in: the pending authorization stays here, the browser carries its id in the
/// transaction cookie (sent back only to the callback) and goes to Portcullis.
async fn login(
    State(demo): App,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
) -> Response {
    // Each sign-in started stores a pending authorization for ten minutes: a network may start
    // only so many, so a script cannot fill the store and lock everyone else out.
    use portcullis_guard::limiter::AttemptLimiter;
    let network = portcullis_guard::client_addr::bucket(peer.ip(), 64).to_string();
    if !demo.logins.reserve(&network, demo.now()).await.is_allowed() {
        return demo.busy();
    }
    let options = portcullis_client::AuthorizationOptions {
        scopes: vec!["email".into(), demo.config.api_scope.clone()],
        resource: Some(demo.config.api_audience.clone()),
        ..Default::default()
    };
    let (url, pending) = match demo
        .portcullis
        .authorization_url(&demo.config.redirect_uri(), &options)
        .await
    {
        Ok(x) => x,
        Err(e) => return demo.sdk_failure("login", &e),
    };
    // The session this browser has now (the Strict cookie comes with a click on this site)
    // ends when the new one starts: the callback, reached from Portcullis, does not get it.
    let replaces = SESSION_COOKIE.get(&headers);
    let (id, binding) = match demo.store.put_pending(pending, replaces, demo.now()) {
        Ok(x) => x,
        Err(_) => return demo.busy(),
    };
    let mut res = Redirect::to(url.as_str()).into_response();
    for c in [
        TX_COOKIE.set(&id, PENDING_TTL),
        TX_BINDING_COOKIE.set(&binding, PENDING_TTL),
    ]
    .into_iter()
    .flatten()
    {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

/// Finishes the sign-in and starts the app session. Whatever happens, the transaction cookie
/// is deleted: a pending sign-in is used once.
async fn callback(State(demo): App, OriginalUri(uri): OriginalUri, headers: HeaderMap) -> Response {
    let mut res = demo.finish_sign_in(&uri, &headers).await;
    for c in [TX_COOKIE.delete(), TX_BINDING_COOKIE.delete()]
        .into_iter()
        .flatten()
    {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

async fn me(State(demo): App, OriginalUri(uri): OriginalUri, headers: HeaderMap) -> Response {
    let (id, session) = match demo.current_session(&headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return demo.not_signed_in(&uri, &headers),
        Err(res) => return res,
    };
    let s = session.lock().await;
    let mut claims: Vec<(String, String)> = serde_json::to_value(ClaimsView(&s.claims))
        .ok()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            (k, text)
        })
        .collect();
    claims.sort();
    let now = demo.now();
    let mut res = demo.pages.render(
        StatusCode::OK,
        "me.html",
        json!({
            "title": "Your account",
            "sub": s.claims.sub,
            "email": s.claims.email,
            "claims": claims,
            "expires_at": s.tokens.expires_at,
            "expires_in": (s.tokens.expires_at - now).max(0),
            "scope": s.tokens.scope.join(" "),
            "refreshes": s.refreshes,
            "csrf_token": demo.csrf.token_for(&id),
        }),
    );
    // The logout form's answer redirects to Portcullis: browsers apply `form-action` to
    // that redirect too, so the page must name Portcullis's origin.
    let policy = PagePolicy::new();
    let origin = url::Url::parse(demo.portcullis.issuer())
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    let policy = match policy.clone().allow_form_action(&origin) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "the logout redirect cannot be allowed by the CSP");
            policy
        }
    };
    res.extensions_mut().insert(policy);
    res
}

/// Every claim of the ID token, for display (all escaped by the template).
struct ClaimsView<'a>(&'a portcullis_client::IdTokenClaims);

impl serde::Serialize for ClaimsView<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let c = self.0;
        let mut m = ser.serialize_map(None)?;
        m.serialize_entry("iss", &c.iss)?;
        m.serialize_entry("sub", &c.sub)?;
        m.serialize_entry("aud", &c.aud.iter().collect::<Vec<_>>())?;
        for (k, v) in [
            ("azp", c.azp.as_ref()),
            ("sid", c.sid.as_ref()),
            ("email", c.email.as_ref()),
        ] {
            if let Some(v) = v {
                m.serialize_entry(k, v)?;
            }
        }
        if let Some(v) = c.email_verified {
            m.serialize_entry("email_verified", &v)?;
        }
        m.serialize_entry("iat", &c.iat)?;
        m.serialize_entry("exp", &c.exp)?;
        if let Some(t) = c.auth_time {
            m.serialize_entry("auth_time", &t)?;
        }
        for (k, v) in &c.other {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// `POST /logout`: same-origin, then the token bound to the session; ends the app session,
/// revokes its refresh token and sends the browser to Portcullis's logout.
async fn logout(State(demo): App, headers: HeaderMap, body: Bytes) -> Response {
    if csrf::check_same_origin(&headers, &demo.config.url).is_err() {
        return demo.refused();
    }
    let Ok(form) = Form::parse(&headers, &body, &["csrf_token"]) else {
        return demo.refused();
    };
    let Some(id) = SESSION_COOKIE.get(&headers) else {
        // Nothing to end (already signed out, in another tab or by Portcullis).
        return Redirect::to(SIGNED_OUT_PATH).into_response();
    };
    if demo.csrf.verify(&id, form.get("csrf_token")).is_err() {
        return demo.refused();
    }
    let mut res = match demo.store.remove_session(&id) {
        None => Redirect::to(SIGNED_OUT_PATH).into_response(),
        Some(session) => {
            let s = session.lock().await;
            if let Some(rt) = &s.tokens.refresh_token {
                if let Err(e) = demo
                    .portcullis
                    .revoke(rt, TokenTypeHint::RefreshToken)
                    .await
                {
                    tracing::warn!(error = %e, "revoking the refresh token failed");
                }
            }
            let post_logout = demo.config.post_logout_redirect_uri();
            let hint = s.id_token.as_ref().map(|t| t.expose().to_owned());
            match demo
                .portcullis
                .logout_url(hint.as_deref(), Some(&post_logout), None)
                .await
            {
                Ok(url) => Redirect::to(url.as_str()).into_response(),
                Err(e) => {
                    tracing::warn!(error = %e, "no logout URL; signed out here only");
                    Redirect::to(SIGNED_OUT_PATH).into_response()
                }
            }
        }
    };
    if let Some(c) = SESSION_COOKIE.delete() {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

async fn signed_out(State(demo): App) -> Response {
    demo.pages.message(
        StatusCode::OK,
        Message {
            title: "Signed out",
            heading: "You are signed out",
            heading_id: "signed-out",
            text: "You are signed out of this app and of Portcullis.",
            link: Some("/"),
            link_text: "Home",
            ..Default::default()
        },
    )
}

/// Back-channel logout (OpenID Connect Back-Channel Logout 1.0 §2.8): 200 when the token is
/// valid and its sessions are ended, 400 otherwise; never cached.
async fn backchannel_logout(State(demo): App, headers: HeaderMap, body: Bytes) -> Response {
    let answer = |status: StatusCode, error: Option<&str>| {
        let mut res = match error {
            None => status.into_response(),
            Some(e) => (
                status,
                Json(json!({"error": "invalid_request", "error_description": e})),
            )
                .into_response(),
        };
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    };
    let form = match Form::parse(&headers, &body, &["logout_token"]) {
        Ok(f) => f,
        Err(why) => return answer(StatusCode::BAD_REQUEST, Some(why)),
    };
    let Some(token) = form.get("logout_token") else {
        return answer(StatusCode::BAD_REQUEST, Some("logout_token is missing"));
    };
    let request = match demo.portcullis.verify_logout_token(token).await {
        Ok(r) => r,
        Err(SdkError::InvalidToken(why)) => {
            tracing::info!(reason = %why, "refused a logout token");
            return answer(
                StatusCode::BAD_REQUEST,
                Some("the logout token is not valid"),
            );
        }
        Err(e) => {
            // JWKS unreachable and the like: Portcullis retries a non-200.
            tracing::warn!(error = %e, "could not verify a logout token");
            return answer(StatusCode::SERVICE_UNAVAILABLE, Some("try again later"));
        }
    };
    let now = demo.now();
    // Remembered until the token expires (plus the SDK's leeway), so a replay is refused.
    let remember_until = request.expires_at.saturating_add(60).min(now + 3600);
    if !demo
        .store
        .first_use_of_jti(&request.jti, now, remember_until)
    {
        return answer(
            StatusCode::BAD_REQUEST,
            Some("the logout token was used already"),
        );
    }
    let ended = demo
        .store
        .remove_by_logout(request.sid.as_deref(), request.sub.as_deref());
    tracing::info!(ended, "back-channel logout");
    answer(StatusCode::OK, None)
}

/// `GET /api/things`: a `Bearer` access token for the API, with its scope (RFC 6750 §3).
async fn api_things(State(demo): App, headers: HeaderMap) -> Response {
    let challenge = |status: StatusCode, value: String, body: serde_json::Value| {
        let mut res = (status, Json(body)).into_response();
        if let Ok(v) = HeaderValue::from_str(&value) {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        res
    };
    let mut auth = headers.get_all(header::AUTHORIZATION).iter();
    let token = match (auth.next(), auth.next()) {
        (None, _) => {
            return challenge(
                StatusCode::UNAUTHORIZED,
                "Bearer".into(),
                json!({"error": "unauthorized"}),
            )
        }
        (Some(v), None) => v.to_str().ok().and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        }),
        (Some(_), Some(_)) => None,
    };
    let invalid = || {
        challenge(
            StatusCode::UNAUTHORIZED,
            "Bearer error=\"invalid_token\"".into(),
            json!({"error": "invalid_token"}),
        )
    };
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return invalid();
    };
    let scope = demo.config.api_scope.as_str();
    match demo
        .portcullis
        .validate_access_token(token, &demo.config.api_audience, &[scope])
        .await
    {
        Ok(claims) => Json(json!({
            "things": ["a lantern", "an orbit", "a harbor"],
            "sub": claims.sub,
            "client_id": claims.client_id,
            "scope": claims.scope,
        }))
        .into_response(),
        Err(SdkError::InvalidToken(InvalidToken::Scope)) => challenge(
            StatusCode::FORBIDDEN,
            format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\""),
            json!({"error": "insufficient_scope"}),
        ),
        Err(SdkError::InvalidToken(_)) => invalid(),
        Err(e) => {
            tracing::warn!(error = %e, "could not validate an access token");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": "temporarily_unavailable"})),
            )
                .into_response()
        }
    }
}

/// A urlencoded form whose fields are each given at most once; fields not named are ignored.
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(headers: &HeaderMap, body: &[u8], fields: &[&str]) -> Result<Self, &'static str> {
        let form_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !form_type {
            return Err("the body must be application/x-www-form-urlencoded");
        }
        let mut out: Vec<(String, String)> = Vec::new();
        for (k, v) in form_urlencoded::parse(body) {
            if !fields.contains(&k.as_ref()) {
                continue;
            }
            if out.iter().any(|(name, _)| name == &k) {
                return Err("a field is repeated");
            }
            out.push((k.into_owned(), v.into_owned()));
        }
        Ok(Form(out))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Demo {
    /// The session named by the cookie, its access token refreshed when it expires within
    /// `refresh_before`; `None` when there is none (or it ended, here or at Portcullis).
    async fn current_session(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<(String, Arc<tokio::sync::Mutex<Session>>)>, Response> {
        let Some(id) = SESSION_COOKIE.get(headers) else {
            return Ok(None);
        };
        let Some(session) = self.store.session(&id) else {
            return Ok(None);
        };
        let now = self.now();
        let mut s = session.lock().await;
        if s.expires_at <= now {
            drop(s);
            self.store.remove_session(&id);
            return Ok(None);
        }
        if s.tokens.expires_at - now > self.config.refresh_before {
            drop(s);
            return Ok(Some((id, session)));
        }
        let Some(rt) = s.tokens.refresh_token.clone() else {
            if s.tokens.expires_at > now {
                drop(s);
                return Ok(Some((id, session)));
            }
            drop(s);
            self.store.remove_session(&id);
            return Ok(None);
        };
        match self.portcullis.refresh_session(&rt, &s.claims).await {
            Ok(renewed) => {
                s.claims = renewed.claims;
                Self::keep(&mut s, renewed.tokens, rt);
                tracing::info!(refreshes = s.refreshes, "access token refreshed");
                drop(s);
                Ok(Some((id, session)))
            }
            Err(SdkError::RefreshedIdToken { tokens, error }) => {
                // The refresh token was rotated: keep its successor whatever happens next.
                let continues = !matches!(*error, SdkError::InvalidToken(InvalidToken::Claims));
                Self::keep(&mut s, *tokens, rt);
                if continues {
                    tracing::warn!(error = %error, "the refreshed ID token could not be checked; keeping the session");
                    drop(s);
                    return Ok(Some((id, session)));
                }
                // A new ID token for someone else, or a new sign-in: not this session.
                tracing::warn!(error = %error, "the refreshed ID token does not continue the sign-in; the session ends");
                let spent = s.tokens.refresh_token.clone();
                drop(s);
                self.store.remove_session(&id);
                if let Some(rt) = spent {
                    let _ = self
                        .portcullis
                        .revoke(&rt, TokenTypeHint::RefreshToken)
                        .await;
                }
                Ok(None)
            }
            Err(SdkError::Endpoint(e)) if e.is("invalid_grant") || e.is("invalid_client") => {
                // The session ended at Portcullis (logout, revocation), or the app's
                // registration did.
                tracing::info!(error = %e, "refresh refused; the session is over");
                drop(s);
                self.store.remove_session(&id);
                Ok(None)
            }
            Err(e) if s.tokens.expires_at > now => {
                // Portcullis busy or unreachable: the access token still works for now.
                tracing::warn!(error = %e, "refresh failed; the access token still works");
                drop(s);
                Ok(Some((id, session)))
            }
            Err(e) => Err(self.sdk_failure("refresh", &e)),
        }
    }

    /// Stores refreshed tokens; the new refresh token replaces the spent one (rotation).
    fn keep(s: &mut Session, fresh: portcullis_client::Tokens, spent: portcullis_client::Secret) {
        s.tokens.refresh_token = fresh.refresh_token.clone().or(Some(spent));
        if let Some(id_token) = &fresh.id_token {
            s.id_token = Some(id_token.clone());
        }
        s.tokens.access_token = fresh.access_token;
        s.tokens.expires_at = fresh.expires_at;
        s.tokens.scope = fresh.scope;
        s.refreshes = s.refreshes.saturating_add(1);
    }

    async fn finish_sign_in(&self, uri: &http::Uri, headers: &HeaderMap) -> Response {
        let now = self.now();
        // Taken (spent) whatever comes with it: without the binding cookie too, which no
        // binding matches.
        let pending = TX_COOKIE.get(headers).and_then(|id| {
            let binding = TX_BINDING_COOKIE.get(headers).unwrap_or_default();
            self.store.take_pending(&id, &binding, now)
        });
        let Some((pending, replaces)) = pending else {
            return self.pages.message(
                StatusCode::BAD_REQUEST,
                Message {
                    title: "Sign-in expired",
                    heading: "This sign-in has expired",
                    heading_id: "sign-in-expired",
                    text: "It was already used, is older than 10 minutes, or was started in another tab.",
                    link: Some("/login"),
                    link_text: "Sign in again",
                    ..Default::default()
                },
            );
        };
        let path_and_query = uri.path_and_query().map_or("", |p| p.as_str());
        let callback = format!("{}{path_and_query}", self.config.url);
        let signed_in = match self
            .portcullis
            .authenticate_with_code(&callback, &pending)
            .await
        {
            Ok(s) => s,
            Err(SdkError::Authorization(e)) => {
                tracing::info!(error = %e.code, "the sign-in was refused");
                let text = format!("Portcullis answered {}.", e.code);
                return self.pages.message(
                    StatusCode::BAD_REQUEST,
                    Message {
                        title: "Not signed in",
                        heading: "The sign-in did not complete",
                        heading_id: "sign-in-refused",
                        text: &text,
                        link: Some("/login"),
                        link_text: "Try again",
                        ..Default::default()
                    },
                );
            }
            Err(e) => return self.sdk_failure("callback", &e),
        };
        // A new session id at every sign-in (no fixation); the browser's old session ends
        // (the one it had at /login, and any it sends here).
        for old in replaces.into_iter().chain(SESSION_COOKIE.get(headers)) {
            let Some(session) = self.store.remove_session(&old) else {
                continue;
            };
            // Its refresh token is of no more use to anyone: revoked, as at logout.
            let spent = session.lock().await.tokens.refresh_token.clone();
            if let Some(rt) = spent {
                if let Err(e) = self
                    .portcullis
                    .revoke(&rt, TokenTypeHint::RefreshToken)
                    .await
                {
                    tracing::warn!(error = %e, "revoking the replaced session's refresh token failed");
                }
            }
        }
        let id_token = signed_in.tokens.id_token.clone();
        let session = Session {
            claims: signed_in.claims,
            tokens: signed_in.tokens,
            id_token,
            expires_at: now + self.config.session_ttl,
            refreshes: 0,
        };
        let id = match self.store.create_session(session, now) {
            Ok(id) => id,
            Err(_) => return self.busy(),
        };
        // The browser came here through a redirect chain that started at Portcullis: it will
        // not send the Strict session cookie until a navigation starts on this site, so the
        // page moves on to /me by itself (a meta refresh, no script).
        let mut res = self.pages.message(
            StatusCode::OK,
            Message {
                title: "Signed in",
                heading: "Signed in",
                heading_id: "signed-in",
                text: "Taking you to your account…",
                link: Some("/me"),
                link_text: "Continue",
                refresh_to: Some("/me"),
            },
        );
        if let Some(c) = SESSION_COOKIE.set(&id, self.config.session_ttl) {
            res.headers_mut().append(header::SET_COOKIE, c);
        }
        res
    }

    /// No visible session. A browser arriving from another site does not send the Strict
    /// cookie: one same-site hop (`?hop`) tells "signed out" from "cookie withheld".
    fn not_signed_in(&self, uri: &http::Uri, headers: &HeaderMap) -> Response {
        if uri.query() != Some("hop") && SESSION_COOKIE.get(headers).is_none() {
            return self.pages.message(
                StatusCode::OK,
                Message {
                    title: "One moment",
                    heading: "One moment…",
                    heading_id: "hop",
                    text: "Checking your session.",
                    link: Some("/me?hop"),
                    link_text: "Continue",
                    refresh_to: Some("/me?hop"),
                },
            );
        }
        let mut res = self.pages.message(
            StatusCode::OK,
            Message {
                title: "Not signed in",
                heading: "You are not signed in",
                heading_id: "not-signed-in",
                text: "Sign in to see your account.",
                link: Some("/login"),
                link_text: "Sign in with Portcullis",
                ..Default::default()
            },
        );
        if SESSION_COOKIE.get(headers).is_some() {
            // A cookie for a session that ended: drop it.
            if let Some(c) = SESSION_COOKIE.delete() {
                res.headers_mut().append(header::SET_COOKIE, c);
            }
        }
        res
    }

    fn refused(&self) -> Response {
        self.pages.message(
            StatusCode::FORBIDDEN,
            Message {
                title: "Request refused",
                heading: "Request refused",
                heading_id: "refused",
                text: "This form did not come from this app's own page. Nothing was changed.",
                link: Some("/me"),
                link_text: "Back",
                ..Default::default()
            },
        )
    }

    fn busy(&self) -> Response {
        let mut res = self.pages.message(
            StatusCode::SERVICE_UNAVAILABLE,
            Message {
                title: "Busy",
                heading: "Too busy",
                heading_id: "busy",
                text: "Please try again in a minute.",
                ..Default::default()
            },
        );
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        res
    }

    /// An SDK refusal or failure as a page: the details go to the log only.
    fn sdk_failure(&self, step: &'static str, e: &SdkError) -> Response {
        let (status, text) = match e {
            SdkError::Transport(_) | SdkError::Protocol(_) | SdkError::Config(_) => (
                StatusCode::BAD_GATEWAY,
                "Portcullis could not be reached. Please try again.",
            ),
            _ => (
                StatusCode::BAD_REQUEST,
                "The sign-in answer was not valid. Please sign in again.",
            ),
        };
        tracing::warn!(step, error = %e, "sign-in step failed");
        self.pages.message(
            status,
            Message {
                title: "Sign-in failed",
                heading: "Sign-in failed",
                heading_id: "sign-in-failed",
                text,
                link: Some("/login"),
                link_text: "Sign in again",
                ..Default::default()
            },
        )
    }
}
