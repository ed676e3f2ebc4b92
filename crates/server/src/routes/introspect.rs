//! `POST /introspect` (RFC 7662): a confidential client asks about its own tokens, an API
//! (by its audience and an API secret) about access tokens naming it. Public clients are
//! refused. Dead tokens and tokens the caller may not see get `{"active": false}`.

use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use portcullis_core::client_auth::{self, Caller};
use portcullis_core::grants::ClientQuota;
use portcullis_core::introspection;
use portcullis_guard::client_addr::ClientAddr;

use crate::audit::RequestOrigin;
use crate::client_request::{limited, ClientRequest, Handled};
use crate::respond::json_no_store;
use crate::state::{now, AppState};

pub async fn introspect(
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
    let caller = match client_auth::authenticate_caller(
        &req.params,
        req.basic.as_ref(),
        &*st.store,
        &st.hash_key,
    )
    .await
    {
        Ok(c) => c,
        Err(e) => return req.error(st, ip, now, &e),
    };
    let admitted = match &caller {
        Caller::Client(client) => st.client_quota.admit(&client.id),
        Caller::Api(api) => st.client_quota.admit_key(&format!("api:{}", api.audience)),
    };
    if let Err(retry_after) = admitted {
        return (ClientRequest::over_quota(st, None, retry_after), false);
    }
    let keys = st.keys.snapshot();
    let ctx = st.token_context(&keys.set, now);
    match introspection::introspect(&req.params, &caller, &*st.store, &ctx).await {
        Ok(answer) => (json_no_store(StatusCode::OK, &answer), false),
        Err(e) => req.error(st, ip, now, &e),
    }
}
