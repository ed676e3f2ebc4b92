//! The pending sign-in ("flow") and the browser session, as seen from requests, and the last
//! step every path shares: issuing the code.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use portcullis_core::authorize::response;
use portcullis_core::model::{Client, Flow, Session, User};
use portcullis_core::secret::{self, reveal, SecretKind};

use crate::cookies::{FLOW, SESSION};
use crate::respond::{self, with_cookie};
use crate::state::AppState;

/// The live flow named by the browser's flow cookie.
pub async fn load_flow(
    st: &AppState,
    headers: &HeaderMap,
    now: i64,
) -> Result<Option<Flow>, Response> {
    let Some(value) = FLOW.get(headers) else {
        return Ok(None);
    };
    let Some(hash) = secret::hash_presented(SecretKind::FlowCookie, &value, &st.hash_key) else {
        return Ok(None);
    };
    st.store
        .flow_by_hash(&hash, now)
        .await
        .map_err(|e| store_failure(st, e))
}

/// The browser's active session and its enabled user, if any.
pub async fn load_session(
    st: &AppState,
    headers: &HeaderMap,
    now: i64,
) -> Result<Option<(Session, User)>, Response> {
    let Some(value) = SESSION.get(headers) else {
        return Ok(None);
    };
    let Some(hash) = secret::hash_presented(SecretKind::SessionCookie, &value, &st.hash_key) else {
        return Ok(None);
    };
    let Some(session) = st
        .store
        .session_by_cookie_hash(&hash)
        .await
        .map_err(|e| store_failure(st, e))?
    else {
        return Ok(None);
    };
    if !session.is_active(now) {
        return Ok(None);
    }
    match st
        .store
        .user_by_id(&session.user_id)
        .await
        .map_err(|e| store_failure(st, e))?
    {
        Some(u) if !u.disabled => Ok(Some((session, u))),
        _ => Ok(None),
    }
}

/// The origin of a redirect URI, for the page's `form-action` (browsers apply it to the
/// redirect that follows a form post).
pub fn redirect_origin(redirect_uri: &str) -> Option<String> {
    url::Url::parse(redirect_uri)
        .ok()
        .map(|u| u.origin().ascii_serialization())
        .filter(|o| o != "null")
}

pub fn store_failure(st: &AppState, e: portcullis_core::store::StoreError) -> Response {
    tracing::error!(error = %e, "storage failure");
    respond::error_page(
        st,
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        "Please try again in a moment.",
        None,
    )
}

/// Consumes the flow and sends the browser back to the client with a code.
pub async fn finish(
    st: &AppState,
    flow: &Flow,
    client: &Client,
    session: &Session,
    user: &User,
    after_post: bool,
    now: i64,
) -> Response {
    // Single use: a second tab or a replayed form finds nothing.
    let taken = match take(st, flow, now).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    issue_code(st, &taken, client, session, user, after_post, now).await
}

/// Takes the flow out of the store (single use), or the page to show when it is gone.
pub async fn take(st: &AppState, flow: &Flow, now: i64) -> Result<Flow, Response> {
    match st.store.take_flow(&flow.cookie_hash, now).await {
        Ok(Some(f)) => Ok(f),
        Ok(None) => Err(respond::flow_expired(st)),
        Err(e) => Err(store_failure(st, e)),
    }
}

/// Issues the code for a flow already taken and sends the browser back to the client.
pub async fn issue_code(
    st: &AppState,
    taken: &Flow,
    client: &Client,
    session: &Session,
    user: &User,
    after_post: bool,
    now: i64,
) -> Response {
    let req = &taken.request;
    let (code, issued) = response::new_code(
        req,
        user,
        &session.id,
        session.auth_time,
        &st.hash_key,
        now,
        st.lifetimes.authorization_code,
    );
    if let Err(e) = st.store.insert_code(&code).await {
        return store_failure(st, e);
    }
    let _ = st.store.touch_session(&session.id, now).await;
    tracing::info!(event = "authorization.code_issued", client_id = %client.id, user_id = %user.id, session_id = %session.id);
    let location = response::code_redirect(
        &req.redirect_uri,
        reveal(&issued.value),
        req.state.as_deref(),
        &st.issuer,
    );
    with_cookie(respond::to_client(st, &location, after_post), FLOW.delete())
}

