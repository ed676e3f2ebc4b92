//! The token endpoint (code exchange, refresh, client credentials), revocation, logout URLs,
//! and validation of access, ID and logout tokens.

use std::collections::HashMap;

use serde::Deserialize;
use url::Url;

use crate::authorize::PendingAuthorization;
use crate::error::{Error, InvalidToken, Result};
use crate::secret::Secret;
use crate::validate::{
    self, check_id_token, check_logout, header_of, id_token_header_of, typ_is, AccessTokenClaims,
    IdTokenClaims, IdTokenRules, LogoutClaims, LogoutRequest,
};
use crate::Portcullis;

/// Tokens from the token endpoint. Every token is a [`Secret`].
#[derive(Clone, Debug)]
pub struct Tokens {
    /// The access token (a JWT to send as `Authorization: Bearer`).
    pub access_token: Secret,
    /// When the access token expires (seconds since the epoch, by the SDK's clock).
    pub expires_at: i64,
    /// The refresh token, if one was issued; spent at its next use (rotation).
    pub refresh_token: Option<Secret>,
    /// The ID token, if one was issued (the `id_token_hint` of a logout).
    pub id_token: Option<Secret>,
    /// The granted scopes, as the answer lists them (Portcullis always does; empty if a
    /// server leaves `scope` out, which RFC 6749 §5.1 allows when it granted what was asked).
    pub scope: Vec<String>,
}

/// A finished sign-in: the validated ID token's claims and the tokens.
#[derive(Clone, Debug)]
pub struct SignedIn {
    /// The validated ID token's claims: who signed in, when, in which session.
    pub claims: IdTokenClaims,
    /// The tokens; keep them server-side.
    pub tokens: Tokens,
}

/// A client-credentials access token.
#[derive(Clone, Debug)]
pub struct ClientToken {
    /// The access token.
    pub access_token: Secret,
    /// When it expires (seconds since the epoch, by the SDK's clock).
    pub expires_at: i64,
    /// The granted scopes.
    pub scope: Vec<String>,
}

/// Which kind of token is being revoked (RFC 7009 `token_type_hint`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenTypeHint {
    /// An access token.
    AccessToken,
    /// A refresh token (revoking one ends its whole family).
    RefreshToken,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: String,
    expires_in: i64,
    refresh_token: Option<String>,
    id_token: Option<String>,
    scope: Option<String>,
}

/// Most client-credentials tokens kept (one per scope set and resource).
const MAX_CLIENT_TOKENS: usize = 256;

/// Client-credentials tokens by scope and resource, kept until shortly before they expire.
/// One slot per key, each with its own lock: concurrent callers for one key wait for one
/// fetch, while other keys go on (a slow token endpoint holds up only the key it is asked for).
#[derive(Default)]
pub(crate) struct ClientTokenCache {
    slots: std::sync::Mutex<HashMap<CacheKey, ClientTokenSlot>>,
}

type CacheKey = (String, Option<String>);
type ClientTokenSlot = std::sync::Arc<tokio::sync::Mutex<Option<ClientToken>>>;

