//! The admin HTTP API, on a listener of its own (`PORTCULLIS_ADMIN_LISTEN`, loopback by
//! default, TLS with the server's certificate): the audit trail (`/v1/events`), alerts
//! (`/v1/alerts`) and Prometheus metrics (`/metrics`), described by `/openapi.json`.
//!
//! Every call but the OpenAPI document needs `Authorization: Bearer <admin token>` (from
//! `portcullis admin rotate-token`; the two newest are valid). Only the token's keyed hash is
//! stored, and the comparison with each stored hash is constant-time. Failed authentications
//! are limited per address (then 429 with `Retry-After` for bad tokens; a valid token is never
//! locked out by others' failures), authenticated calls per address and second. Every call is audited as `admin.api_call` (refusals by the limiter once per
//! address and window, so a flood is one event).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use portcullis_core::audit::{parse_filter, Event, EventKind, FilterText, Outcome};
use portcullis_core::ids::UserId;
use portcullis_core::params::Params;
use portcullis_core::secret::{self, SecretKind};
use portcullis_guard::limiter::{AttemptLimiter, Decision, Limit, MemoryLimiter};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::state::{now, AppState};

/// Failed authentications per address per window before 429.
pub const MAX_FAILURES: u32 = 10;
/// The failure window, seconds.
pub const FAILURE_WINDOW: i64 = 300;
/// Authenticated calls per address and second.
pub const CALLS_PER_SECOND: u32 = 100;
/// Most events one call returns.
pub const MAX_LIMIT: u32 = 1000;

/// The OpenAPI 3.1 document of this API.
pub const OPENAPI: &str = include_str!("../openapi/admin.json");

#[derive(Clone)]
pub struct AdminState {
    app: AppState,
    failures: Arc<MemoryLimiter>,
    /// One audit event per refused address and window.
    refusal_logged: Arc<MemoryLimiter>,
    calls: Arc<crate::quota::GovernorQuota>,
}

impl AdminState {
    pub fn new(app: AppState) -> Self {
        let window = Limit {
            max: MAX_FAILURES,
            window_secs: FAILURE_WINDOW,
        };
        AdminState {
            app,
            failures: Arc::new(MemoryLimiter::new(window, 10_000)),
            refusal_logged: Arc::new(MemoryLimiter::new(
                Limit {
                    max: 1,
                    window_secs: FAILURE_WINDOW,
                },
                10_000,
            )),
            calls: Arc::new(crate::quota::GovernorQuota::per_second(CALLS_PER_SECOND)),
        }
    }
}

/// The admin router, with the security headers on every answer.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/v1/events", get(events))
        .route("/v1/alerts", get(alerts))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(middleware::from_fn(
            portcullis_guard::headers::security_headers,
        ))
        .with_state(state)
}

fn error(status: StatusCode, code: &str, description: &str) -> Response {
    let mut res = (
        status,
        Json(json!({"error": code, "error_description": description})),
    )
        .into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn openapi(uri: axum::http::Uri) -> Response {
    if let Some(refused) = no_parameters(&uri) {
        return refused;
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        OPENAPI.to_owned(),
    )
        .into_response()
}

/// The presented bearer token's hash, if the header holds one of ours.
fn presented_hash(st: &AdminState, headers: &HeaderMap) -> Option<String> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let text = value.to_str().ok()?;
    let (scheme, token) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    secret::hash_presented(SecretKind::AdminToken, token.trim(), &st.app.hash_key)
}

/// Every answer of the admin listener, refusals included, carries its request id and gets one
/// request log line, as on the main listener.
async fn authenticate(
    State(st): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    let path = portcullis_core::audit::clean(req.uri().path(), 100);
    let request_id = portcullis_core::crypto::random_token(12);
    let started = std::time::Instant::now();
    let mut res = check(&st, peer, req, next, &path, &request_id).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert("x-request-id", v);
    }
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(target: "portcullis::http", listener = "admin", %method, path = %path, client = %peer.ip(), status = res.status().as_u16(), request_id = %request_id, ms);
    res
}

