//! Client authentication at the token endpoint: `client_secret_basic` (credentials
//! form-urldecoded, RFC 6749 §2.3.1), `client_secret_post`, or `none` for public clients.
//! Exactly one method per request.

use crate::crypto::HashKey;
use crate::error::OAuthError;
use crate::ids::ClientId;
use crate::model::{Client, ClientKind};
use crate::params::Params;
use crate::secret::{self, SecretKind};
use crate::store::ClientStore;

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

/// Authenticates the client of a token-endpoint request.
pub async fn authenticate<S: ClientStore + ?Sized>(
    params: &Params,
    basic: Option<&BasicCredentials>,
    store: &S,
    key: &HashKey,
) -> Result<Client, OAuthError> {
    let body_id = params.get("client_id", 128)?;
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
        (None, Some(s)) => {
            let id = body_id
                .ok_or_else(|| OAuthError::invalid_request("parameter 'client_id' is missing"))?;
            (id.to_owned(), Some(s.to_owned()))
        }
        (None, None) => {
            let id = body_id
                .ok_or_else(|| OAuthError::invalid_request("parameter 'client_id' is missing"))?;
            (id.to_owned(), None)
        }
    };
    let client_id = ClientId::parse(&id)
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
            let Some(hash) = secret::hash_presented(SecretKind::ClientSecret, &s, key) else {
                return Err(
                    OAuthError::invalid_client().with_detail("secret has a bad shape or checksum")
                );
            };
            let mut matched = false;
            for stored in &client.secret_hashes {
                matched |= crate::crypto::constant_time_eq(hash.as_bytes(), stored.as_bytes());
            }
            if matched {
                Ok(client)
            } else {
                Err(OAuthError::invalid_client().with_detail("wrong secret"))
            }
        }
    }
}
