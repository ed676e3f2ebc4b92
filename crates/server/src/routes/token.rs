//! `POST /token`: form body only, one client authentication method, RFC 6749 error bodies,
//! `Cache-Control: no-store`.

use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use portcullis_core::grants::{self, GrantEvent};
use portcullis_guard::client_addr::ClientAddr;

use crate::client_request::{limited, ClientRequest, Handled};
use crate::respond::json_no_store;
use crate::state::{now, AppState};

pub async fn token(
    State(st): State<AppState>,
    Extension(ClientAddr(ip)): Extension<ClientAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = now();
    limited(&st, ip, now, &headers, &body, |req| {
        handle(&st, ip, req, now)
    })
    .await
}

async fn handle(st: &AppState, ip: std::net::IpAddr, req: ClientRequest, now: i64) -> Handled {
    let keys = st.keys.snapshot();
    let ctx = st.token_context(&keys.set, now);
    let outcome = grants::dispatch(&req.params, req.basic.as_ref(), &*st.store, &ctx).await;
    let client_id = outcome.client_id.as_deref().unwrap_or("");
    for ev in &outcome.events {
        match ev {
            GrantEvent::CodeReplayed => {
                tracing::warn!(event = "token.code_replayed", client_id);
            }
            GrantEvent::RefreshReuseDetected {
                family_id,
                session_id,
                user_id,
            } => {
                tracing::warn!(event = "token.reuse_detected", client_id, %family_id, %session_id, %user_id);
            }
        }
    }
    if let Some(retry_after) = outcome.over_quota {
        tracing::warn!(event = "token.quota_exceeded", client_id);
        return (
            ClientRequest::over_quota(st, outcome.result.as_ref().err(), retry_after),
            false,
        );
    }
    match outcome.result {
        Ok(tokens) => (json_no_store(StatusCode::OK, &tokens), false),
        Err(e) => req.error(st, ip, &e),
    }
}
