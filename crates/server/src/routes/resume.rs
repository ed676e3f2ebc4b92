//! `GET /authorize/resume` (after the same-site hop) and `POST /authorize/continue` (the
//! "Continue as" button).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use portcullis_core::authorize::decide::{self, Next};
use portcullis_core::model::{Client, Flow};
use portcullis_guard::csrf;

use crate::audit::RequestOrigin;
use crate::flow::{self, load_flow, load_session, redirect_origin, store_failure};
use crate::respond::{self, page};
use crate::state::{now, AppState};

async fn client_of(st: &AppState, flow: &Flow) -> Result<Client, Response> {
    match st.store.client_by_id(&flow.request.client_id).await {
        Ok(Some(c)) if !c.disabled => Ok(c),
        Ok(_) => Err(respond::error_page(
            st,
            StatusCode::BAD_REQUEST,
            "Application unavailable",
            "This application has been disabled.",
            None,
        )),
        Err(e) => Err(store_failure(st, e)),
    }
}

/// The login form for `flow`.
pub fn login_page(
    st: &AppState,
    flow: &Flow,
    client: &Client,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let html = st.templates.render(
        "login.html",
        minijinja::context! {
            client_name => &client.name,
            csrf_token => &flow.csrf_token,
            login_hint => flow.request.login_hint.as_deref().unwrap_or(""),
            error => error,
            offline => portcullis_core::scope::is_offline(&flow.request.scope),
        },
    );
    page(
        status,
        html,
        redirect_origin(&flow.request.redirect_uri).as_deref(),
    )
}

pub async fn resume(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let now = now();
    let flow = match load_flow(&st, &headers, now).await {
        Ok(Some(f)) => f,
        Ok(None) => return respond::flow_expired(&st),
        Err(r) => return r,
    };
    let client = match client_of(&st, &flow).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let session = match load_session(&st, &headers, now).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match decide::next(
        &flow.request,
        &client,
        session.as_ref().map(|(s, u)| (s, u)),
        now,
    ) {
        Next::IssueCode => match &session {
            Some((s, u)) => flow::finish(&st, &flow, &client, s, u, false, now).await,
            None => login_page(&st, &flow, &client, StatusCode::OK, None),
        },
        Next::ConfirmContinue => {
            let email = session
                .as_ref()
                .map(|(_, u)| u.email.clone())
                .unwrap_or_default();
            let html = st.templates.render(
                "continue.html",
                minijinja::context! {
                    client_name => &client.name,
                    user_email => email,
                    csrf_token => &flow.csrf_token,
                    offline => portcullis_core::scope::is_offline(&flow.request.scope),
                },
            );
            page(
                StatusCode::OK,
                html,
                redirect_origin(&flow.request.redirect_uri).as_deref(),
            )
        }
        Next::Login => login_page(&st, &flow, &client, StatusCode::OK, None),
        Next::Fail(e) => flow::fail(&st, &flow, &e, false, now).await,
    }
}

pub async fn continue_as(
    State(st): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = now();
    if csrf::check_same_origin(&headers, &st.issuer_origin).is_err() {
        return flow::refuse_csrf(&st, &origin, now, "continue", "cross_site", None).await;
    }
    let flow = match load_flow(&st, &headers, now).await {
        Ok(Some(f)) => f,
        Ok(None) => return respond::flow_expired(&st),
        Err(r) => return r,
    };
    let form = match flow::flow_form(&st, &origin, now, "continue", &flow, &body).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let client = match client_of(&st, &flow).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let action = form.get("action", 16).ok().flatten();
    let session = match load_session(&st, &headers, now).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match (action, session) {
        (Some("continue"), Some((s, u))) => {
            // The request's own rules still apply (max_age, prompt=login).
            match decide::next(&flow.request, &client, Some((&s, &u)), now) {
                Next::Login => login_page(&st, &flow, &client, StatusCode::OK, None),
                Next::Fail(e) => flow::fail(&st, &flow, &e, true, now).await,
                Next::IssueCode | Next::ConfirmContinue => {
                    flow::finish(&st, &flow, &client, &s, &u, true, now).await
                }
            }
        }
        _ => login_page(&st, &flow, &client, StatusCode::OK, None),
    }
}
