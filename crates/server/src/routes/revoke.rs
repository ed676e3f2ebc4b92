//! `POST /revoke` (RFC 7009): an authenticated client (a public one by `client_id` alone)
//! revokes one of its own tokens. The answer is `200` with an empty body whether or not the
//! token was found, so the endpoint does not tell which tokens exist.

use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use portcullis_core::audit::{Event, EventKind};
use portcullis_core::client_auth;
use portcullis_core::grants::ClientQuota;
use portcullis_core::revocation::{self, Revoked};
use portcullis_guard::client_addr::ClientAddr;

use crate::audit::RequestOrigin;
use crate::client_request::{limited, ClientRequest, Handled};
use crate::state::{now, AppState};

pub async fn revoke(
    State(st): State<AppState>,
    Extension(ClientAddr(ip)): Extension<ClientAddr>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = now();
    limited(&st, ip, origin.clone(), now, &headers, &body, |req| {
        handle(&st, ip, req, now)
    })
    .await
}

async fn handle(st: &AppState, ip: std::net::IpAddr, req: ClientRequest, now: i64) -> Handled {
    let client =
        match client_auth::authenticate(&req.params, req.basic.as_ref(), &*st.store, &st.hash_key)
            .await
        {
            Ok(c) => c,
            Err(e) => return req.error(st, ip, now, &e),
        };
    if let Err(retry_after) = st.client_quota.admit(&client.id) {
        return (ClientRequest::over_quota(st, None, retry_after), false);
    }
    let keys = st.keys.snapshot();
    let ctx = st.token_context(&keys.set, now);
    match revocation::revoke(&req.params, &client, &*st.store, &ctx).await {
        Ok(what) => {
            match what {
                Revoked::RefreshFamily { family_id } => st.audit.record(
                    Event::new(EventKind::TokenRevoked, now)
                        .from(&req.origin)
                        .client(&client.id)
                        .reason("client_request")
                        .detail(&format!("token_type=refresh_token family_id={family_id}")),
                ),
                Revoked::AccessToken { jti } => st.audit.record(
                    Event::new(EventKind::TokenRevoked, now)
                        .from(&req.origin)
                        .client(&client.id)
                        .reason("client_request")
                        .detail(&format!("token_type=access_token jti={jti}")),
                ),
                Revoked::Nothing => {}
            }
            let mut res = StatusCode::OK.into_response();
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            (res, false)
        }
        Err(e) => req.error(st, ip, now, &e),
    }
}
