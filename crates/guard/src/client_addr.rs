//! Client-address resolution: which address a request really comes from, and which bucket a
//! rate limiter should count it in.
//!
//! The address is the socket peer, unless that peer is a configured trusted proxy: then the
//! right-most `X-Forwarded-For` entry that is not itself a trusted proxy. Entries to the left of
//! it were written by the client and are never believed. `X-Real-IP`, `True-Client-IP` and
//! `Forwarded` are ignored (one header, one rule: a proxy that sets another header must be
//! configured to append to `X-Forwarded-For`). IPv4-mapped IPv6 addresses count as the IPv4
//! address, and [`bucket`] groups IPv6 clients per /64 (one customer prefix), so rotating through
//! a prefix or rewriting an address textually gains nothing.
//!
//! ```
//! use portcullis_guard::client_addr::{bucket, TrustedProxies};
//! use http::HeaderMap;
//!
//! let proxies = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1").unwrap();
//! let mut headers = HeaderMap::new();
//! headers.insert("x-forwarded-for", "203.0.113.9, 198.51.100.7".parse().unwrap());
//! let ip = proxies.resolve("127.0.0.1".parse().unwrap(), &headers);
//! assert_eq!(ip.to_string(), "198.51.100.7");
//! assert_eq!(bucket("2001:db8:1:2::1".parse().unwrap(), 64).to_string(), "2001:db8:1:2::/64");
//! ```

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderMap;
use ipnet::IpNet;

/// The most `X-Forwarded-For` entries looked at (right to left); a longer chain is hostile.
const MAX_HOPS: usize = 32;

/// A list of trusted reverse proxies (addresses or CIDR blocks).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// A proxy list entry that is not an address or a CIDR block.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not an IP address or CIDR block: {0:?}")]
pub struct ProxyListError(pub String);

impl TrustedProxies {
    /// No trusted proxies: the socket peer is always the client.
    pub fn none() -> Self {
        Self(Vec::new())
    }

