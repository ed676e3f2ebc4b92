//! `GET` and `POST /account/sessions`: the signed-in user sees their own sessions (device,
//! address, when it signed in, last activity) and ends one, all others, or all. Each POST
//! needs a same-origin request and a token bound to the current session, and answers 303.
//! Ending a session revokes its session-bound refresh tokens with it.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use portcullis_core::audit::{Event, EventKind};
use portcullis_core::ids::SessionId;
use portcullis_core::model::Session;

use crate::audit::RequestOrigin;
use crate::cookies::SESSION;
use crate::flow::{load_session, signed_in_form, store_failure};
use crate::respond::{self, page, redirect, with_cookie};
use crate::state::{now, AppState};

const PATH: &str = "/account/sessions";

/// Unix seconds as `YYYY-MM-DD HH:MM UTC` (the page has no script to localise it).
fn when(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute] UTC"
            ))
            .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

fn row(s: &Session, current: &SessionId) -> minijinja::Value {
    minijinja::context! {
        id => s.id.as_str(),
        device => s.user_agent.as_deref().unwrap_or("Unknown device"),
        address => s.address.as_deref().unwrap_or("unknown"),
        created => when(s.created_at),
        last_active => when(s.last_seen_at),
        current => &s.id == current,
    }
}

pub async fn list(
    State(st): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let now = now();
    let (session, user) = match load_session(&st, &headers, now).await {
        Ok(Some(su)) => su,
        Ok(None) => return signed_out(&st),
        Err(r) => return r,
    };
    let sessions = match st.store.list_sessions(&user.id, now).await {
        Ok(l) => l,
        Err(e) => return store_failure(&st, e),
    };
    let rows: Vec<minijinja::Value> = sessions.iter().map(|s| row(s, &session.id)).collect();
    let html = st.templates.render(
        "sessions.html",
        minijinja::context! {
            user_email => &user.email,
            sessions => rows,
            csrf_token => st.session_csrf.token_for(session.id.as_str()),
            // Set by the password page's redirect; static text, so a forged link can only
            // show a notice that is true of some past change or none.
            password_changed => query.as_deref() == Some("password=changed"),
        },
    );
    page(StatusCode::OK, html, None)
}

/// The page a signed-out browser gets for an account page.
pub(crate) fn signed_out(st: &AppState) -> Response {
    let html = st
        .templates
        .render("signed_out.html", minijinja::context! {});
    page(StatusCode::OK, html, None)
}

pub async fn end(
    State(st): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = now();
    let (session, user, params) =
        match signed_in_form(&st, &origin, &headers, &body, now, "sessions", PATH).await {
            Ok(f) => f,
            Err(r) => return r,
        };
    let which = match params.require("end", 64) {
        Ok(w) => w.to_owned(),
        Err(e) => return respond::oauth_error_page(&st, &e),
    };
    let (ended, this_one) = match which.as_str() {
        "others" => match st
            .store
            .revoke_user_sessions(&user.id, Some(&session.id), now)
            .await
        {
            Ok(ids) => (ids, false),
            Err(e) => return store_failure(&st, e),
        },
        "all" => match st.store.revoke_user_sessions(&user.id, None, now).await {
            Ok(ids) => (ids, true),
            Err(e) => return store_failure(&st, e),
        },
        id => {
            // Only one of the user's own sessions: another user's id is refused like a
            // malformed one, without saying whether it exists.
            let Some(id) = SessionId::parse(id) else {
                return bad_session(&st);
            };
            match st.store.session_by_id(&id).await {
                Ok(Some(s)) if s.user_id == user.id => {}
                Ok(_) => return bad_session(&st),
                Err(e) => return store_failure(&st, e),
            }
            if let Err(e) = st.store.revoke_session(&id, now).await {
                return store_failure(&st, e);
            }
            let this_one = id == session.id;
            (vec![id], this_one)
        }
    };
    for id in &ended {
        st.audit.record(
            Event::new(EventKind::SessionRevoked, now)
                .from(&origin)
                .user(&user.id)
                .session(id)
                .reason("user"),
        );
    }
    let res = redirect(PATH, true);
    if this_one {
        with_cookie(res, SESSION.delete())
    } else {
        res
    }
}

fn bad_session(st: &AppState) -> Response {
    respond::error_page(
        st,
        StatusCode::BAD_REQUEST,
        "No such session",
        "That session is not one of yours, or it has already ended.",
        None,
    )
}
