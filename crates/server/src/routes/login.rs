//! `POST /login`: CSRF (same-origin and synchronizer token), then the password check. Every
//! failure renders the same page with "Invalid credentials"; success starts a new session (a new
//! id at every sign-in) and answers 303 to the client.

use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use portcullis_core::audit::{Event, EventKind};
use portcullis_core::login::{self, LoginError};
use portcullis_core::password::HashError;
use portcullis_core::secret::reveal;
use portcullis_guard::client_addr::ClientAddr;
use portcullis_guard::csrf;

use crate::audit::RequestOrigin;
use crate::cookies::{DEVICE, SESSION};
use crate::flow::{self, load_flow, load_session, store_failure};
use crate::respond::{self, with_cookie};
use crate::routes::resume::login_page;
use crate::state::{now, AppState};
use crate::throttle;

/// The one message every failed sign-in gets.
pub const INVALID_CREDENTIALS: &str = "Invalid credentials";
/// The one message every throttled sign-in gets, known account or not.
pub const TOO_MANY_ATTEMPTS: &str = "Too many login attempts";

pub async fn login(
    State(st): State<AppState>,
    Extension(ClientAddr(ip)): Extension<ClientAddr>,
    RequestOrigin(req_origin): RequestOrigin,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = now();
    if csrf::check_same_origin(&headers, &st.issuer_origin).is_err() {
        return flow::refuse_csrf(&st, &req_origin, now, "login", "cross_site", None).await;
    }
    let flow = match load_flow(&st, &headers, now).await {
        Ok(Some(f)) => f,
        Ok(None) => return respond::flow_expired(&st),
        Err(r) => return r,
    };
    let form = match flow::flow_form(&st, &req_origin, now, "login", &flow, &body).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let client = match st.store.client_by_id(&flow.request.client_id).await {
        Ok(Some(c)) if !c.disabled => c,
        Ok(_) => return respond::flow_expired(&st),
        Err(e) => return store_failure(&st, e),
    };
    let email = form.get_text("email", 320).ok().flatten().unwrap_or("");
    let password = form.get_text("password", 1024).ok().flatten().unwrap_or("");
    // A device cookie counts only for the account it was issued for (looked up only when the
    // browser sends one, so the usual path reads nothing before the limiter).
    let device = match DEVICE.get(&headers) {
        Some(value) => recognised_device(&st, email, &value, now).await,
        None => None,
    };
    // A detection's response for this address: refused for a while (unless this browser is
    // a recognised device of the account), or slowed down.
    if let Some(left) = st
        .responses
        .blocked_for(ip, now)
        .filter(|_| device.is_none())
    {
        st.audit
            .record_floodable(
                Event::new(EventKind::LoginThrottled, now)
                    .from(&req_origin)
                    .client(&client.id)
                    .reason("blocked")
                    .detail(&format!("retry_after={left}")),
            )
            .await;
        return throttled(&st, &flow, &client, left);
    }
    if let Some(wait) = st.responses.delay_for(ip, now) {
        tokio::time::sleep(wait).await;
    }
    // The attempt is counted before the password is checked (no race lets extra guesses in).
    let reservation = match st
        .login_limits
        .reserve(email, ip, device.as_ref().map(|d| d.id.as_str()), now)
        .await
    {
        Ok(r) => r,
        Err(t) => {
            // One event per account, address and window: a flood of refusals is one line.
            // And at most one per network and minute: a throttled address typing a new
            // e-mail each time must not store one event per request.
            let event = Event::new(EventKind::LoginThrottled, now)
                .from(&req_origin)
                .client(&client.id)
                .reason("rate_limited")
                .detail(&format!(
                    "retry_after={} account={}",
                    t.retry_after,
                    st.login_limits.account_key(email)
                ));
            if st.login_limits.first_refusal(email, ip, now).await {
                st.audit.record_floodable(event).await;
            } else {
                // Not written, but counted (suppressed, and in the metrics by kind).
                st.audit.suppress(&event);
            }
            return throttled(&st, &flow, &client, t.retry_after);
        }
    };
    let user = match login::verify_credentials(&*st.store, &st.hasher, email, password).await {
        Ok(u) => {
            st.login_limits.succeeded(reservation, email).await;
            u
        }
        Err(LoginError::Failed(reason, user_id)) => {
            if let Some(signal) = st.login_limits.failed(reservation, email, now).await {
                st.audit.record(
                    Event::new(EventKind::LoginCredentialStuffing, now)
                        .from(&req_origin)
                        .client(&client.id)
                        .reason("many_accounts_from_one_address")
                        .detail(&format!(
                            "address_bucket={} accounts={}",
                            signal.address, signal.accounts
                        )),
                );
            }
            // The account key (a keyed hash of the typed e-mail) groups failures per account,
            // known or not, without storing what was typed.
            let mut e = Event::new(EventKind::LoginFailed, now)
                .from(&req_origin)
                .client(&client.id)
                .reason(reason.as_str())
                .detail(&format!("account={}", st.login_limits.account_key(email)));
            if let Some(id) = user_id {
                e = e.user(id);
            }
            st.audit.record(e);
            return login_page(
                &st,
                &flow,
                &client,
                StatusCode::UNAUTHORIZED,
                Some(INVALID_CREDENTIALS),
            );
        }
        Err(LoginError::Store(e)) => {
            st.login_limits.not_checked(reservation).await;
            return store_failure(&st, e);
        }
        Err(LoginError::Hash(e)) => {
            // Overloaded: the bounded hashing queue is full. Nothing was checked, so nothing
            // counts; the browser is told when to try again.
            st.login_limits.not_checked(reservation).await;
            if matches!(e, HashError::Overloaded) {
                tracing::warn!(event = "login.overloaded", client = %ip);
            } else {
                tracing::error!(error = %e, "password check failed");
            }
            return respond::hashing_busy(&st);
        }
    };
    // The flow is taken first (single use): a double-submitted form finds it gone and changes
    // nothing, rather than ending the session the first submission started.
    let taken = match flow::take(&st, &flow, now).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    // No fixation: whatever session this browser had ends, and a new one starts.
    if let Ok(Some((old, old_user))) = load_session(&st, &headers, now).await {
        if matches!(st.store.revoke_session(&old.id, now).await, Ok(true)) {
            st.audit.record(
                Event::new(EventKind::SessionRevoked, now)
                    .from(&req_origin)
                    .user(&old_user.id)
                    .session(&old.id)
                    .reason("new_sign_in"),
            );
        }
    }
    let origin = login::SessionOrigin::new(
        headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
        Some(ip.to_string()),
    );
    let (session, cookie) = login::new_session(
        &user,
        &st.hash_key,
        now,
        &st.lifetimes.session_policy(),
        origin,
    );
    match st.store.insert_session(&session).await {
        Ok(true) => {}
        // The password changed (or the account was disabled) while it was being checked: the
        // sign-in used a password that is no longer the account's.
        Ok(false) => {
            st.audit.record(
                Event::new(EventKind::LoginFailed, now)
                    .from(&req_origin)
                    .client(&client.id)
                    .user(&user.id)
                    .reason("password_changed_meanwhile"),
            );
            return login_page(
                &st,
                &taken,
                &client,
                StatusCode::UNAUTHORIZED,
                Some(INVALID_CREDENTIALS),
            );
        }
        Err(e) => return store_failure(&st, e),
    }
    // The concurrent-session limit: the oldest sessions end first.
    if let Some(max) = st.lifetimes.max_sessions_per_user {
        match st.store.cap_sessions(&user.id, max, now).await {
            Ok(ended) => {
                for id in ended {
                    st.audit.record(
                        Event::new(EventKind::SessionRevoked, now)
                            .from(&req_origin)
                            .user(&user.id)
                            .session(&id)
                            .reason("session_limit"),
                    );
                }
            }
            Err(e) => return store_failure(&st, e),
        }
    }
    // A new device is a browser without a valid device cookie for this account (never just
    // a new user agent): the detections read it from here.
    let device = if device.is_some() { "known" } else { "new" };
    st.audit.record(
        Event::new(EventKind::LoginSucceeded, now)
            .from(&req_origin)
            .client(&client.id)
            .user(&user.id)
            .session(&session.id)
            .detail(&format!("device={device}")),
    );
    st.audit.record(
        Event::new(EventKind::SessionCreated, now)
            .from(&req_origin)
            .client(&client.id)
            .user(&user.id)
            .session(&session.id),
    );
    let res = flow::issue_code(&st, &taken, &client, &session, &user, true, now).await;
    // This browser is now a recognised device for the account.
    let (device_value, _) =
        portcullis_core::device::issue(&st.hash_key, &user, now, throttle::DEVICE_COOKIE_LIFETIME);
    let res = with_cookie(
        res,
        SESSION.set(reveal(&cookie.value), st.lifetimes.session_absolute),
    );
    with_cookie(
        res,
        DEVICE.set(&device_value, throttle::DEVICE_COOKIE_LIFETIME),
    )
}

