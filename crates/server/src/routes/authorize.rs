//! `GET /authorize`: validate, store the pending request, set the Lax flow cookie, and hop
//! through a same-site interstitial so the Strict session cookie can be read.

use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::Response;
use portcullis_core::authorize::{self, response, AuthorizeError};
use portcullis_core::model::Flow;
use portcullis_core::params::Params;
use portcullis_core::secret::{self, reveal, SecretKind};
use portcullis_guard::csrf;

use crate::cookies::FLOW;
use crate::flow::store_failure;
use crate::respond::{self, page, with_cookie};
use crate::state::{now, AppState};

/// `GET /authorize`.
pub async fn authorize(State(st): State<AppState>, OriginalUri(uri): OriginalUri) -> Response {
    start(&st, uri.query().unwrap_or("").as_bytes(), false).await
}

/// `POST /authorize` with a form body (OIDC Core §3.1.2.1 requires both methods).
pub async fn authorize_post(
    State(st): State<AppState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !form {
        let e = portcullis_core::OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        );
        return respond::oauth_error_page(&st, &e);
    }
    start(&st, &body, true).await
}

/// `after_post`: the request came as a form post, so a redirect answering it is a 303.
async fn start(st: &AppState, raw: &[u8], after_post: bool) -> Response {
    let st = st.clone();
    let now = now();
    let params = match Params::parse(raw) {
        Ok(p) => p,
        Err(e) => return respond::oauth_error_page(&st, &e),
    };
    let (req, _client) = match authorize::validate(&params, &*st.store).await {
        Ok(v) => v,
        Err(AuthorizeError::Page(e)) => return respond::oauth_error_page(&st, &e),
        Err(AuthorizeError::Redirect {
            redirect_uri,
            state,
            error,
        }) => {
            tracing::info!(
                event = "authorization.error",
                error = error.code.as_str(),
                "authorization request refused"
            );
            let location =
                response::error_redirect(&redirect_uri, state.as_deref(), &error, &st.issuer);
            return respond::redirect(&location, after_post);
        }
    };
    let cookie = secret::issue(SecretKind::FlowCookie, &st.hash_key);
    let flow = Flow {
        cookie_hash: cookie.hash.clone(),
        csrf_token: csrf::new_token(),
        request: req,
        created_at: now,
        expires_at: now + st.lifetimes.flow,
    };
    if let Err(e) = st.store.insert_flow(&flow).await {
        return store_failure(&st, e);
    }
    let html = st
        .templates
        .render("interstitial.html", minijinja::context! {});
    with_cookie(
        page(StatusCode::OK, html, None),
        FLOW.set(reveal(&cookie.value), st.lifetimes.flow),
    )
}
