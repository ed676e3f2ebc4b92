//! `GET` and `POST /logout` (OpenID Connect RP-Initiated Logout 1.0) and `GET /logout/resume`.
//!
//! A request that proves nothing never ends a session: without a valid `id_token_hint` the
//! user gets a confirmation page whose form posts back here with a synchronizer token bound to
//! the session. A valid hint ends its session at once (or asks, when another user is signed
//! in). The client and the post-logout redirect are resolved before anything ends, so a refused
//! request (400, our own page) leaves the session as it was.
//!
//! An app sends the browser here cross-site, so the `SameSite=Strict` session cookie may have
//! been withheld: when no session is visible on such a request, the answer is a page whose meta
//! refresh re-enters at `/logout/resume`, a same-site step where the cookie is sent.

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use portcullis_core::audit::{Event, EventKind, Origin};
use portcullis_core::error::ErrorCode;
use portcullis_core::ids::UserId;
use portcullis_core::logout::{self, Decision, Ending, IdTokenHint, LogoutRequest, Target};
use portcullis_core::model::{Session, User};
use portcullis_core::params::Params;
use portcullis_core::OAuthError;
use portcullis_guard::csrf;

use crate::audit::RequestOrigin;
use crate::cookies::SESSION;
use crate::flow::{self, load_session, redirect_origin, store_failure};
use crate::respond::{self, page, with_cookie};
use crate::state::{now, AppState};

/// Where the same-site step re-enters.
pub const RESUME_PATH: &str = "/logout/resume";

/// Which door a request came through.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// `/logout`, usually a cross-site navigation from an app.
    First,
    /// `/logout/resume`, reached from our own hop page.
    Resume,
}