/// The token check, the limits and the `admin.api_call` event.
async fn check(
    st: &AdminState,
    peer: SocketAddr,
    req: Request,
    next: Next,
    path: &str,
    request_id: &str,
) -> Response {
    if path == "/openapi.json" && (req.method() == Method::GET || req.method() == Method::HEAD) {
        return next.run(req).await;
    }
    let ip = peer.ip();
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let request_id = request_id.to_owned();
    let origin = portcullis_core::audit::Origin {
        address: Some(ip.to_string()),
        user_agent,
        request_id: Some(request_id.clone()),
    };
    let method = req.method().as_str().to_owned();
    let record = |outcome: Outcome, reason: &str, status: StatusCode| {
        st.app.audit.record(
            Event::new(EventKind::AdminApiCall, now())
                .outcome(outcome)
                .reason(reason)
                .from(&origin)
                .detail(&format!(
                    "method={method} path={path} status={}",
                    status.as_u16()
                )),
        );
    };
    let key = address_key(ip);
    let now = now();
    let known = match presented_hash(st, req.headers()) {
        None => false,
        Some(hash) => match st.app.store.admin_token_hashes().await {
            // Each stored hash is compared in constant time; all of them are compared.
            Ok(stored) => stored.iter().fold(false, |found, h| {
                found | bool::from(h.as_bytes().ct_eq(hash.as_bytes()))
            }),
            Err(e) => {
                tracing::error!(error = %e, "admin tokens could not be read");
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "storage is unavailable; retry later",
                );
            }
        },
    };
    if !known {
        // Counted as it happens (one atomic reserve); past the limit, bad tokens from this
        // address get 429. A valid token is never refused by this limit: a local process
        // sending bad tokens cannot lock the operator (or the metrics scrape) out.
        if let Decision::Limited { retry_after } = st.failures.reserve(&key, now).await {
            if st
                .refusal_logged
                .reserve(&format!("bad-token|{key}"), now)
                .await
                .is_allowed()
            {
                record(
                    Outcome::Failure,
                    "rate_limited",
                    StatusCode::TOO_MANY_REQUESTS,
                );
            }
            return too_many(retry_after);
        }
        record(Outcome::Failure, "unauthorized", StatusCode::UNAUTHORIZED);
        let mut res = error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid admin token is required (Authorization: Bearer …)",
        );
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"portcullis-admin\""),
        );
        return res;
    }
    if let Err(retry_after) = st.calls.admit_key(&key) {
        // Its own once-per-window slot: bad-token refusals cannot hide a valid token's flood.
        if st
            .refusal_logged
            .reserve(&format!("calls|{key}"), now)
            .await
            .is_allowed()
        {
            record(
                Outcome::Failure,
                "rate_limited",
                StatusCode::TOO_MANY_REQUESTS,
            );
        }
        return too_many(retry_after);
    }
    let res = next.run(req).await;
    let status = res.status();
    let outcome = if status.is_success() {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    record(
        outcome,
        if status.is_success() { "ok" } else { "refused" },
        status,
    );
    res
}

fn address_key(ip: IpAddr) -> String {
    // Every loopback address is one caller: 127.0.0.0/8 must not multiply the limits.
    if portcullis_guard::client_addr::canonical(ip).is_loopback() {
        return "admin:loopback".to_owned();
    }
    format!("admin:{}", portcullis_guard::client_addr::bucket(ip, 64))
}

