//! E-mail parsing. Oracles: nothing panics; an accepted address is stable (parsing what it
//! prints gives the same address and key); the comparison key is lower case, ASCII in its
//! domain, and the same for ASCII upper- and lower-case spellings of the input; nothing invisible
//! or control survives; the domain is what the `url` crate's IDNA mapping makes of it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_core::email::Email;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(email) = Email::parse(text) else {
        return;
    };
    let shown = email.as_str();
    let key = email.key();
    let again = Email::parse(shown).expect("a printed address parses again");
    assert_eq!(again.key(), key, "{text:?}");
    assert_eq!(again.as_str(), shown, "{text:?}");
    assert!(!shown.chars().any(|c| c.is_control() || c.is_whitespace()), "{shown:?}");
    let (_, domain) = key.rsplit_once('@').expect("one @");
    assert!(domain.is_ascii(), "{key:?}");
    assert_eq!(domain, domain.to_ascii_lowercase(), "{key:?}");
    // The domain as a WHATWG URL host (UTS #46): the same ASCII form.
    let host = url::Host::parse(domain).expect("the key's domain is a valid host");
    assert_eq!(host.to_string(), domain, "{key:?}");
    if let Ok(upper) = Email::parse(&text.to_ascii_uppercase()) {
        assert_eq!(upper.key(), key, "case variants share one key: {text:?}");
    }
});