/// Consumes the flow and sends an error to the client.
pub async fn fail(
    st: &AppState,
    flow: &Flow,
    error: &portcullis_core::OAuthError,
    after_post: bool,
    now: i64,
) -> Response {
    let _ = st.store.take_flow(&flow.cookie_hash, now).await;
    let req = &flow.request;
    let location =
        response::error_redirect(&req.redirect_uri, req.state.as_deref(), error, &st.issuer);
    with_cookie(respond::to_client(st, &location, after_post), FLOW.delete())
}

/// The checks every form of the account pages shares, in order: a same-origin request, a
/// signed-in session (else a 303 to `back`, which shows the signed-out page), a well-formed
/// form, and the synchronizer token bound to that session (403 otherwise). A refusal is logged
/// as `csrf.refused` with `page` naming the page.
pub async fn signed_in_form(
    st: &AppState,
    origin: &portcullis_core::audit::Origin,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
    page: &'static str,
    back: &'static str,
) -> Result<(Session, User, portcullis_core::params::Params), Response> {
    if portcullis_guard::csrf::check_same_origin(headers, &st.issuer_origin).is_err() {
        return Err(refuse_csrf(st, origin, now, page, "cross_site", None).await);
    }
    let Some((session, user)) = load_session(st, headers, now).await? else {
        return Err(respond::redirect(back, true));
    };
    let params = portcullis_core::params::Params::parse(body).map_err(|e| {
        respond::error_page(
            st,
            StatusCode::BAD_REQUEST,
            "The form was not understood",
            &e.description,
            None,
        )
    })?;
    let submitted = params.get("csrf_token", 128).ok().flatten();
    if st
        .session_csrf
        .verify(session.id.as_str(), submitted)
        .is_err()
    {
        return Err(refuse_csrf(st, origin, now, page, "token", Some(&session)).await);
    }
    Ok((session, user, params))
}

/// The form posted to a page of the sign-in flow (sign-in, "Continue as"), once it carries
/// the flow's synchronizer token; else the refusal, recorded. A body that is not a
/// well-formed form (or repeats a parameter) carries no token: refused like a wrong one,
/// under its own reason.
pub async fn flow_form(
    st: &AppState,
    origin: &portcullis_core::audit::Origin,
    now: i64,
    page: &str,
    flow: &Flow,
    body: &[u8],
) -> Result<portcullis_core::params::Params, Response> {
    let form = portcullis_core::params::Params::parse(body).ok();
    let token = form
        .as_ref()
        .and_then(|f| f.get("csrf_token", 128).ok().flatten());
    let valid = portcullis_guard::csrf::check_token(token, &flow.csrf_token).is_ok();
    match form {
        Some(form) if valid => Ok(form),
        Some(_) => Err(refuse_csrf(st, origin, now, page, "token", None).await),
        None => Err(refuse_csrf(st, origin, now, page, "malformed", None).await),
    }
}

/// Refuses a form that failed a CSRF check (403): recorded as `csrf.refused`, `page` naming
/// the page and `reason` the check (`cross_site`: not same-origin; `token`: no valid
/// synchronizer token; `malformed`: a body that is not a well-formed form). Floodable: a flood of them is counted, not stored one by one.
pub async fn refuse_csrf(
    st: &AppState,
    origin: &portcullis_core::audit::Origin,
    now: i64,
    page: &str,
    reason: &str,
    session: Option<&Session>,
) -> Response {
    use portcullis_core::audit::{Event, EventKind};
    let e = Event::new(EventKind::CsrfRefused, now)
        .from(origin)
        .reason(reason)
        .detail(&format!("page={page}"));
    let e = match session {
        Some(s) => e.user(&s.user_id).session(&s.id),
        None => e,
    };
    st.audit.record_floodable(e).await;
    respond::csrf_refused(st)
}
