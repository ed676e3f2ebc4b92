//! The few HTTP exchanges the SDK makes, with Portcullis's error bodies turned into types.

use serde::de::DeserializeOwned;

use crate::error::{Error, OAuthError, Result};
use crate::secret::Secret;

/// GET `uri` and parse its JSON body.
pub(crate) async fn get_json<T: DeserializeOwned>(http: &reqwest::Client, uri: &str) -> Result<T> {
    get_json_cached(http, uri, 256 * 1024).await.map(|(v, _)| v)
}

/// GET `uri` and parse its JSON body (at most `max_body` bytes), with the `max-age` of its
/// `Cache-Control` header, if any.
pub(crate) async fn get_json_cached<T: DeserializeOwned>(
    http: &reqwest::Client,
    uri: &str,
    max_body: usize,
) -> Result<(T, Option<std::time::Duration>)> {
    let mut res = http
        .get(uri)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(transport)?;
    if !res.status().is_success() {
        return Err(Error::Protocol(format!(
            "GET {uri} answered {}",
            res.status().as_u16()
        )));
    }
    let max_age = res
        .headers()
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',').find_map(|d| {
                d.trim()
                    .strip_prefix("max-age=")
                    .and_then(|n| n.trim().parse::<u64>().ok())
            })
        })
        .map(std::time::Duration::from_secs);
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > max_body {
            return Err(Error::Protocol(format!("GET {uri} answered too much")));
        }
        body.extend_from_slice(&chunk);
    }
    let parsed = serde_json::from_slice(&body)
        .map_err(|_| Error::Protocol(format!("GET {uri} did not answer valid JSON")))?;
    Ok((parsed, max_age))
}

/// POST `form` to `uri` with the client's credentials: HTTP Basic (RFC 6749 §2.3.1, each part
/// form-encoded) when there is a secret, otherwise `client_id` in the form (a public client).
pub(crate) async fn post_form(
    http: &reqwest::Client,
    uri: &str,
    client_id: &str,
    secret: Option<&Secret>,
    form: &[(&str, &str)],
) -> Result<reqwest::Response> {
    let mut req = http.post(uri).header("accept", "application/json");
    let mut fields: Vec<(&str, &str)> = form.to_vec();
    match secret {
        Some(s) => {
            req = req.basic_auth(encode(client_id), Some(encode(s.expose())));
        }
        None => fields.push(("client_id", client_id)),
    }
    req.form(&fields).send().await.map_err(transport)
}

/// The body as `T` on success, the RFC 6749 error otherwise.
pub(crate) async fn parse<T: DeserializeOwned>(res: reqwest::Response) -> Result<T> {
    let status = res.status();
    if status.is_success() {
        return res
            .json()
            .await
            .map_err(|_| Error::Protocol("the answer was not the expected JSON".into()));
    }
    Err(Error::Endpoint(oauth_error(res).await))
}

/// The error body of a refused request (or a generic one when it has none).
pub(crate) async fn oauth_error(res: reqwest::Response) -> OAuthError {
    #[derive(serde::Deserialize)]
    struct Body {
        error: String,
        error_description: Option<String>,
    }
    let status = res.status().as_u16();
    match res.json::<Body>().await {
        Ok(b) => OAuthError::from_parts(b.error, b.error_description, Some(status)),
        Err(_) => OAuthError {
            code: "unexpected_response".into(),
            description: Some(format!("HTTP {status} without an OAuth error body")),
            status: Some(status),
        },
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn transport(e: reqwest::Error) -> Error {
    // Without the URL's query (it never holds secrets here, but stay uniform) and without
    // the request body.
    Error::Transport(e.without_url().to_string())
}
