//! Redirect URI registration and matching, against two independent WHATWG parsers.
//!
//! The input is split at the first newline into a candidate registration and a presented URI.
//! Oracles: nothing panics; every accepted registration is parsed by both `url` and Ada to
//! the same scheme, host and port, the host our validator saw in the raw string; no accepted
//! registration has userinfo, a fragment or a non-http(s) scheme; a refused string matches no
//! registration; and whenever a presented URI matches, both parsers agree it names the
//! registered host (loopback: any port, same path).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_core::redirect_uri::{matches, RedirectUri};

/// The authority of an `http(s)://` string, taken from the raw text.
fn raw_host(raw: &str) -> Option<(String, Option<String>)> {
    let rest = raw
        .strip_prefix("https://")
        .or_else(|| raw.strip_prefix("http://"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    // An IPv6 literal keeps its brackets; the port follows the last ':' after them.
    let split = match authority.rfind(']') {
        Some(close) => authority[close..].find(':').map(|i| close + i),
        None => authority.rfind(':'),
    };
    Some(match split {
        Some(i) => (authority[..i].to_owned(), Some(authority[i + 1..].to_owned())),
        None => (authority.to_owned(), None),
    })
}

fn same_target(a: &str, b: &str, loopback_any_port: bool) {
    let ua = url::Url::parse(a).expect("url parses a matched URI");
    let ub = url::Url::parse(b).expect("url parses a matched URI");
    assert_eq!(ua.scheme(), ub.scheme(), "{a} ~ {b}");
    assert_eq!(ua.host_str(), ub.host_str(), "{a} ~ {b}");
    assert_eq!(ua.path(), ub.path(), "{a} ~ {b}");
    assert_eq!(ua.query(), ub.query(), "{a} ~ {b}");
    if !loopback_any_port {
        assert_eq!(ua.port(), ub.port(), "{a} ~ {b}");
    }
    let aa = ada_url::Url::parse(a, None).expect("ada parses a matched URI");
    let ab = ada_url::Url::parse(b, None).expect("ada parses a matched URI");
    assert_eq!(aa.hostname(), ab.hostname(), "{a} ~ {b}");
    assert_eq!(aa.hostname(), ua.host_str().unwrap_or(""), "{a}: url and ada disagree");
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (candidate, presented) = text.split_once('\n').unwrap_or((text, text));
    let Ok(registered) = RedirectUri::parse(candidate) else {
        // Whatever matches a registration (itself, or a loopback port variant) is a valid
        // registration too, so a refused string must match none.
        let safe = [
            "https://app.example.com/cb".to_owned(),
            "http://127.0.0.1/cb".to_owned(),
            "http://[::1]/cb?x=1".to_owned(),
        ];
        assert!(!matches(&safe, candidate), "refused {candidate:?} matched a registration");
        return;
    };
    let reg = registered.as_str();
    let (host, port) = raw_host(reg).expect("accepted URIs are http(s)");
    let u = url::Url::parse(reg).expect("url parses what we accepted");
    let a = ada_url::Url::parse(reg, None).expect("ada parses what we accepted");
    assert!(matches!(u.scheme(), "https" | "http"), "{reg}");
    assert_eq!(u.username(), "", "{reg}");
    assert!(u.password().is_none(), "{reg}");
    assert!(u.fragment().is_none(), "{reg}");
    assert_eq!(u.host_str(), Some(host.as_str()), "{reg}: WHATWG host differs from ours");
    assert_eq!(a.hostname(), host, "{reg}: Ada's host differs from ours");
    assert_eq!(a.protocol(), format!("{}:", u.scheme()), "{reg}");
    assert_eq!(
        u.port().map(|p| p.to_string()),
        port.filter(|p| !p.is_empty()),
        "{reg}"
    );
    assert_eq!(a.port(), u.port().map(|p| p.to_string()).unwrap_or_default(), "{reg}");
    if matches(&[reg.to_owned()], presented) {
        let loopback = u.scheme() == "http" && (host == "127.0.0.1" || host == "[::1]");
        if !loopback {
            assert_eq!(presented, reg, "a non-loopback match must be exact");
        }
        same_target(reg, presented, loopback);
    }
});
