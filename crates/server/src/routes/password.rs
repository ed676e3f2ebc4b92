//! `GET` and `POST /account/password`: the signed-in user changes their password, and chooses
//! whether to end their other sessions (ticked by default). The POST needs a same-origin
//! request and a token bound to the current session; the current password is checked under
//! the sign-in limits (a stolen session cannot guess its way to the password), and success
//! answers 303 to the sessions page, which shows what is left.

use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use portcullis_core::audit::{Event, EventKind};
use portcullis_core::model::{Session, User};
use portcullis_core::password::HashError;
use portcullis_core::password_change::{self, ChangeError, ChangeRequest, MAX_FIELD_BYTES};
use portcullis_core::secret::reveal;
use portcullis_guard::client_addr::ClientAddr;

use crate::audit::RequestOrigin;
use crate::cookies::{DEVICE, SESSION};
use crate::flow::{load_session, signed_in_form, store_failure};
use crate::respond::{self, page, redirect, with_cookie};
use crate::routes::login::{recognised_device, TOO_MANY_ATTEMPTS};
use crate::routes::sessions::signed_out;
use crate::state::{now, AppState};
use crate::throttle;

pub const PATH: &str = "/account/password";
/// Where a successful change lands: the sessions page, with a notice.
pub const DONE: &str = "/account/sessions?password=changed";

fn form(
    st: &AppState,
    status: StatusCode,
    session: &Session,
    user: &User,
    error: Option<&str>,
    end_others: bool,
) -> Response {
    let html = st.templates.render(
        "password.html",
        minijinja::context! {
            user_email => &user.email,
            csrf_token => st.session_csrf.token_for(session.id.as_str()),
            min_chars => st.password_policy.min_chars,
            max_chars => st.password_policy.max_chars,
            error => error,
            end_others => end_others,
        },
    );
    page(status, html, None)
}

pub async fn show(State(st): State<AppState>, headers: HeaderMap) -> Response {
    match load_session(&st, &headers, now()).await {
        Ok(Some((session, user))) => form(&st, StatusCode::OK, &session, &user, None, true),
        Ok(None) => signed_out(&st),
        Err(r) => r,
    }
}

