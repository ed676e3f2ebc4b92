//! OpenID Connect Back-Channel Logout 1.0: the client's registered logout URI, the logout
//! token, and which addresses a notice may never be sent to. Sending is the server's job.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};
use url::{Host, Url};

use crate::authorize::response::new_jti;
use crate::ids::{ClientId, SessionId, UserId};
use crate::jwt;
use crate::keys::{KeyError, KeySet};
use crate::model::SigningAlg;

/// `typ` of logout tokens (Back-Channel Logout §2.4).
pub const TYP_LOGOUT_TOKEN: &str = "logout+jwt";
/// The one member of a logout token's `events` claim.
pub const EVENT_BACKCHANNEL_LOGOUT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// A logout token is valid this many seconds after it is signed (each retry re-signs it).
pub const LOGOUT_TOKEN_TTL: i64 = 120;
/// Longest accepted back-channel logout URI.
const MAX_URI_LEN: usize = 2048;

/// Why a back-channel logout URI was refused at registration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackchannelUriError {
    #[error("back-channel logout URI is not an absolute URI")]
    Malformed,
    #[error(
        "back-channel logout URI must use https (http only on a loopback host in development mode)"
    )]
    Scheme,
    #[error("back-channel logout URI must not contain a fragment")]
    Fragment,
    #[error("back-channel logout URI must not contain a user name or password")]
    Userinfo,
    #[error("back-channel logout URI names a link-local or cloud metadata address")]
    ForbiddenAddress,
}

/// A registered back-channel logout URI: absolute, `https` (or `http` on a loopback host in
/// development mode), without fragment or userinfo, not on a link-local or metadata IP literal.
/// Host names are checked again at every delivery, on the addresses they resolve to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackchannelUri(String);

impl BackchannelUri {
    /// `dev`: development mode, where `http` is accepted on `localhost`, `127.0.0.1` and `[::1]`.
    pub fn parse(raw: &str, dev: bool) -> Result<Self, BackchannelUriError> {
        if raw.len() > MAX_URI_LEN || raw.trim() != raw {
            return Err(BackchannelUriError::Malformed);
        }
        let url = Url::parse(raw).map_err(|_| BackchannelUriError::Malformed)?;
        let host = url.host().ok_or(BackchannelUriError::Malformed)?;
        match url.scheme() {
            "https" => {}
            "http" if dev && is_loopback_host(&host) => {}
            _ => return Err(BackchannelUriError::Scheme),
        }
        if url.fragment().is_some() || raw.contains('#') {
            return Err(BackchannelUriError::Fragment);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(BackchannelUriError::Userinfo);
        }
        let literal = match host {
            Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
            Host::Domain(_) => None,
        };
        if literal.is_some_and(is_forbidden_address) {
            return Err(BackchannelUriError::ForbiddenAddress);
        }
        Ok(Self(url.to_string()))
    }

    /// Wraps a value read back from our own storage (validated when it was registered).
    pub fn from_trusted(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Is `host` one of the loopback hosts (`localhost`, `127.0.0.0/8`, `[::1]`)?
pub fn is_loopback_host(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// Addresses an outbound call may never reach, whatever the mode: link-local (169.254.0.0/16,
/// fe80::/10, where cloud metadata services live), the metadata addresses outside those ranges
/// (100.100.100.200, fd00:ec2::254), "this network" (0.0.0.0/8), the unspecified address,
/// broadcast and multicast. IPv4-mapped IPv6 addresses are judged as their IPv4 address.
pub fn is_forbidden_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => forbidden_v4(v4) || forbidden_v6(v6),
            None => forbidden_v6(v6),
        },
    }
}

/// An IPv4 address an IPv6 address carries and may reach: IPv4-mapped (`::ffff:a.b.c.d`),
/// IPv4-compatible (`::a.b.c.d`, deprecated), NAT64 (`64:ff9b::a.b.c.d`) and 6to4
/// (`2002:aabb:ccdd::`). Each is judged as the IPv4 address too.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new(
        (s[6] >> 8) as u8,
        (s[6] & 0xff) as u8,
        (s[7] >> 8) as u8,
        (s[7] & 0xff) as u8,
    );
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_unspecified() && !ip.is_loopback() {
        return Some(low);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(low);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            (s[1] & 0xff) as u8,
            (s[2] >> 8) as u8,
            (s[2] & 0xff) as u8,
        ));
    }
    None
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    ip.is_link_local()
        || ip.octets()[0] == 0
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip == Ipv4Addr::new(100, 100, 100, 200)
        // Oracle Cloud's metadata service.
        || ip == Ipv4Addr::new(192, 0, 0, 192)
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    let link_local = (ip.segments()[0] & 0xffc0) == 0xfe80;
    link_local
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)
        // Google Cloud's IPv6 metadata server.
        || ip == Ipv6Addr::new(0xfd20, 0x00ce, 0, 0, 0, 0, 0, 0x0254)
}

