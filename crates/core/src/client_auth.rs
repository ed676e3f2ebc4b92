//! Client authentication at the token endpoint: `client_secret_basic` (credentials
//! form-urldecoded, RFC 6749 §2.3.1), `client_secret_post`, or `none` for public clients.
//! Exactly one method per request.

use crate::crypto::HashKey;
use crate::error::OAuthError;
use crate::ids::ClientId;
use crate::model::{Api, Client, ClientKind};
use crate::params::Params;
use crate::secret::{self, SecretKind};
use crate::store::{ApiStore, ClientStore};

/// Credentials from an `Authorization: Basic` header, already split (not yet decoded).
#[derive(Clone)]
pub struct BasicCredentials {
    pub id: String,
    pub secret: String,
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// `application/x-www-form-urlencoded` decoding of one value: `+` is a space, `%XX` a byte.
fn form_decode(s: &str) -> Option<String> {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// The presented identity and secret, from exactly one authentication method.
fn credentials(
    params: &Params,
    basic: Option<&BasicCredentials>,
) -> Result<(String, Option<String>), OAuthError> {
    let body_id = params.get("client_id", 2048)?;
    let body_secret = params.get("client_secret", 256)?;
    let (id, secret): (String, Option<String>) = match (basic, body_secret) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "use only one client authentication method",
            ));
        }
        (Some(b), None) => {
            let id = form_decode(&b.id).ok_or_else(OAuthError::invalid_client)?;
            let secret = form_decode(&b.secret).ok_or_else(OAuthError::invalid_client)?;
            if body_id.is_some_and(|bid| bid != id) {
                return Err(OAuthError::invalid_request(
                    "client_id in the body differs from the Authorization header",
                ));
            }
            (id, Some(secret))
        }
        // No client identified at all is failed client authentication (RFC 6749 §5.2), and
        // counts against the address like any other.
        (None, Some(s)) => {
            let id = body_id.ok_or_else(|| {
                OAuthError::invalid_client().with_detail("client_secret without client_id")
            })?;
            (id.to_owned(), Some(s.to_owned()))
        }
        (None, None) => {
            let id = body_id
                .ok_or_else(|| OAuthError::invalid_client().with_detail("no client credentials"))?;
            (id.to_owned(), None)
        }
    };
    Ok((id, secret))
}

/// Does the presented secret match one of the stored hashes? Every hash is compared, in
/// constant time.
fn secret_matches(kind: SecretKind, presented: &str, stored: &[String], key: &HashKey) -> bool {
    let Some(hash) = secret::hash_presented(kind, presented, key) else {
        return false;
    };
    let mut matched = false;
    for s in stored {
        matched |= crate::crypto::constant_time_eq(hash.as_bytes(), s.as_bytes());
    }
    matched
}

/// Authenticates the client of a token-endpoint request.
pub async fn authenticate<S: ClientStore + ?Sized>(
    params: &Params,
    basic: Option<&BasicCredentials>,
    store: &S,
    key: &HashKey,
) -> Result<Client, OAuthError> {
    let (id, secret) = credentials(params, basic)?;
    client_with(&id, secret, store, key).await
}

async fn client_with<S: ClientStore + ?Sized>(
    id: &str,
    secret: Option<String>,
    store: &S,
    key: &HashKey,
) -> Result<Client, OAuthError> {
    let client_id = ClientId::parse(id)
        .ok_or_else(|| OAuthError::invalid_client().with_detail("malformed client_id"))?;
    let client = store
        .client_by_id(&client_id)
        .await?
        .ok_or_else(|| OAuthError::invalid_client().with_detail("unknown client"))?;
    if client.disabled {
        return Err(OAuthError::invalid_client().with_detail("client disabled"));
    }
    match (client.kind, secret) {
        (ClientKind::Public, None) => Ok(client),
        (ClientKind::Public, Some(_)) => {
            Err(OAuthError::invalid_client().with_detail("public client sent a secret"))
        }
        (ClientKind::Confidential, None) => {
            Err(OAuthError::invalid_client().with_detail("confidential client without secret"))
        }
        (ClientKind::Confidential, Some(s)) => {
            if secret_matches(SecretKind::ClientSecret, &s, &client.secret_hashes, key) {
                Ok(client)
            } else {
                Err(OAuthError::invalid_client().with_detail("wrong or malformed secret"))
            }
        }
    }
}

/// Who called the introspection endpoint.
#[derive(Debug)]
pub enum Caller {
    /// A client: it may introspect the tokens issued to it.
    Client(Client),
    /// An API, identified by its audience: it may introspect tokens naming it in `aud`.
    Api(Api),
}

/// Authenticates a client or an API (whose identifier is its audience URI and whose secret
/// comes from `portcullis apis rotate-secret`). Public clients are refused: their `client_id`
/// proves nothing, and introspection answers only to a caller that proves who it is.
pub async fn authenticate_caller<S: ClientStore + ApiStore + ?Sized>(
    params: &Params,
    basic: Option<&BasicCredentials>,
    store: &S,
    key: &HashKey,
) -> Result<Caller, OAuthError> {
    let (id, secret) = credentials(params, basic)?;
    if ClientId::parse(&id).is_some() {
        let client = client_with(&id, secret, store, key).await?;
        if client.kind == ClientKind::Public {
            return Err(
                OAuthError::invalid_client().with_detail("public clients cannot use this endpoint")
            );
        }
        return Ok(Caller::Client(client));
    }
    let Some(secret) = secret else {
        return Err(OAuthError::invalid_client().with_detail("API without secret"));
    };
    let api = store.api_by_audience(&id).await?;
    let hashes = match &api {
        Some(a) => store.api_secret_hashes(&a.audience).await?,
        None => Vec::new(),
    };
    match api {
        Some(api) if secret_matches(SecretKind::ApiSecret, &secret, &hashes, key) => {
            Ok(Caller::Api(api))
        }
        _ => Err(OAuthError::invalid_client().with_detail("unknown API or wrong secret")),
    }
}