/// The sign-in page with "Too many login attempts", `429` and `Retry-After`.
fn throttled(
    st: &AppState,
    flow: &portcullis_core::model::Flow,
    client: &portcullis_core::model::Client,
    retry_after: i64,
) -> Response {
    let mut res = login_page(
        st,
        flow,
        client,
        StatusCode::TOO_MANY_REQUESTS,
        Some(TOO_MANY_ATTEMPTS),
    );
    if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

/// The device of a valid device cookie issued for the account `typed_email` names.
pub(crate) async fn recognised_device(
    st: &AppState,
    typed_email: &str,
    value: &str,
    now: i64,
) -> Option<portcullis_core::device::Device> {
    let key = portcullis_core::email::Email::parse(typed_email)
        .map(|e| e.key().to_owned())
        .unwrap_or_default();
    let found = match key.is_empty() {
        true => None,
        false => st.store.user_by_email_key(&key).await.ok().flatten(),
    };
    match found {
        Some(user) => portcullis_core::device::verify(&st.hash_key, value, &user, now),
        None => {
            // An unknown account costs the same verification, against a stand-in user.
            let stand_in = portcullis_core::model::User {
                id: portcullis_core::ids::UserId::generate(),
                email: String::new(),
                email_key: key,
                email_verified: false,
                password_hash: String::new(),
                disabled: true,
                created_at: 0,
                device_epoch: 0,
                password_changed_at: None,
                password_version: 0,
            };
            let _ = portcullis_core::device::verify(&st.hash_key, value, &stand_in, now);
            None
        }
    }
}