/// `GET /logout`.
pub async fn logout(
    State(st): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Response {
    from_query(&st, &origin, &headers, &uri, Entry::First).await
}

/// The `GET` forms: the request from the query string.
async fn from_query(
    st: &AppState,
    origin: &Origin,
    headers: &HeaderMap,
    uri: &axum::http::Uri,
    entry: Entry,
) -> Response {
    let raw = uri.query().unwrap_or("").as_bytes();
    match parse(st, raw) {
        Ok((req, hint)) => rp_initiated(st, origin, headers, &req, hint, entry, false).await,
        Err(e) => refused(st, &e),
    }
}

/// `GET /logout/resume`: the same request after the same-site step.
pub async fn resume(
    State(st): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Response {
    from_query(&st, &origin, &headers, &uri, Entry::Resume).await
}

/// `POST /logout`: our confirmation form (same-origin, with the session's synchronizer token),
/// or an app's form post carrying a valid `id_token_hint` and no `csrf_token`, which is handled
/// exactly like the `GET` with that hint. Anything else must be a same-origin post and, when
/// the browser has a session, carry that session's token: else 403 and nothing ends.
pub async fn logout_post(
    State(st): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = now();
    if !is_form(&headers) {
        let e = OAuthError::invalid_request("the body must be application/x-www-form-urlencoded");
        return refused(&st, &e);
    }
    let params = match Params::parse(&body) {
        Ok(p) => p,
        Err(e) => return refused(&st, &e),
    };
    let (req, hint) = match parse_params(&st, &params) {
        Ok(v) => v,
        Err(e) => return refused(&st, &e),
    };
    if !params.contains("csrf_token") && hint.is_some() {
        return rp_initiated(&st, &origin, &headers, &req, hint, Entry::First, true).await;
    }
    if csrf::check_same_origin(&headers, &st.issuer_origin).is_err() {
        return flow::refuse_csrf(&st, &origin, now, "logout", "cross_site", None).await;
    }
    let session = match load_session(&st, &headers, now).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Some((s, _)) = &session {
        let submitted = params.get("csrf_token", 128).ok().flatten();
        if st.session_csrf.verify(s.id.as_str(), submitted).is_err() {
            return flow::refuse_csrf(&st, &origin, now, "logout", "token", Some(s)).await;
        }
    }
    let target = match logout::resolve(&req, hint.as_ref(), &*st.store).await {
        Ok(t) => t,
        Err(e) => return refused(&st, &e),
    };
    let browser = session.as_ref().map(|(s, u)| (&s.id, &u.id));
    match logout::decide(hint.as_ref(), browser, true) {
        Decision::End(ending) => {
            let user = session.as_ref().map(|(_, u)| &u.id);
            end_and_leave(&st, &origin, user, &headers, &ending, &target, true, now).await
        }
        Decision::NothingToEnd | Decision::Confirm => leave(&st, &headers, &target, true, true),
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

fn parse(st: &AppState, raw: &[u8]) -> Result<(LogoutRequest, Option<IdTokenHint>), OAuthError> {
    parse_params(st, &Params::parse(raw)?)
}

/// The request and its hint, if the hint is valid. An invalid hint (forged, `alg: none`, an
/// access token, another issuer's) counts as no hint.
fn parse_params(
    st: &AppState,
    params: &Params,
) -> Result<(LogoutRequest, Option<IdTokenHint>), OAuthError> {
    let req = LogoutRequest::parse(params)?;
    let hint = match req.id_token_hint.as_deref() {
        None => None,
        Some(t) => match logout::verify_hint(t, &st.keys.snapshot().set, &st.issuer) {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::info!(event = "logout.hint_refused", reason = %e, "id_token_hint ignored");
                None
            }
        },
    };
    Ok((req, hint))
}

/// An app's request (`GET`, or a form post with a valid hint).
async fn rp_initiated(
    st: &AppState,
    origin: &Origin,
    headers: &HeaderMap,
    req: &LogoutRequest,
    hint: Option<IdTokenHint>,
    entry: Entry,
    after_post: bool,
) -> Response {
    let now = now();
    let target = match logout::resolve(req, hint.as_ref(), &*st.store).await {
        Ok(t) => t,
        Err(e) => return refused(st, &e),
    };
    let session = match load_session(st, headers, now).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if session.is_none() && cookie_may_be_withheld(entry, headers) {
        return hop(st, req);
    }
    let browser = session.as_ref().map(|(s, u)| (&s.id, &u.id));
    match (logout::decide(hint.as_ref(), browser, false), &session) {
        (Decision::Confirm, Some((s, u))) => confirm_page(st, req, &target, hint.is_some(), s, u),
        (Decision::End(ending), _) => {
            let user = session.as_ref().map(|(_, u)| &u.id);
            end_and_leave(st, origin, user, headers, &ending, &target, after_post, now).await
        }
        // Without a hint nothing proves the app asked: no automatic redirect, only a link.
        (Decision::NothingToEnd | Decision::Confirm, _) => {
            leave(st, headers, &target, hint.is_some(), after_post)
        }
    }
}

/// Could the browser have withheld its `SameSite=Strict` session cookie? On `/logout`, yes
/// unless `Sec-Fetch-Site` says the request is same-site (or user-initiated); on the resume
/// path only when it says cross-site (so a browser without the header cannot loop).
fn cookie_may_be_withheld(entry: Entry, headers: &HeaderMap) -> bool {
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    match entry {
        Entry::First => !matches!(site, Some("same-origin" | "same-site" | "none")),
        Entry::Resume => site == Some("cross-site"),
    }
}

/// The same-site step: a page of ours that re-enters at [`RESUME_PATH`] with the same
/// parameters (only the known ones, re-encoded).
fn hop(st: &AppState, req: &LogoutRequest) -> Response {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    let pairs = [
        ("id_token_hint", req.id_token_hint.as_deref()),
        ("client_id", req.client_id.as_ref().map(|c| c.as_str())),
        ("logout_hint", req.logout_hint.as_deref()),
        (
            "post_logout_redirect_uri",
            req.post_logout_redirect_uri.as_deref(),
        ),
        ("state", req.state.as_deref()),
    ];
    for (k, v) in pairs {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    let query = q.finish();
    let location = if query.is_empty() {
        RESUME_PATH.to_owned()
    } else {
        format!("{RESUME_PATH}?{query}")
    };
    let html = st.templates.render(
        "logout_hop.html",
        minijinja::context! { location => location },
    );
    page(StatusCode::OK, html, None)
}

/// "Sign out?": a form posting back with the session's synchronizer token, the identified
/// client and the (already checked) redirect.
fn confirm_page(
    st: &AppState,
    req: &LogoutRequest,
    target: &Target,
    other_user: bool,
    session: &Session,
    user: &User,
) -> Response {
    let redirect = &target.redirect;
    tracing::info!(event = "logout.confirmation_shown", session_id = %session.id, other_user);
    let html = st.templates.render(
        "logout.html",
        minijinja::context! {
            user_email => &user.email,
            other_user => other_user,
            client_name => target.client.as_ref().map(|c| c.name.as_str()),
            client_id => target.client.as_ref().map(|c| c.id.as_str()),
            post_logout_redirect_uri => redirect.as_ref().and(req.post_logout_redirect_uri.as_deref()),
            state => redirect.as_ref().and(req.state.as_deref()),
            csrf_token => st.session_csrf.token_for(session.id.as_str()),
        },
    );
    page(
        StatusCode::OK,
        html,
        redirect.as_deref().and_then(redirect_origin).as_deref(),
    )
}

/// Ends the sessions, then leaves.
#[allow(clippy::too_many_arguments)]
async fn end_and_leave(
    st: &AppState,
    origin: &Origin,
    user: Option<&UserId>,
    headers: &HeaderMap,
    ending: &Ending,
    target: &Target,
    after_post: bool,
    now: i64,
) -> Response {
    match logout::end(&*st.store, ending, now).await {
        Ok(n) => {
            let mut e = Event::new(EventKind::Logout, now)
                .from(origin)
                .detail(&format!("sessions_ended={n}"));
            if let Some(c) = &target.client {
                e = e.client(&c.id);
            }
            if let Some(s) = &ending.browser {
                e = e.session(s);
            }
            if let Some(u) = user {
                e = e.user(u);
            }
            st.audit.record(e);
        }
        Err(e) => return store_failure(st, e),
    }
    leave(st, headers, target, true, after_post)
}

/// The answer once nothing (more) is to be ended: the app's post-logout redirect (when
/// `redirect` allows it) or our "signed out" page, expiring the session cookie if the browser
/// sent one (with the attributes it was set with).
fn leave(
    st: &AppState,
    headers: &HeaderMap,
    target: &Target,
    redirect: bool,
    after_post: bool,
) -> Response {
    let res = match (&target.redirect, redirect) {
        (Some(location), true) => respond::to_client(st, location, after_post),
        (location, _) => {
            let html = st.templates.render(
                "signed_out.html",
                minijinja::context! {
                    location => location,
                    client_name => target.client.as_ref().map(|c| c.name.as_str()).unwrap_or("the application"),
                },
            );
            page(StatusCode::OK, html, None)
        }
    };
    if SESSION.get(headers).is_some() {
        with_cookie(res, SESSION.delete())
    } else {
        res
    }
}

/// Our own error page for a refused request: never a redirect, nothing ended.
fn refused(st: &AppState, e: &OAuthError) -> Response {
    tracing::info!(event = "logout.refused", error = e.code.as_str(), detail = e.detail.as_deref().unwrap_or(""), description = %e.description);
    let status = match e.code {
        ErrorCode::ServerError | ErrorCode::TemporarilyUnavailable => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::BAD_REQUEST,
    };
    respond::error_page(
        st,
        status,
        "This sign-out request cannot be completed",
        &e.description,
        Some(e.code.as_str()),
    )
}
