//! What the three endpoints a client calls with its credentials (`/token`, `/revoke`,
//! `/introspect`) share: a form body, one authentication method, RFC 6749 §5.2 errors with a
//! `Basic` challenge, and one per-address limit on failed client authentication.

use std::future::Future;
use std::net::IpAddr;

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use portcullis_core::audit::{Event, EventKind, Origin};
use portcullis_core::client_auth::BasicCredentials;
use portcullis_core::error::{ErrorCode, OAuthError};
use portcullis_core::params::Params;
use portcullis_guard::client_addr::bucket;
use portcullis_guard::limiter::Decision;

use crate::respond::oauth_json_error;
use crate::state::AppState;

/// A parsed request: its parameters, its `Basic` credentials, and whether the client tried
/// the `Authorization` header at all (then a failure gets a 401 with a challenge).
pub struct ClientRequest {
    pub params: Params,
    pub basic: Option<BasicCredentials>,
    pub header_attempted: bool,
    /// The failed-authentication slot this request holds (for the `RateLimit` headers).
    pub slot: Decision,
    /// Who sent it, for audit events.
    pub origin: Origin,
}

/// What a handler returns: the answer, and whether client authentication failed (then the
/// slot stays taken).
pub type Handled = (Response, bool);

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
pub fn rate_limit_headers(res: &mut Response, st: &AppState, decision: Decision) {
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

/// Runs `handler` under the failed-client-authentication limit of the caller's address
/// (PRACTICES §6), shared by all three endpoints so that spreading guesses over them gains
/// nothing. Every request takes a slot first (so a parallel burst cannot slip past the limit)
/// and gives it back unless its client authentication failed.
pub async fn limited<F, Fut>(
    st: &AppState,
    ip: IpAddr,
    origin: Origin,
    now: i64,
    headers: &HeaderMap,
    body: &Bytes,
    handler: F,
) -> Response
where
    F: FnOnce(ClientRequest) -> Fut,
    Fut: Future<Output = Handled>,
{
    // A detection's response may have blocked this address for a while.
    if let Some(left) = st.responses.tokens_blocked_for(ip, now) {
        st.audit
            .record_floodable(
                Event::new(EventKind::TokenRequestFailed, now)
                    .from(&origin)
                    .reason("blocked")
                    .detail(&format!("retry_after={left}")),
            )
            .await;
        let mut res = oauth_json_error(&OAuthError::new(
            ErrorCode::TemporarilyUnavailable,
            "requests from this address are refused for a while; retry later",
        ));
        *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        if let Ok(v) = HeaderValue::from_str(&left.to_string()) {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return res;
    }
    let address = format!("client-auth:{}", bucket(ip, st.ipv6_prefix));
    let slot = st.client_auth_limits.reserve(&address, now).await;
    if let d @ Decision::Limited { .. } = slot {
        st.audit
            .record_floodable(
                Event::new(EventKind::TokenRequestFailed, now)
                    .from(&origin)
                    .reason("client_auth_rate_limited"),
            )
            .await;
        let mut res = oauth_json_error(&OAuthError::new(
            ErrorCode::TemporarilyUnavailable,
            "too many failed client authentications from this address; retry later",
        ));
        *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        rate_limit_headers(&mut res, st, d);
        return res;
    }
    let (res, auth_failed) = match parse(st, ip, origin, now, headers, body, slot) {
        Ok(req) => handler(req).await,
        Err(handled) => *handled,
    };
    if !auth_failed {
        st.client_auth_limits.refund(&address).await;
    }
    res
}

fn parse(
    st: &AppState,
    ip: IpAddr,
    origin: Origin,
    now: i64,
    headers: &HeaderMap,
    body: &Bytes,
    slot: Decision,
) -> Result<ClientRequest, Box<Handled>> {
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
        return Err(Box::new((
            oauth_json_error(&OAuthError::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            )),
            false,
        )));
    }
    let params = Params::parse(body).map_err(|e| Box::new((oauth_json_error(&e), false)))?;
    // RFC 6749 §5.2: a client that tried the Authorization header (any scheme) gets a 401
    // with a challenge when its authentication fails.
    let header_attempted = headers.contains_key(header::AUTHORIZATION);
    let basic = match basic_credentials(headers) {
        Ok(b) => b,
        Err(e) => {
            let req = ClientRequest {
                params,
                basic: None,
                header_attempted,
                slot,
                origin,
            };
            return Err(Box::new(req.error(st, ip, now, &e)));
        }
    };
    Ok(ClientRequest {
        params,
        basic,
        header_attempted,
        slot,
        origin,
    })
}

impl ClientRequest {
    /// The answer for a failed request: `invalid_client` counts against the address (with
    /// the `RateLimit` headers and, for header attempts, a `Basic` challenge); other errors
    /// do not.
    pub fn error(&self, st: &AppState, ip: IpAddr, now: i64, e: &OAuthError) -> Handled {
        let _ = ip;
        let mut res = oauth_json_error(e);
        if e.code != ErrorCode::InvalidClient {
            return (res, false);
        }
        // The client id it claimed (cleaned and bounded like every event field), if any.
        let claimed = self.basic.as_ref().map(|b| b.id.clone()).or_else(|| {
            self.params
                .get("client_id", 256)
                .ok()
                .flatten()
                .map(str::to_owned)
        });
        let mut event = Event::new(EventKind::ClientAuthFailed, now)
            .from(&self.origin)
            .reason("invalid_client");
        // Only a well-formed client id is recorded: anything else may be a secret pasted in the
        // wrong field, or text made to look like other fields.
        if let Some(id) = claimed {
            event = match portcullis_core::ids::ClientId::parse(&id) {
                Some(id) => event.client(id),
                None => event.detail("claimed_client=malformed"),
            };
        }
        // Anyone can send wrong secrets (from many networks): floodable. `error` is not async,
        // so the recording (a limiter's lock, never I/O) runs as its own task.
        let audit = st.audit.clone();
        tokio::spawn(async move { audit.record_floodable(event).await });
        if self.header_attempted {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"portcullis\""),
            );
        }
        rate_limit_headers(&mut res, st, self.slot);
        (res, true)
    }

    /// A 429 for a client over its per-client quota, with its `RateLimit` headers.
    pub fn over_quota(st: &AppState, e: Option<&OAuthError>, retry_after: i64) -> Response {
        let mut res = match e {
            Some(e) => oauth_json_error(e),
            None => oauth_json_error(&OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "this client is over its request quota; retry later",
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
        res
    }
}