fn too_many(retry_after: i64) -> Response {
    let mut res = error(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "too many requests from this address; retry later",
    );
    if let Ok(v) = HeaderValue::from_str(&retry_after.max(1).to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

/// The query parameters `/v1/events` and `/v1/alerts` accept.
const EVENT_PARAMS: &[&str] = &[
    "user_id",
    "client_id",
    "type",
    "outcome",
    "address",
    "since",
    "until",
    "after_id",
    "limit",
];

/// Why a query was not answered.
enum QueryError {
    /// 400 with this description.
    Bad(String),
    /// 503: storage failed.
    Unavailable,
}

impl QueryError {
    fn response(self) -> Response {
        match self {
            QueryError::Bad(d) => error(StatusCode::BAD_REQUEST, "invalid_request", &d),
            QueryError::Unavailable => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "storage is unavailable; retry later",
            ),
        }
    }
}

async fn query(
    st: &AdminState,
    raw: Option<&str>,
    alerts_only: bool,
) -> Result<serde_json::Value, QueryError> {
    let bad = |d: &str| QueryError::Bad(d.to_owned());
    let accepted = || {
        EVENT_PARAMS
            .iter()
            .filter(|p| !(alerts_only && **p == "type"))
            .copied()
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut pairs = Vec::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if !EVENT_PARAMS.contains(&k.as_ref()) || (alerts_only && k == "type") {
            return Err(bad(&format!(
                "unknown parameter {:?}; accepted: {}",
                portcullis_core::audit::clean(&k, 64),
                accepted()
            )));
        }
        if v.is_empty() {
            return Err(bad(&format!("parameter {k} is empty")));
        }
        pairs.push((k.into_owned(), v.into_owned()));
    }
    let params = Params::from_pairs(pairs).map_err(|e| bad(&e.description))?;
    let get = |name: &str| -> Result<Option<&str>, QueryError> {
        params.get(name, 256).map_err(|e| bad(&e.description))
    };
    let mut filter = parse_filter(
        &FilterText {
            client_id: get("client_id")?,
            kind: if alerts_only {
                Some(EventKind::AlertRaised.as_str())
            } else {
                get("type")?
            },
            outcome: get("outcome")?,
            address: get("address")?,
            since: get("since")?,
            until: get("until")?,
            after_id: get("after_id")?,
            limit: get("limit")?,
        },
        now(),
        MAX_LIMIT,
    )
    .map_err(|e| bad(&e))?;
    if let Some(u) = get("user_id")? {
        let id = UserId::parse(u).ok_or_else(|| bad("user_id is not a user id"))?;
        filter.user_id = Some(id.to_string());
    }
    let events = st.app.store.query_events(&filter).await.map_err(|e| {
        tracing::error!(error = %e, "audit events could not be read");
        QueryError::Unavailable
    })?;
    let last = events.last().map(|e| e.id);
    Ok(json!({ "events": events, "last_id": last }))
}

async fn events(State(st): State<AdminState>, req: Request) -> Response {
    match query(&st, req.uri().query(), false).await {
        Ok(v) => no_store(Json(v).into_response()),
        Err(e) => e.response(),
    }
}

async fn alerts(State(st): State<AdminState>, req: Request) -> Response {
    match query(&st, req.uri().query(), true).await {
        Ok(v) => no_store(Json(v).into_response()),
        Err(e) => e.response(),
    }
}

/// `/metrics` and `/openapi.json` take no parameters (an unknown one is a mistake to report,
/// not to ignore).
fn no_parameters(uri: &axum::http::Uri) -> Option<Response> {
    uri.query().map(|_| {
        error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "this endpoint takes no query parameters",
        )
    })
}

async fn metrics(State(st): State<AdminState>, uri: axum::http::Uri) -> Response {
    if let Some(refused) = no_parameters(&uri) {
        return refused;
    }
    let text = st.app.metrics.render(&st.app.audit.counters);
    no_store(
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
    )
}

fn no_store(mut res: Response) -> Response {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_names_every_event_type() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        let params = doc["paths"]["/v1/events"]["get"]["parameters"]
            .as_array()
            .unwrap();
        let kind = params.iter().find(|p| p["name"] == "type").unwrap();
        let mut listed: Vec<&str> = kind["schema"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let mut known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        listed.sort_unstable();
        known.sort_unstable();
        assert_eq!(listed, known);
        let names: Vec<&str> = params.iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, EVENT_PARAMS);
    }
}
