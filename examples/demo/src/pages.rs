//! HTML pages, rendered by minijinja with auto-escaping (every template name ends in `.html`,
//! which is what turns escaping on).

use axum::response::{Html, IntoResponse, Response};
use http::StatusCode;
use minijinja::Environment;
use serde::Serialize;

use crate::config::ConfigError;

pub struct Pages {
    env: Environment<'static>,
}

impl Pages {
    pub fn new() -> Result<Self, ConfigError> {
        let mut env = Environment::new();
        for (name, text) in [
            ("base.html", include_str!("../templates/base.html")),
            ("index.html", include_str!("../templates/index.html")),
            ("message.html", include_str!("../templates/message.html")),
            ("me.html", include_str!("../templates/me.html")),
        ] {
            env.add_template(name, text)
                .map_err(|e| ConfigError(format!("template {name}: {e}")))?;
        }
        Ok(Pages { env })
    }

    /// Renders `name` with `ctx`; a template error is a bare 500 (logged).
    pub fn render<S: Serialize>(&self, status: StatusCode, name: &str, ctx: S) -> Response {
        match self.env.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(template = name, error = %e, "rendering failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "Internal error").into_response()
            }
        }
    }

    /// A page with a heading and a sentence, and optionally a link onwards or an immediate
    /// same-site move (`refresh_to`, a meta refresh: no script needed).
    pub fn message(&self, status: StatusCode, m: Message<'_>) -> Response {
        self.render(status, "message.html", m)
    }
}

#[derive(Serialize, Default)]
pub struct Message<'a> {
    pub title: &'a str,
    pub heading: &'a str,
    pub heading_id: &'a str,
    pub text: &'a str,
    pub link: Option<&'a str>,
    pub link_text: &'a str,
    pub refresh_to: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn text_is_escaped() {
        let p = Pages::new().unwrap();
        let res = p.message(
            StatusCode::OK,
            Message {
                title: "t",
                heading: "<script>alert(1)</script>",
                heading_id: "x\" onclick=\"y",
                text: "a & b",
                ..Default::default()
            },
        );
        let body = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(!body.contains("<script>"), "{body}");
        assert!(body.contains("&lt;script&gt;"), "{body}");
        assert!(!body.contains("\" onclick"), "{body}");
        assert!(body.contains("a &amp; b"), "{body}");
    }
}
