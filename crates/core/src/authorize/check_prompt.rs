//! `prompt` (`none`, `login`, and `consent` / `select_account`, which always show the
//! "Continue as" step), `max_age` and `login_hint`.

use crate::error::OAuthError;
use crate::params::Params;

pub(super) struct Prompt {
    pub none: bool,
    pub login: bool,
    pub confirm: bool,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
}

pub(super) fn run(params: &Params) -> Result<Prompt, OAuthError> {
    let mut none = false;
    let mut login = false;
    let mut confirm = false;
    if let Some(p) = params.get("prompt", 128)? {
        for v in p.split(' ').filter(|v| !v.is_empty()) {
            match v {
                "none" => none = true,
                "login" => login = true,
                "consent" | "select_account" => confirm = true,
                _ => {
                    return Err(OAuthError::invalid_request(
                        "prompt must be none, login, consent or select_account",
                    ))
                }
            }
        }
        if none && p.split(' ').filter(|v| !v.is_empty()).count() > 1 {
            return Err(OAuthError::invalid_request(
                "prompt=none cannot be combined with other values",
            ));
        }
    }
    let max_age = match params.get("max_age", 12)? {
        None => None,
        Some(v) => match v.parse::<i64>() {
            Ok(n)
                if (0..=366 * 24 * 3600).contains(&n) && v.bytes().all(|b| b.is_ascii_digit()) =>
            {
                Some(n)
            }
            _ => {
                return Err(OAuthError::invalid_request(
                    "max_age must be a non-negative number of seconds",
                ))
            }
        },
    };
    let login_hint = params.get_text("login_hint", 320)?.map(str::to_owned);
    Ok(Prompt {
        none,
        login,
        confirm,
        max_age,
        login_hint,
    })
}