impl Portcullis {
    fn tokens_from(&self, r: TokenResponse) -> Result<Tokens> {
        if !r.token_type.eq_ignore_ascii_case("bearer") {
            return Err(Error::Protocol("the token type is not Bearer".into()));
        }
        Ok(Tokens {
            access_token: Secret::new(r.access_token),
            expires_at: self.now().saturating_add(r.expires_in.max(0)),
            refresh_token: r.refresh_token.map(Secret::new),
            id_token: r.id_token.map(Secret::new),
            scope: r
                .scope
                .unwrap_or_default()
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> Result<TokenResponse> {
        let meta = self.metadata().await?;
        let res = crate::http::post_form(
            &self.inner.http,
            &meta.token_endpoint,
            &self.inner.config.client_id,
            self.inner.config.client_secret.as_ref(),
            form,
        )
        .await?;
        crate::http::parse(res).await
    }

    pub(crate) async fn exchange_code(
        &self,
        code: &str,
        pending: &PendingAuthorization,
    ) -> Result<SignedIn> {
        let r = self
            .token_request(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &pending.redirect_uri),
                ("code_verifier", pending.code_verifier.expose()),
            ])
            .await?;
        let tokens = self.tokens_from(r)?;
        let id_token = tokens
            .id_token
            .as_ref()
            .ok_or_else(|| Error::Protocol("no ID token in the answer".into()))?;
        let claims = self
            .validate_id_token(
                id_token.expose(),
                Some(&pending.nonce),
                pending.max_age,
                Some(tokens.access_token.expose()),
            )
            .await?;
        Ok(SignedIn { claims, tokens })
    }

    /// Validates an ID token: signature via the JWKS (an allowed algorithm that is the key's
    /// own), `iss`, `aud` containing the client id, `azp`, `exp` and `iat` with leeway,
    /// `nonce` (`None` for one from a refresh, which must carry none), `auth_time` against
    /// `max_age`, and `at_hash` against `access_token`. [`Portcullis::authenticate_with_code`]
    /// and [`Portcullis::refresh`] call it; call it yourself for an ID token from elsewhere.
    ///
    /// ```no_run
    /// # async fn demo(portcullis: portcullis_client::Portcullis, id_token: &str, nonce: &str) -> portcullis_client::Result<()> {
    /// let claims = portcullis.validate_id_token(id_token, Some(nonce), None, None).await?;
    /// println!("{}", claims.sub);
    /// # Ok(()) }
    /// ```
    pub async fn validate_id_token(
        &self,
        id_token: &str,
        nonce: Option<&str>,
        max_age: Option<i64>,
        access_token: Option<&str>,
    ) -> Result<IdTokenClaims> {
        let (header, kid) = id_token_header_of(id_token, &self.inner.config.algorithms)?;
        // An access or logout token is not an ID token.
        if typ_is(&header, "at+jwt") || typ_is(&header, "logout+jwt") {
            return Err(InvalidToken::Type.into());
        }
        let key = self.key(&kid).await?;
        let claims: IdTokenClaims = validate::verify(
            id_token,
            &header,
            &key,
            self.issuer(),
            &self.inner.config.client_id,
            &["exp", "iat", "iss", "aud", "sub"],
        )?;
        check_id_token(
            &claims,
            &IdTokenRules {
                client_id: &self.inner.config.client_id,
                nonce,
                max_age,
                access_token,
                now: self.now(),
                leeway: self.inner.config.leeway,
                alg: header.alg,
            },
        )?;
        Ok(claims)
    }

    async fn key(&self, kid: &str) -> Result<std::sync::Arc<crate::jwks::Key>> {
        let meta = self.metadata().await?;
        self.inner
            .jwks
            .key(kid, &meta.jwks_uri, &self.inner.http, &self.inner.config)
            .await
    }

    /// Validates an access token locally (RFC 9068): `typ: at+jwt`, an allowed algorithm that
    /// is its key's own, the signature against the JWKS (refreshed on an unknown `kid`, at
    /// most once per [`crate::Builder::jwks_min_refresh`]), `iss`, `aud` containing
    /// `audience`, `exp` with leeway, and every scope of `required_scopes`.
    ///
    /// ```no_run
    /// # async fn demo(portcullis: portcullis_client::Portcullis, bearer: &str) -> portcullis_client::Result<()> {
    /// let claims = portcullis
    ///     .validate_access_token(bearer, "https://api.example.com", &["read:things"])
    ///     .await?;
    /// println!("called by {} for {}", claims.client_id, claims.sub);
    /// # Ok(()) }
    /// ```
    pub async fn validate_access_token(
        &self,
        token: &str,
        audience: &str,
        required_scopes: &[&str],
    ) -> Result<AccessTokenClaims> {
        if token.len() > 16 * 1024 {
            return Err(InvalidToken::Malformed.into());
        }
        let (header, kid) = header_of(token, &self.inner.config.algorithms)?;
        if !typ_is(&header, "at+jwt") {
            return Err(InvalidToken::Type.into());
        }
        let key = self.key(&kid).await?;
        let claims: AccessTokenClaims = validate::verify(
            token,
            &header,
            &key,
            self.issuer(),
            audience,
            &["exp", "iss", "aud", "sub"],
        )?;
        validate::check_times(
            claims.exp,
            claims.nbf,
            Some(claims.iat),
            self.now(),
            self.inner.config.leeway,
        )?;
        if !required_scopes
            .iter()
            .all(|need| claims.scopes().any(|s| s == *need))
        {
            return Err(InvalidToken::Scope.into());
        }
        Ok(claims)
    }

    /// Verifies a back-channel logout token (the `logout_token` form field Portcullis POSTs):
    /// `typ: logout+jwt`, signature, `iss`, `aud` = this client, `iat`/`exp`, the
    /// back-channel-logout event, no `nonce`, and a `sid` or `sub`. The app then ends its
    /// sessions for that `sid` or `sub`, and should remember `jti` until the token expires
    /// to refuse a replay.
    ///
    /// ```no_run
    /// # async fn demo(portcullis: portcullis_client::Portcullis, form_field: &str) {
    /// match portcullis.verify_logout_token(form_field).await {
    ///     Ok(request) => { /* end the app sessions of request.sid / request.sub; answer 200 */ }
    ///     Err(_) => { /* answer 400 */ }
    /// }
    /// # }
    /// ```
    pub async fn verify_logout_token(&self, token: &str) -> Result<LogoutRequest> {
        if token.len() > 16 * 1024 {
            return Err(InvalidToken::Malformed.into());
        }
        let (header, kid) = id_token_header_of(token, &self.inner.config.algorithms)?;
        if !typ_is(&header, "logout+jwt") {
            return Err(InvalidToken::Type.into());
        }
        let key = self.key(&kid).await?;
        let claims: LogoutClaims = validate::verify(
            token,
            &header,
            &key,
            self.issuer(),
            &self.inner.config.client_id,
            &["iat", "exp", "iss", "aud", "jti"],
        )?;
        check_logout(claims, self.now(), self.inner.config.leeway)
    }

    /// Uses a refresh token: the answer carries a new refresh token (Portcullis rotates on
    /// every use; keep the new one, the old one is spent). An ID token in the answer is
    /// validated (it carries no nonce); if it fails, the error is
    /// [`Error::RefreshedIdToken`], which still holds the new tokens. To also check that the
    /// new ID token continues the original sign-in, use [`Portcullis::refresh_session`].
    ///
    /// ```no_run
    /// # async fn demo(portcullis: portcullis_client::Portcullis, tokens: portcullis_client::Tokens) -> portcullis_client::Result<()> {
    /// if let Some(rt) = &tokens.refresh_token {
    ///     let fresh = portcullis.refresh(rt).await?;
    /// #   let _ = fresh;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn refresh(&self, refresh_token: &Secret) -> Result<Tokens> {
        let (tokens, claims) = self.refresh_inner(refresh_token).await?;
        match claims {
            Some(Err(e)) => Err(Error::RefreshedIdToken {
                tokens: Box::new(tokens),
                error: Box::new(e),
            }),
            _ => Ok(tokens),
        }
    }