pub async fn change(
    State(st): State<AppState>,
    Extension(ClientAddr(ip)): Extension<ClientAddr>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = now();
    let (session, user, params) =
        match signed_in_form(&st, &origin, &headers, &body, now, "password", PATH).await {
            Ok(f) => f,
            Err(r) => return r,
        };
    let field = |name: &str| params.get_text(name, MAX_FIELD_BYTES);
    let (current, new, confirm) = match (
        field("current_password"),
        field("new_password"),
        field("confirm_password"),
    ) {
        (Ok(Some(c)), Ok(Some(n)), Ok(Some(f))) if !c.is_empty() && !n.is_empty() => (c, n, f),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            return form(
                &st,
                StatusCode::BAD_REQUEST,
                &session,
                &user,
                Some(&capitalised(&e.description)),
                true,
            )
        }
        _ => {
            return form(
                &st,
                StatusCode::BAD_REQUEST,
                &session,
                &user,
                Some("Enter your current password and the new one twice."),
                true,
            )
        }
    };
    // A checkbox: present means yes. Anything but the one value it sends is a malformed form.
    let end_others = match params.get("end_others", 8) {
        Ok(None) => false,
        Ok(Some("yes")) => true,
        Ok(Some(_)) => {
            return form(
                &st,
                StatusCode::BAD_REQUEST,
                &session,
                &user,
                Some("The form was not understood. Please try again."),
                true,
            )
        }
        Err(e) => {
            return form(
                &st,
                StatusCode::BAD_REQUEST,
                &session,
                &user,
                Some(&capitalised(&e.description)),
                true,
            )
        }
    };
    let req = ChangeRequest {
        current,
        new,
        confirm,
        end_others,
    };
    let refuse = |status: StatusCode, e: &ChangeError| {
        let message = capitalised(&e.to_string());
        form(&st, status, &session, &user, Some(&message), end_others)
    };
    let new = match password_change::check_new(&req, &st.password_policy, &user) {
        Ok(n) => n,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, &e),
    };
    // The current password is a guess like any sign-in: the same limits count it, for this
    // account and address (or for this browser, when it is a recognised device).
    let device = match DEVICE.get(&headers) {
        Some(value) => recognised_device(&st, &user.email, &value, now).await,
        None => None,
    };
    let throttled = |retry_after: i64| {
        let mut res = form(
            &st,
            StatusCode::TOO_MANY_REQUESTS,
            &session,
            &user,
            Some(TOO_MANY_ATTEMPTS),
            end_others,
        );
        if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        res
    };
    let throttle_event = |reason: &str, retry_after: i64| {
        Event::new(EventKind::LoginThrottled, now)
            .from(&origin)
            .user(&user.id)
            .session(&session.id)
            .reason(reason)
            .detail(&format!("page=password retry_after={retry_after}"))
    };
    // A detection's block on this address covers this password check as well as sign-in.
    if let Some(left) = st
        .responses
        .blocked_for(ip, now)
        .filter(|_| device.is_none())
    {
        st.audit
            .record_floodable(throttle_event("blocked", left))
            .await;
        return throttled(left);
    }
    if let Some(wait) = st.responses.delay_for(ip, now) {
        tokio::time::sleep(wait).await;
    }
    let reservation = match st
        .login_limits
        .reserve(&user.email, ip, device.as_ref().map(|d| d.id.as_str()), now)
        .await
    {
        Ok(r) => r,
        Err(t) => {
            let event = throttle_event("rate_limited", t.retry_after);
            if st.login_limits.first_refusal(&user.email, ip, now).await {
                st.audit.record_floodable(event).await;
            } else {
                // Not written, but counted (suppressed, and in the metrics by kind).
                st.audit.suppress(&event);
            }
            return throttled(t.retry_after);
        }
    };
    let outcome = password_change::change(
        &*st.store,
        &st.hasher,
        &st.hash_key,
        &user,
        &session.id,
        &req,
        new,
        now,
    )
    .await;
    match outcome {
        Ok(password_change::Changed { ended, cookie }) => {
            st.login_limits.succeeded(reservation, &user.email).await;
            for id in &ended {
                st.audit.record(
                    Event::new(EventKind::SessionRevoked, now)
                        .from(&origin)
                        .user(&user.id)
                        .session(id)
                        .reason("password_change"),
                );
            }
            st.audit.record(
                Event::new(EventKind::PasswordChanged, now)
                    .from(&origin)
                    .user(&user.id)
                    .session(&session.id)
                    .detail(&format!(
                        "other_sessions_ended={} kept_other_sessions={}",
                        ended.len(),
                        !end_others
                    )),
            );
            // Device cookies are bound to the password hash, so the change retired every one
            // of them (none can exempt a browser from the sign-in limits any more); this
            // browser, which just proved the password, gets a fresh one.
            // This browser's session carries on under a new cookie: a copy of the old one
            // (the reason many change a password) no longer signs in.
            let res = with_cookie(
                redirect(DONE, true),
                SESSION.set(reveal(&cookie.value), st.lifetimes.session_absolute),
            );
            match st.store.user_by_id(&user.id).await {
                Ok(Some(fresh)) => {
                    let (value, _) = portcullis_core::device::issue(
                        &st.hash_key,
                        &fresh,
                        now,
                        throttle::DEVICE_COOKIE_LIFETIME,
                    );
                    with_cookie(res, DEVICE.set(&value, throttle::DEVICE_COOKIE_LIFETIME))
                }
                _ => res,
            }
        }
        Err(ChangeError::WrongPassword) => {
            if let Some(signal) = st.login_limits.failed(reservation, &user.email, now).await {
                st.audit.record(
                    Event::new(EventKind::LoginCredentialStuffing, now)
                        .from(&origin)
                        .reason("many_accounts_from_one_address")
                        .detail(&format!(
                            "address_bucket={} accounts={}",
                            signal.address, signal.accounts
                        )),
                );
            }
            st.audit.record(
                Event::new(EventKind::PasswordChangeFailed, now)
                    .from(&origin)
                    .user(&user.id)
                    .session(&session.id)
                    .reason("wrong_password"),
            );
            refuse(StatusCode::UNAUTHORIZED, &ChangeError::WrongPassword)
        }
        Err(e @ ChangeError::SessionEnded) => {
            st.login_limits.not_checked(reservation).await;
            respond::error_page(
                &st,
                StatusCode::CONFLICT,
                "Password not changed",
                &capitalised(&e.to_string()),
                None,
            )
        }
        Err(ChangeError::Store(e)) => {
            st.login_limits.not_checked(reservation).await;
            store_failure(&st, e)
        }
        Err(ChangeError::Hash(e)) => {
            st.login_limits.not_checked(reservation).await;
            if !matches!(e, HashError::Overloaded) {
                tracing::error!(error = %e, "password hashing failed");
            }
            respond::hashing_busy(&st)
        }
        Err(e @ (ChangeError::Mismatch | ChangeError::Policy(_) | ChangeError::Unchanged)) => {
            st.login_limits.not_checked(reservation).await;
            refuse(StatusCode::BAD_REQUEST, &e)
        }
    }
}

/// "the password ..." as a sentence.
fn capitalised(s: &str) -> String {
    let mut c = s.trim_end_matches('.').chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect::<String>() + ".",
        None => String::new(),
    }
}