    /// From networks already parsed.
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self(nets.into_iter().map(canonical_net).collect())
    }

    /// Parses a comma-separated list such as `10.0.0.0/8, 192.0.2.1, 2001:db8::/32`.
    pub fn parse(list: &str) -> Result<Self, ProxyListError> {
        let mut nets = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = match item.parse::<IpNet>() {
                Ok(n) => n,
                Err(_) => match item.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => return Err(ProxyListError(item.chars().take(64).collect())),
                },
            };
            nets.push(net);
        }
        Ok(Self::new(nets))
    }

    /// The configured networks.
    pub fn networks(&self) -> &[IpNet] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Is `ip` one of the trusted proxies?
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client address of a request that arrived from `peer` with `headers`.
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = canonical(peer);
        if !self.contains(client) {
            return client;
        }
        // Walk the chain from the right: each entry was appended by the hop to its right,
        // which we trust so far. Stop at the first address that is not a trusted proxy.
        let entries = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect::<Vec<_>>();
        for entry in entries.iter().rev().take(MAX_HOPS) {
            match parse_hop(entry) {
                Some(ip) => {
                    client = ip;
                    if !self.contains(ip) {
                        return ip;
                    }
                }
                // Garbage written by someone: the hop that passed it on is the best we know.
                None => return client,
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: `192.0.2.1`, `192.0.2.1:443`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:443`.
fn parse_hop(entry: &str) -> Option<IpAddr> {
    let e = entry.trim();
    if e.is_empty() || e.len() > 64 {
        return None;
    }
    if let Ok(ip) = e.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(inner) = e.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return inner
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(|v6| canonical(IpAddr::V6(v6)));
    }
    e.parse::<SocketAddr>().ok().map(|s| canonical(s.ip()))
}

/// IPv4-mapped IPv6 (`::ffff:203.0.113.5`) is the IPv4 address it maps.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

fn canonical_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(n) if n.prefix_len() >= 96 => match n.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, n.prefix_len() - 96)
                .map(IpNet::V4)
                .unwrap_or(net),
            None => net,
        },
        _ => net,
    }
}

/// The rate-limit bucket of an address: the address itself for IPv4, its `/v6_prefix` network
/// for IPv6 (64 is one customer prefix; clamped to 32..=128).
pub fn bucket(ip: IpAddr, v6_prefix: u8) -> IpNet {
    match canonical(ip) {
        IpAddr::V4(v4) => IpNet::V4(ipnet::Ipv4Net::from(v4)),
        IpAddr::V6(v6) => {
            let len = v6_prefix.clamp(32, 128);
            match ipnet::Ipv6Net::new(v6, len) {
                Ok(n) => IpNet::V6(n.trunc()),
                Err(_) => IpNet::V6(ipnet::Ipv6Net::from(v6)),
            }
        }
    }
}

/// The resolved client address, put into request extensions by [`resolve_client_addr`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// Middleware: resolves the client address and stores it as a [`ClientAddr`] extension. Needs
/// the router served with `into_make_service_with_connect_info::<SocketAddr>()`; without a
/// socket peer (router tests) the peer counts as `0.0.0.0`.
///
/// `axum::middleware::from_fn_with_state(Arc::new(proxies), resolve_client_addr)`
pub async fn resolve_client_addr(
    State(proxies): State<Arc<TrustedProxies>>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let ip = proxies.resolve(peer, req.headers());
    req.extensions_mut().insert(ClientAddr(ip));
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn resolution_table() {
        let proxies = TrustedProxies::parse("127.0.0.1, 10.0.0.0/8").unwrap();
        // (peer, X-Forwarded-For headers, expected client)
        let cases: &[(&str, &[&str], &str)] = &[
            // An untrusted peer is the client, whatever it claims.
            ("198.51.100.1", &["203.0.113.5"], "198.51.100.1"),
            ("198.51.100.1", &[], "198.51.100.1"),
            // A trusted peer without a header is itself the client.
            ("127.0.0.1", &[], "127.0.0.1"),
            // The right-most untrusted hop; the spoofed left entry is ignored.
            ("127.0.0.1", &["1.2.3.4, 198.51.100.7"], "198.51.100.7"),
            (
                "127.0.0.1",
                &["1.2.3.4, 198.51.100.7, 10.1.2.3"],
                "198.51.100.7",
            ),
            // Several headers are one list, in order.
            ("127.0.0.1", &["1.2.3.4", "198.51.100.7"], "198.51.100.7"),
            // Ports and brackets.
            ("127.0.0.1", &["198.51.100.7:5555"], "198.51.100.7"),
            ("127.0.0.1", &["[2001:db8::1]:443"], "2001:db8::1"),
            ("127.0.0.1", &["[2001:db8::1]"], "2001:db8::1"),
            // IPv4-mapped forms are the IPv4 address, for the peer and for entries.
            ("::ffff:127.0.0.1", &["::ffff:198.51.100.7"], "198.51.100.7"),
            ("::ffff:198.51.100.1", &["203.0.113.5"], "198.51.100.1"),
            // Garbage: the last trusted hop we know.
            ("127.0.0.1", &["198.51.100.7, garbage"], "127.0.0.1"),
            ("127.0.0.1", &["unknown, 10.0.0.2"], "10.0.0.2"),
            // Every entry trusted: the left-most one.
            ("127.0.0.1", &["10.0.0.3, 10.0.0.2"], "10.0.0.3"),
        ];
        for (peer, headers, want) in cases {
            assert_eq!(
                proxies.resolve(ip(peer), &xff(headers)),
                ip(want),
                "peer {peer}, headers {headers:?}"
            );
        }
    }

    #[test]
    fn no_proxies_means_the_peer() {
        let h = xff(&["203.0.113.5"]);
        let mut h2 = h.clone();
        h2.insert("x-real-ip", HeaderValue::from_static("203.0.113.6"));
        h2.insert("forwarded", HeaderValue::from_static("for=203.0.113.7"));
        h2.insert("true-client-ip", HeaderValue::from_static("203.0.113.8"));
        for headers in [h, h2] {
            assert_eq!(
                TrustedProxies::none().resolve(ip("127.0.0.1"), &headers),
                ip("127.0.0.1")
            );
        }
    }

    #[test]
    fn proxy_list_parsing() {
        assert_eq!(TrustedProxies::parse("").unwrap().networks().len(), 0);
        let p = TrustedProxies::parse(" 192.0.2.1 ,2001:db8::/32,::ffff:10.0.0.0/104").unwrap();
        assert!(p.contains(ip("192.0.2.1")));
        assert!(!p.contains(ip("192.0.2.2")));
        assert!(p.contains(ip("2001:db8:ffff::1")));
        assert!(
            p.contains(ip("10.9.9.9")),
            "a mapped CIDR covers the IPv4 block"
        );
        assert!(p.contains(ip("::ffff:10.9.9.9")));
        for bad in ["10.0.0.0/33", "example.com", "1.2.3", "10.0.0.1/x"] {
            assert!(TrustedProxies::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn buckets() {
        assert_eq!(
            bucket(ip("2001:db8:1:2::1"), 64),
            bucket(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"), 64)
        );
        assert_ne!(
            bucket(ip("2001:db8:1:2::1"), 64),
            bucket(ip("2001:db8:1:3::1"), 64)
        );
        assert_eq!(
            bucket(ip("2001:db8::1"), 64),
            bucket(ip("2001:0db8:0:0:0:0:0:1"), 64)
        );
        assert_eq!(
            bucket(ip("::ffff:203.0.113.5"), 64),
            bucket(ip("203.0.113.5"), 64)
        );
        assert_eq!(bucket(ip("203.0.113.5"), 64).to_string(), "203.0.113.5/32");
        assert_eq!(bucket(ip("2001:db8::1"), 0).prefix_len(), 32);
        assert_eq!(bucket(ip("2001:db8::1"), 200).prefix_len(), 128);
    }
}