    /// Refreshes a signed-in user's tokens and checks the new ID token continues `original`
    /// (OpenID Connect Core §12.2): the same `iss`, `sub`, `aud` and `azp`, and the same
    /// `auth_time` (a refresh is not a new sign-in). Returns the new claims (the original ones
    /// when the answer has no ID token) and tokens.
    ///
    /// ```no_run
    /// # async fn demo(portcullis: portcullis_client::Portcullis, signed_in: portcullis_client::SignedIn) -> portcullis_client::Result<()> {
    /// if let Some(rt) = &signed_in.tokens.refresh_token {
    ///     let renewed = portcullis.refresh_session(rt, &signed_in.claims).await?;
    /// #   let _ = renewed;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn refresh_session(
        &self,
        refresh_token: &Secret,
        original: &IdTokenClaims,
    ) -> Result<SignedIn> {
        let (tokens, claims) = self.refresh_inner(refresh_token).await?;
        let claims = match claims {
            None => Ok(original.clone()),
            Some(Err(e)) => Err(e),
            Some(Ok(c)) => {
                let continues = c.iss == original.iss
                    && c.sub == original.sub
                    && c.aud == original.aud
                    && c.azp == original.azp
                    && (c.auth_time.is_none() || c.auth_time == original.auth_time);
                if continues {
                    Ok(c)
                } else {
                    Err(Error::InvalidToken(InvalidToken::Claims))
                }
            }
        };
        match claims {
            Ok(claims) => Ok(SignedIn { claims, tokens }),
            Err(e) => Err(Error::RefreshedIdToken {
                tokens: Box::new(tokens),
                error: Box::new(e),
            }),
        }
    }

    /// The refresh itself: the new tokens, and the new ID token's validation if there is one.
    async fn refresh_inner(
        &self,
        refresh_token: &Secret,
    ) -> Result<(Tokens, Option<Result<IdTokenClaims>>)> {
        let r = self
            .token_request(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.expose()),
            ])
            .await?;
        let tokens = self.tokens_from(r)?;
        let claims = match &tokens.id_token {
            Some(id) => Some(
                self.validate_id_token(id.expose(), None, None, Some(tokens.access_token.expose()))
                    .await,
            ),
            None => None,
        };
        Ok((tokens, claims))
    }

    /// Revokes a token (RFC 7009). Revoking a refresh token ends its whole family.
    ///
    /// ```no_run
    /// # async fn demo(portcullis: portcullis_client::Portcullis, rt: portcullis_client::Secret) -> portcullis_client::Result<()> {
    /// portcullis.revoke(&rt, portcullis_client::TokenTypeHint::RefreshToken).await?;
    /// # Ok(()) }
    /// ```
    pub async fn revoke(&self, token: &Secret, hint: TokenTypeHint) -> Result<()> {
        let meta = self.metadata().await?;
        let uri = meta
            .revocation_endpoint
            .as_deref()
            .ok_or_else(|| Error::Protocol("no revocation endpoint".into()))?;
        let hint = match hint {
            TokenTypeHint::AccessToken => "access_token",
            TokenTypeHint::RefreshToken => "refresh_token",
        };
        let res = crate::http::post_form(
            &self.inner.http,
            uri,
            &self.inner.config.client_id,
            self.inner.config.client_secret.as_ref(),
            &[("token", token.expose()), ("token_type_hint", hint)],
        )
        .await?;
        if res.status().is_success() {
            Ok(())
        } else {
            Err(Error::Endpoint(crate::http::oauth_error(res).await))
        }
    }

    /// A client-credentials token for `scopes` (and an API `resource`, RFC 8707), from the
    /// cache while it has more than 30 s left, otherwise fresh from the token endpoint.
    ///
    /// ```no_run
    /// # async fn demo(portcullis: portcullis_client::Portcullis) -> portcullis_client::Result<()> {
    /// let token = portcullis
    ///     .client_credentials_token(&["read:things"], Some("https://api.example.com"))
    ///     .await?;
    /// # let _ = token; Ok(()) }
    /// ```
    pub async fn client_credentials_token(
        &self,
        scopes: &[&str],
        resource: Option<&str>,
    ) -> Result<ClientToken> {
        let mut sorted: Vec<&str> = scopes.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let key = (sorted.join(" "), resource.map(str::to_owned));
        let now = self.now();
        let slot: ClientTokenSlot = {
            let mut slots = self
                .inner
                .client_tokens
                .slots
                .lock()
                .map_err(|_| Error::Protocol("the token cache is unusable".into()))?;
            // Bounded: slots in use or holding a live token stay, then every slot not in use
            // goes (it is only a cache); if all are busy, this fetch is not cached.
            if slots.len() >= MAX_CLIENT_TOKENS && !slots.contains_key(&key) {
                slots.retain(|_, s| match s.try_lock() {
                    Ok(t) => t.as_ref().is_some_and(|t| t.expires_at > now),
                    Err(_) => true,
                });
                if slots.len() >= MAX_CLIENT_TOKENS {
                    slots.retain(|_, s| s.try_lock().is_err());
                }
            }
            if slots.len() >= MAX_CLIENT_TOKENS && !slots.contains_key(&key) {
                ClientTokenSlot::default()
            } else {
                slots.entry(key.clone()).or_default().clone()
            }
        };
        // Held across the request: concurrent callers for this key wait for one fetch.
        let mut cached = slot.lock().await;
        let now = self.now();
        if let Some(t) = cached.as_ref() {
            if t.expires_at - now > self.inner.config.token_renew_before {
                return Ok(t.clone());
            }
        }
        let mut form = vec![("grant_type", "client_credentials")];
        if !key.0.is_empty() {
            form.push(("scope", &key.0));
        }
        if let Some(r) = resource {
            form.push(("resource", r));
        }
        let answer = self.token_request(&form).await?;
        let omitted = answer.scope.is_none();
        let tokens = self.tokens_from(answer)?;
        let token = ClientToken {
            access_token: tokens.access_token,
            expires_at: tokens.expires_at,
            scope: granted_scope(tokens.scope, omitted, &sorted),
        };
        *cached = Some(token.clone());
        Ok(token)
    }

    /// The URL that signs the user out of Portcullis (RP-initiated logout) and back to
    /// `post_logout_redirect_uri`, which must be registered for the client.
    ///
    /// ```no_run
    /// # async fn demo(portcullis: portcullis_client::Portcullis, id_token: &str) -> portcullis_client::Result<()> {
    /// let url = portcullis
    ///     .logout_url(Some(id_token), Some("https://app.example.com/"), None)
    ///     .await?;
    /// # let _ = url; Ok(()) }
    /// ```
    pub async fn logout_url(
        &self,
        id_token_hint: Option<&str>,
        post_logout_redirect_uri: Option<&str>,
        state: Option<&str>,
    ) -> Result<Url> {
        let meta = self.metadata().await?;
        let end = meta
            .end_session_endpoint
            .as_deref()
            .ok_or_else(|| Error::Protocol("no end-session endpoint".into()))?;
        let mut url = Url::parse(end)
            .map_err(|_| Error::Protocol("the end-session endpoint is not a URL".into()))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", &self.inner.config.client_id);
            if let Some(h) = id_token_hint {
                q.append_pair("id_token_hint", h);
            }
            if let Some(p) = post_logout_redirect_uri {
                q.append_pair("post_logout_redirect_uri", p);
            }
            if let Some(s) = state {
                q.append_pair("state", s);
            }
        }
        Ok(url)
    }
}

/// The scopes a token answer granted: RFC 6749 §5.1 lets a server leave `scope` out when it
/// granted exactly what was asked for, so an `omitted` field means `asked` (an empty one
/// still means none).
fn granted_scope(answered: Vec<String>, omitted: bool, asked: &[&str]) -> Vec<String> {
    if omitted {
        asked.iter().map(|s| (*s).to_owned()).collect()
    } else {
        answered
    }
}

#[cfg(test)]
mod tests {
    use super::granted_scope;

    #[test]
    fn an_omitted_scope_means_the_scopes_asked_for() {
        assert_eq!(granted_scope(vec![], true, &["a", "b"]), ["a", "b"]);
        assert_eq!(granted_scope(vec!["a".into()], false, &["a", "b"]), ["a"]);
        // `"scope": ""` is an answer: no scopes, not the ones asked for.
        assert!(granted_scope(vec![], false, &["a", "b"]).is_empty());
        assert!(granted_scope(vec![], true, &[]).is_empty());
    }
}