/// The `events` claim: `{"http://schemas.openid.net/event/backchannel-logout": {}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogoutEvents {
    #[serde(rename = "http://schemas.openid.net/event/backchannel-logout")]
    pub backchannel_logout: serde_json::Map<String, serde_json::Value>,
}

/// Claims of a logout token (Back-Channel Logout §2.4). There is never a `nonce`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogoutClaims {
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub events: LogoutEvents,
    pub sid: String,
    pub sub: String,
}

/// What a logout token is about.
#[derive(Debug, Clone, Copy)]
pub struct LogoutSubject<'a> {
    pub client_id: &'a ClientId,
    /// The client's ID-token algorithm: the logout token is signed with the same kind of key.
    pub alg: SigningAlg,
    pub user_id: &'a UserId,
    pub session_id: &'a SessionId,
}

/// The claims of a fresh logout token signed at `now` (a new `jti` every call).
pub fn logout_claims(issuer: &str, subject: &LogoutSubject<'_>, now: i64) -> LogoutClaims {
    LogoutClaims {
        iss: issuer.to_owned(),
        aud: subject.client_id.to_string(),
        iat: now,
        exp: now.saturating_add(LOGOUT_TOKEN_TTL),
        jti: new_jti(),
        events: LogoutEvents {
            backchannel_logout: serde_json::Map::new(),
        },
        sid: subject.session_id.to_string(),
        sub: subject.user_id.to_string(),
    }
}

