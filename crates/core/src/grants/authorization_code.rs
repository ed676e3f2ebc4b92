//! `grant_type=authorization_code` (RFC 6749 §4.1.3 with PKCE): the code is single use, 60 s,
//! and bound to client, redirect URI, PKCE challenge, scope, user and session. A replay
//! revokes what the first redemption issued.

use crate::authorize::check_pkce;
use crate::error::OAuthError;
use crate::ids::FamilyId;
use crate::model::{AuthCode, Client, GrantType};
use crate::params::Params;
use crate::secret::{self, reveal, SecretKind};
use crate::store::{CodeRedemption, Storage};

use super::{issue, GrantEvent, TokenContext, TokenResponse};

pub(super) async fn handle<S: Storage + ?Sized>(
    params: &Params,
    client: &Client,
    store: &S,
    ctx: &TokenContext<'_>,
    events: &mut Vec<GrantEvent>,
) -> Result<TokenResponse, OAuthError> {
    let code = params.require("code", 256)?;
    let redirect_uri = params.require("redirect_uri", 2000)?;
    let verifier = params.get("code_verifier", 256)?;
    let Some(hash) = secret::hash_presented(SecretKind::AuthorizationCode, code, ctx.hash_key)
    else {
        return Err(OAuthError::invalid_grant(
            "the authorization code is invalid",
        ));
    };
    // Redirect URI and PKCE are checked inside the redemption, before the code is consumed:
    // a code presented by another client, or without the right verifier, stays untouched.
    let check = |c: &AuthCode| -> Result<(), &'static str> {
        if c.redirect_uri != redirect_uri {
            return Err("redirect_uri does not match the authorization request");
        }
        // Every code carries a challenge (PKCE is required at /authorize); no verifier, or a
        // wrong one, fails. A verifier is never "ignored".
        match verifier {
            Some(v) if check_pkce::verify(v, &c.code_challenge) => Ok(()),
            Some(_) => Err("code_verifier does not match the code_challenge"),
            None => Err("code_verifier is required"),
        }
    };
    let code = match store
        .redeem_code(&hash, &client.id, ctx.now, &check)
        .await?
    {
        CodeRedemption::Redeemed(c) => c,
        CodeRedemption::Replayed => {
            events.push(GrantEvent::CodeReplayed);
            return Err(OAuthError::invalid_grant(
                "the authorization code was already used",
            ));
        }
        CodeRedemption::Refused(reason) => return Err(OAuthError::invalid_grant(reason)),
        CodeRedemption::Unknown => {
            return Err(OAuthError::invalid_grant(
                "the authorization code is invalid",
            ))
        }
    };
    if ctx.now >= code.expires_at {
        return Err(OAuthError::invalid_grant(
            "the authorization code has expired",
        ));
    }
    events.push(GrantEvent::Subject {
        user_id: code.user_id.to_string(),
        session_id: code.session_id.to_string(),
    });
    let user = match store.user_by_id(&code.user_id).await? {
        Some(u) if !u.disabled => u,
        _ => return Err(OAuthError::invalid_grant("the user is no longer active")),
    };
    let session = match store.session_by_id(&code.session_id).await? {
        Some(s) if s.is_active(ctx.now) => s,
        _ => return Err(OAuthError::invalid_grant("the session has ended")),
    };
    // The grant's identity, in the access token too: a replay of the code, or the revocation
    // of the family, then ends this access token at introspection and userinfo.
    let family = FamilyId::generate();
    let access = issue::access_token(
        ctx,
        client,
        user.id.as_str(),
        code.audience.as_deref(),
        &code.scope,
        Some(code.auth_time),
        Some(&session.id),
        Some(&family),
    )?;
    let id_token = if code.scope.iter().any(|s| s == crate::scope::OPENID) {
        Some(issue::id_token(
            ctx,
            client,
            &user,
            &code.scope,
            code.nonce.clone(),
            &session.id,
            code.auth_time,
            &access,
        )?)
    } else {
        None
    };
    store.set_code_family(&code.code_hash, &family).await?;
    let refresh_token = if client.allows_grant(GrantType::RefreshToken) {
        // Offline tokens outlive the session; session-bound ones end with it.
        let offline = crate::scope::is_offline(&code.scope);
        let expires_at = if offline {
            ctx.now + ctx.lifetimes.offline_absolute
        } else {
            // The client's own session max age, when it is tighter, bounds its tokens too.
            client
                .policy
                .session_max_age
                .map_or(session.expires_at, |a| {
                    session.expires_at.min(session.auth_time + a)
                })
        };
        let (record, issued) = issue::refresh_token(
            ctx,
            family.clone(),
            client,
            &user,
            &session.id,
            &code.scope,
            code.audience.clone(),
            code.auth_time,
            expires_at,
            offline,
        );
        if !store.insert_refresh_token(&record, ctx.now).await? {
            return Err(OAuthError::invalid_grant(
                "the grant is no longer valid: the session ended, the user was disabled, or the password changed",
            ));
        }
        Some(reveal(&issued.value).to_owned())
    } else {
        None
    };

    Ok(TokenResponse {
        access_token: access,
        token_type: "Bearer",
        expires_in: client.policy.access_token_ttl(ctx.lifetimes.access_token),
        scope: crate::scope::join(&code.scope),
        id_token,
        refresh_token,
    })
}
