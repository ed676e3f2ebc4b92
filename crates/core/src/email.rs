//! E-mail addresses: parsed once into a type that can only exist valid.
//!
//! Syntax follows the RFC 5321/5322 dot-atom form (quoted local parts and address literals
//! are refused: no mailbox needs them and they are a classic source of parser differentials).
//! The domain is mapped with UTS #46 (IDN) to lower-case punycode. The comparison key also
//! lower-cases the local part, so case variants and compatibility look-alikes (full-width
//! letters, ligatures) land on the same account.

use unicode_normalization::UnicodeNormalization;

/// A valid, normalised e-mail address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email {
    display: String,
    key: String,
}

/// Why an address was refused; safe to show the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EmailError {
    #[error("the e-mail address is empty")]
    Empty,
    #[error("the e-mail address is too long")]
    TooLong,
    #[error("the e-mail address needs exactly one '@' between a name and a domain")]
    Shape,
    #[error("the part before '@' contains characters that are not allowed")]
    LocalPart,
    #[error("the domain is not a valid internet domain name")]
    Domain,
    #[error("the e-mail address contains invisible or control characters")]
    Invisible,
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

fn is_invisible(c: char) -> bool {
    c.is_control()
        || c.is_whitespace()
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
            | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
            | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFF}' | '\u{E0000}'..='\u{E0FFF}')
}

impl Email {
    /// Parses and normalises an address typed by a person or an operator.
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        let trimmed = input.trim_matches(|c: char| c == ' ' || c == '\t');
        if trimmed.is_empty() {
            return Err(EmailError::Empty);
        }
        if trimmed.len() > 320 {
            return Err(EmailError::TooLong);
        }
        if trimmed.chars().any(is_invisible) {
            return Err(EmailError::Invisible);
        }
        // Compatibility normalisation first: full-width '＠' becomes '@', 'ﬁ' becomes "fi".
        let nfkc: String = trimmed.nfkc().collect();
        if nfkc.chars().any(is_invisible) {
            return Err(EmailError::Invisible);
        }
        let (local, domain) = match nfkc.rsplit_once('@') {
            Some((l, d)) if !l.is_empty() && !d.is_empty() && !l.contains('@') => (l, d),
            _ => return Err(EmailError::Shape),
        };
        if local.len() > 64 {
            return Err(EmailError::TooLong);
        }
        if local.starts_with('.')
            || local.ends_with('.')
            || local.contains("..")
            || !local.chars().all(|c| c == '.' || is_atext(c))
        {
            return Err(EmailError::LocalPart);
        }
        let ascii_domain = idna::domain_to_ascii_strict(domain).map_err(|_| EmailError::Domain)?;
        if !valid_dns_name(&ascii_domain) {
            return Err(EmailError::Domain);
        }
        let display = format!("{local}@{ascii_domain}");
        if display.len() > 254 {
            return Err(EmailError::TooLong);
        }
        let key = format!("{}@{}", local.to_ascii_lowercase(), ascii_domain);
        Ok(Self { display, key })
    }

    /// The address as stored and shown (domain normalised, local part as typed).
    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// The comparison key: one mailbox, one account.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The local part (a context word for the password check).
    pub fn local_part(&self) -> &str {
        self.display.split('@').next().unwrap_or_default()
    }
}

fn valid_dns_name(d: &str) -> bool {
    if d.len() > 253 || !d.contains('.') {
        return false;
    }
    let labels: Vec<&str> = d.split('.').collect();
    // The top-level label must not "end in a number" in the WHATWG URL sense (all digits, or
    // `0x` and hex digits): browsers and URL parsers read such a name as an IPv4 address.
    // (Found by the e-mail fuzz target's differential oracle: `a@b.0x`.)
    let tld_ok = labels.last().is_some_and(|t| {
        let hexish = t
            .strip_prefix("0x")
            .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_hexdigit()));
        t.chars().any(|c| c.is_ascii_alphabetic()) && !hexish
    });
    tld_ok
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_idn() {
        let a = Email::parse("Alice@Example.COM").unwrap();
        assert_eq!(a.as_str(), "Alice@example.com");
        assert_eq!(a.key(), "alice@example.com");
        let b = Email::parse("ALICE@example.com").unwrap();
        assert_eq!(a.key(), b.key());
        let idn = Email::parse("bob@bücher.example").unwrap();
        assert_eq!(idn.as_str(), "bob@xn--bcher-kva.example");
        // Full-width look-alikes fold to the same key.
        let fw = Email::parse("ａｌｉｃｅ@example.com").unwrap();
        assert_eq!(fw.key(), a.key());
    }

    #[test]
    fn refuses_bad_shapes() {
        for bad in [
            "",
            "a",
            "a@",
            "@b.example",
            "a@b",
            "a@@b.example",
            "a b@c.example",
            "a..b@c.example",
            ".a@c.example",
            "a@c..example",
            "a@-c.example",
            "a\u{200B}@c.example",
            "a@c.example\n",
            "\"quoted\"@c.example",
            "a@[127.0.0.1]",
            "a@c.123",
            "a@c.0x",
            "a@c.0xff",
            "a@c.0XAB",
            "a\u{0000}@c.example",
        ] {
            assert!(Email::parse(bad).is_err(), "accepted {bad:?}");
        }
    }
}