/// A signed logout token (`typ: logout+jwt`) for one client, with the key the client's ID
/// tokens are signed with. Call it again for each delivery attempt.
pub fn logout_token(
    keys: &KeySet,
    issuer: &str,
    subject: &LogoutSubject<'_>,
    now: i64,
) -> Result<String, KeyError> {
    let key = keys.active(subject.alg, now)?;
    jwt::sign(key, TYP_LOGOUT_TOKEN, &logout_claims(issuer, subject, now))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::crypto::{Encrypter, KeyBytes};
    use crate::keys::{generate, load};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    fn keyset() -> KeySet {
        let enc = Encrypter::new(
            &KeyBytes::from_hex(&KeyBytes::generate_hex()).unwrap(),
            None,
        )
        .unwrap();
        let es = load(&generate(SigningAlg::ES256, &enc, 0, 0).unwrap(), &enc).unwrap();
        let rs = load(&generate(SigningAlg::RS256, &enc, 0, 0).unwrap(), &enc).unwrap();
        KeySet::new(vec![es, rs])
    }

    fn part(token: &str, i: usize) -> serde_json::Value {
        let p = token.split('.').nth(i).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
    }

    #[test]
    fn logout_token_header_and_claims() {
        let ks = keyset();
        let client = ClientId::from_trusted("cl_app".into());
        let user = UserId::from_trusted("usr_alice".into());
        let sid = SessionId::from_trusted("ses_1".into());
        for alg in [SigningAlg::RS256, SigningAlg::ES256] {
            let subject = LogoutSubject {
                client_id: &client,
                alg,
                user_id: &user,
                session_id: &sid,
            };
            let t = logout_token(&ks, "https://as.example", &subject, 1_000).unwrap();
            let header = part(&t, 0);
            assert_eq!(header["typ"], TYP_LOGOUT_TOKEN);
            assert_eq!(header["alg"], alg.as_str());
            let kid = header["kid"].as_str().unwrap();
            assert_eq!(ks.by_kid(kid).unwrap().alg, alg);
            // Our own verifier accepts it as a logout token, and only as one.
            let claims = jwt::verify(&t, &ks, TYP_LOGOUT_TOKEN).unwrap();
            assert!(jwt::verify(&t, &ks, jwt::TYP_ID_TOKEN).is_err());
            assert_eq!(claims, part(&t, 1));
            let obj = claims.as_object().unwrap();
            let mut names: Vec<&str> = obj.keys().map(String::as_str).collect();
            names.sort_unstable();
            assert_eq!(
                names,
                ["aud", "events", "exp", "iat", "iss", "jti", "sid", "sub"]
            );
            assert!(!obj.contains_key("nonce"));
            assert_eq!(claims["iss"], "https://as.example");
            assert_eq!(claims["aud"], "cl_app");
            assert_eq!(claims["sub"], "usr_alice");
            assert_eq!(claims["sid"], "ses_1");
            assert_eq!(claims["iat"], 1_000);
            assert_eq!(claims["exp"], 1_000 + LOGOUT_TOKEN_TTL);
            assert_eq!(
                claims["events"],
                serde_json::json!({ EVENT_BACKCHANNEL_LOGOUT: {} })
            );
            assert!(claims["jti"].as_str().unwrap().len() >= 16);
        }
    }

    #[test]
    fn every_token_is_fresh() {
        let ks = keyset();
        let client = ClientId::from_trusted("cl_app".into());
        let user = UserId::from_trusted("usr_alice".into());
        let sid = SessionId::from_trusted("ses_1".into());
        let subject = LogoutSubject {
            client_id: &client,
            alg: SigningAlg::ES256,
            user_id: &user,
            session_id: &sid,
        };
        let a = part(&logout_token(&ks, "https://as", &subject, 10).unwrap(), 1);
        let b = part(&logout_token(&ks, "https://as", &subject, 70).unwrap(), 1);
        assert_ne!(a["jti"], b["jti"]);
        assert_eq!(b["iat"], 70);
        assert_eq!(b["exp"], 190);
    }

    #[test]
    fn registration_rules() {
        for ok in [
            "https://rp.example.com/backchannel",
            "https://rp.example.com:8443/bc?tenant=a",
            "https://10.0.0.5/bc",
            "https://127.0.0.1:9000/bc",
        ] {
            assert!(BackchannelUri::parse(ok, false).is_ok(), "{ok}");
        }
        for (bad, dev, why) in [
            (
                "http://rp.example.com/bc",
                true,
                BackchannelUriError::Scheme,
            ),
            (
                "http://127.0.0.1:9000/bc",
                false,
                BackchannelUriError::Scheme,
            ),
            ("ftp://rp.example.com/bc", true, BackchannelUriError::Scheme),
            (
                "https://rp.example.com/bc#x",
                false,
                BackchannelUriError::Fragment,
            ),
            (
                "https://rp.example.com/bc#",
                false,
                BackchannelUriError::Fragment,
            ),
            (
                "https://u:p@rp.example.com/bc",
                false,
                BackchannelUriError::Userinfo,
            ),
            (
                "https://u@rp.example.com/bc",
                false,
                BackchannelUriError::Userinfo,
            ),
            (
                "https://169.254.169.254/latest",
                false,
                BackchannelUriError::ForbiddenAddress,
            ),
            (
                "https://[fe80::1]/bc",
                false,
                BackchannelUriError::ForbiddenAddress,
            ),
            (
                "https://[fd00:ec2::254]/bc",
                false,
                BackchannelUriError::ForbiddenAddress,
            ),
            (
                "https://100.100.100.200/bc",
                false,
                BackchannelUriError::ForbiddenAddress,
            ),
            (
                "https://0.0.0.0/bc",
                false,
                BackchannelUriError::ForbiddenAddress,
            ),
            (
                "https://[::ffff:169.254.1.1]/bc",
                false,
                BackchannelUriError::ForbiddenAddress,
            ),
            ("/relative", false, BackchannelUriError::Malformed),
            (
                " https://rp.example.com/bc",
                false,
                BackchannelUriError::Malformed,
            ),
        ] {
            assert_eq!(BackchannelUri::parse(bad, dev), Err(why), "{bad}");
        }
        for dev_ok in [
            "http://localhost:9000/bc",
            "http://127.0.0.1:9000/bc",
            "http://[::1]:9000/bc",
        ] {
            assert!(BackchannelUri::parse(dev_ok, true).is_ok(), "{dev_ok}");
        }
    }

    #[test]
    fn forbidden_addresses() {
        for ip in [
            "169.254.169.254",
            "169.254.0.1",
            "100.100.100.200",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "fe80::1",
            "febf::1",
            "fd00:ec2::254",
            "::",
            "ff02::1",
            "::ffff:169.254.169.254",
        ] {
            assert!(is_forbidden_address(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.1",
            "8.8.8.8",
            "::1",
            "fec0::1",
            "2001:db8::1",
        ] {
            assert!(!is_forbidden_address(ip.parse().unwrap()), "{ip}");
        }
    }
}

#[cfg(test)]
mod embedded_address_tests {
    use super::*;

    #[test]
    fn ipv4_inside_ipv6_is_judged_as_ipv4() {
        for forbidden in [
            "::ffff:169.254.169.254",
            "::169.254.169.254",
            "64:ff9b::169.254.169.254",
            "2002:a9fe:a9fe::1",
            "::ffff:100.100.100.200",
            "fd20:ce::254",
            "192.0.0.192",
        ] {
            let ip: IpAddr = forbidden.parse().unwrap();
            assert!(is_forbidden_address(ip), "{forbidden}");
        }
        for allowed in [
            "::1",
            "2001:db8::1",
            "64:ff9b::c000:201",
            "2002:c000:201::1",
            "192.0.2.1",
        ] {
            let ip: IpAddr = allowed.parse().unwrap();
            assert!(!is_forbidden_address(ip), "{allowed}");
        }
    }
}
