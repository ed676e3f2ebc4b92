//! `POST /token`: form body only, one client authentication method, RFC 6749 error bodies,
//! `Cache-Control: no-store`.

use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use portcullis_core::audit::{Event, EventKind, Origin};
use portcullis_core::grants::{self, GrantEvent};
use portcullis_core::model::GrantType;
use portcullis_guard::client_addr::ClientAddr;

use crate::audit::RequestOrigin;

use crate::client_request::{limited, ClientRequest, Handled};
use crate::respond::json_no_store;
use crate::state::{now, AppState};

pub async fn token(
    State(st): State<AppState>,
    Extension(ClientAddr(ip)): Extension<ClientAddr>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = now();
    limited(&st, ip, origin.clone(), now, &headers, &body, |req| {
        handle(&st, ip, &origin, req, now)
    })
    .await
}

async fn handle(
    st: &AppState,
    ip: std::net::IpAddr,
    origin: &Origin,
    req: ClientRequest,
    now: i64,
) -> Handled {
    let keys = st.keys.snapshot();
    let ctx = st.token_context(&keys.set, now);
    let outcome = grants::dispatch(&req.params, req.basic.as_ref(), &*st.store, &ctx).await;
    let client_id = outcome.client_id.as_deref().unwrap_or("");
    let mut subject: Option<(&str, &str)> = None;
    let base = |kind: EventKind| {
        let e = Event::new(kind, now).from(origin);
        if client_id.is_empty() {
            e
        } else {
            e.client(client_id)
        }
    };
    for ev in &outcome.events {
        match ev {
            GrantEvent::Subject {
                user_id,
                session_id,
            } => subject = Some((user_id, session_id)),
            // The holder of a spent code can replay it at will: floodable.
            GrantEvent::CodeReplayed => {
                st.audit
                    .record_floodable(base(EventKind::TokenCodeReplayed))
                    .await
            }
            GrantEvent::RefreshReuseDetected {
                family_id,
                session_id,
                user_id,
            } => {
                subject = Some((user_id, session_id));
                st.audit.record(
                    base(EventKind::TokenReuseDetected)
                        .user(user_id)
                        .session(session_id)
                        .reason("rotated_token_reused")
                        .detail(&format!("family_id={family_id}")),
                );
                // The same transaction ended the session.
                st.audit.record(
                    base(EventKind::SessionRevoked)
                        .user(user_id)
                        .session(session_id)
                        .reason("token_reuse"),
                );
            }
        }
    }
    // One event per answered request that named an allowed grant (client authentication
    // failures are recorded where they are counted).
    if let Some(grant) = outcome.grant {
        let kind = match (&outcome.result, grant) {
            (Ok(_), GrantType::RefreshToken) => EventKind::TokenRefreshed,
            (Ok(_), _) => EventKind::TokenIssued,
            (Err(_), GrantType::RefreshToken) => EventKind::TokenRefreshFailed,
            (Err(_), _) => EventKind::TokenRequestFailed,
        };
        let mut e = base(kind).detail(&format!("grant_type={}", grant.as_str()));
        if let Some((user_id, session_id)) = subject {
            e = e.user(user_id).session(session_id);
        }
        match &outcome.result {
            // A failure (a made-up, dead or replayed code or refresh token, a refused scope) is
            // one anyone holding a public client's id, or a dead token, can repeat at will.
            Err(err) => st.audit.record_floodable(e.reason(err.code.as_str())).await,
            Ok(_) => st.audit.record(e),
        }
    }
    if let Some(retry_after) = outcome.over_quota {
        st.audit
            .record_floodable(base(EventKind::TokenRequestFailed).reason("quota_exceeded"))
            .await;
        return (
            ClientRequest::over_quota(st, outcome.result.as_ref().err(), retry_after),
            false,
        );
    }
    match outcome.result {
        Ok(tokens) => (json_no_store(StatusCode::OK, &tokens), false),
        Err(e) => req.error(st, ip, now, &e),
    }
}
