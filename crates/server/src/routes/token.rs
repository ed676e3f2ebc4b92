//! `POST /token`: form body only, one client authentication method, RFC 6749 error bodies,
//! `Cache-Control: no-store`.

use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use portcullis_core::client_auth::BasicCredentials;
use portcullis_core::error::{ErrorCode, OAuthError};
use portcullis_core::grants::{self, GrantEvent, TokenContext};
use portcullis_core::params::Params;

use portcullis_guard::client_addr::{bucket, ClientAddr};
use portcullis_guard::limiter::Decision;

use crate::respond::{json_no_store, oauth_json_error};
use crate::state::{now, AppState};

fn basic_credentials(headers: &HeaderMap) -> Result<Option<BasicCredentials>, OAuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(OAuthError::invalid_request("repeated Authorization header"));
    }
    let text = value.to_str().map_err(|_| OAuthError::invalid_client())?;
    let Some((scheme, rest)) = text.split_once(' ') else {
        return Err(OAuthError::invalid_client());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client().with_detail("unsupported Authorization scheme"));
    }
    let decoded = STANDARD
        .decode(rest.trim())
        .map_err(|_| OAuthError::invalid_client())?;
    let decoded = String::from_utf8(decoded).map_err(|_| OAuthError::invalid_client())?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(OAuthError::invalid_client)?;
    Ok(Some(BasicCredentials {
        id: id.to_owned(),
        secret: secret.to_owned(),
    }))
}

/// `RateLimit-Policy` / `RateLimit` (IETF RateLimit header fields draft) and `Retry-After`
/// for the failed-client-authentication limit.
fn rate_limit_headers(res: &mut Response, st: &AppState, decision: Decision) {
    let limit = st.client_auth_limits.limit();
    let (remaining, reset) = match decision {
        Decision::Allowed {
            remaining,
            reset_after,
        } => (remaining, reset_after),
        Decision::Limited { retry_after } => (0, retry_after),
    };
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "\"client-auth\";q={};w={}",
        limit.max, limit.window_secs
    )) {
        h.insert("ratelimit-policy", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"client-auth\";r={remaining};t={reset}")) {
        h.insert("ratelimit", v);
    }
    if let Decision::Limited { retry_after } = decision {
        if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
            h.insert(header::RETRY_AFTER, v);
        }
    }
}

pub async fn token(
    State(st): State<AppState>,
    Extension(ClientAddr(ip)): Extension<ClientAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = now();
    // Failed client authentication is limited per address (PRACTICES §6). Every request takes
    // a slot first (so a parallel burst cannot slip past the limit) and gives it back unless
    // its client authentication failed.
    let address = format!("token:{}", bucket(ip, st.ipv6_prefix));
    let slot = st.client_auth_limits.reserve(&address, now).await;
    if let d @ Decision::Limited { .. } = slot {
        let mut res = oauth_json_error(&OAuthError::new(
            ErrorCode::TemporarilyUnavailable,
            "too many failed client authentications from this address; retry later",
        ));
        *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        rate_limit_headers(&mut res, &st, d);
        return res;
    }
    let (res, auth_failed) = handle(&st, ip, &headers, &body, now, slot).await;
    if !auth_failed {
        st.client_auth_limits.refund(&address).await;
    }
    res
}

/// Everything after the slot: returns the answer and whether client authentication failed
/// (then the slot stays taken).
async fn handle(
    st: &AppState,
    ip: std::net::IpAddr,
    headers: &HeaderMap,
    body: &Bytes,
    now: i64,
    slot: Decision,
) -> (Response, bool) {
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !form_type {
        return (
            oauth_json_error(&OAuthError::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            )),
            false,
        );
    }
    let params = match Params::parse(body) {
        Ok(p) => p,
        Err(e) => return (oauth_json_error(&e), false),
    };
    // RFC 6749 §5.2: a client that tried the Authorization header (any scheme) gets a 401
    // with a challenge when its authentication fails.
    let header_attempted = headers.contains_key(header::AUTHORIZATION);
    let failed_auth = || {
        tracing::info!(event = "token.client_auth_failed", client = %ip);
        slot
    };
    let error = |e: &OAuthError, counted: Option<Decision>| {
        let mut res = oauth_json_error(e);
        if e.code == ErrorCode::InvalidClient && header_attempted {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"portcullis\""),
            );
        }
        if let Some(d) = counted {
            rate_limit_headers(&mut res, st, d);
        }
        res
    };
    let basic = match basic_credentials(headers) {
        Ok(b) => b,
        Err(e) if e.code == ErrorCode::InvalidClient => {
            let d = failed_auth();
            return (error(&e, Some(d)), true);
        }
        Err(e) => return (error(&e, None), false),
    };
    let ctx = TokenContext {
        quota: &*st.client_quota,
        issuer: &st.issuer,
        keys: &st.keys,
        hash_key: &st.hash_key,
        lifetimes: &st.lifetimes,
        access_token_alg: st.access_token_alg,
        now,
    };
    let outcome = grants::dispatch(&params, basic.as_ref(), &*st.store, &ctx).await;
    for ev in &outcome.events {
        match ev {
            GrantEvent::CodeReplayed => {
                tracing::warn!(
                    event = "token.code_replayed",
                    client_id = outcome.client_id.as_deref().unwrap_or("")
                );
            }
            GrantEvent::RefreshReuseDetected {
                family_id,
                session_id,
                user_id,
            } => {
                tracing::warn!(event = "token.reuse_detected", client_id = outcome.client_id.as_deref().unwrap_or(""), %family_id, %session_id, %user_id);
            }
        }
    }
    if let Some(retry_after) = outcome.over_quota {
        tracing::warn!(
            event = "token.quota_exceeded",
            client_id = outcome.client_id.as_deref().unwrap_or("")
        );
        let mut res = match &outcome.result {
            Err(e) => oauth_json_error(e),
            Ok(_) => oauth_json_error(&OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "retry later",
            )),
        };
        *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        let h = res.headers_mut();
        if let Ok(v) =
            HeaderValue::from_str(&format!("\"client\";q={};w=1", st.client_quota.limit()))
        {
            h.insert("ratelimit-policy", v);
        }
        if let Ok(v) = HeaderValue::from_str(&format!("\"client\";r=0;t={retry_after}")) {
            h.insert("ratelimit", v);
        }
        if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
            h.insert(header::RETRY_AFTER, v);
        }
        return (res, false);
    }
    match outcome.result {
        Ok(tokens) => (json_no_store(StatusCode::OK, &tokens), false),
        Err(e) if e.code == ErrorCode::InvalidClient => {
            let d = failed_auth();
            (error(&e, Some(d)), true)
        }
        Err(e) => (error(&e, None), false),
    }
}
