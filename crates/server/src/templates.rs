//! Server-rendered pages with minijinja. Every template name ends in `.html`, which is what
//! turns on minijinja's auto-escaping (a test below proves it).

use minijinja::Environment;
use serde::Serialize;

/// The compiled templates.
pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    pub fn new() -> Result<Self, minijinja::Error> {
        let mut env = Environment::new();
        env.add_template("base.html", include_str!("../templates/base.html"))?;
        env.add_template("login.html", include_str!("../templates/login.html"))?;
        env.add_template("continue.html", include_str!("../templates/continue.html"))?;
        env.add_template(
            "interstitial.html",
            include_str!("../templates/interstitial.html"),
        )?;
        env.add_template("error.html", include_str!("../templates/error.html"))?;
        env.add_template(
            "returning.html",
            include_str!("../templates/returning.html"),
        )?;
        env.add_template("index.html", include_str!("../templates/index.html"))?;
        env.add_template("logout.html", include_str!("../templates/logout.html"))?;
        env.add_template("sessions.html", include_str!("../templates/sessions.html"))?;
        env.add_template("password.html", include_str!("../templates/password.html"))?;
        env.add_template(
            "logout_hop.html",
            include_str!("../templates/logout_hop.html"),
        )?;
        env.add_template(
            "signed_out.html",
            include_str!("../templates/signed_out.html"),
        )?;
        Ok(Self { env })
    }

    /// Renders `name` with `ctx`; a rendering failure becomes a plain, safe message.
    pub fn render<S: Serialize>(&self, name: &str, ctx: S) -> String {
        match self.env.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(html) => html,
            Err(e) => {
                tracing::error!(template = name, error = %e, "template rendering failed");
                "<!doctype html><title>Error</title><p>Something went wrong.</p>".to_owned()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_escapes_user_input() {
        let t = Templates::new().unwrap();
        let evil = "<script>alert(1)</script>\"'&";
        for name in [
            "login.html",
            "continue.html",
            "error.html",
            "logout.html",
            "signed_out.html",
            "sessions.html",
            "password.html",
        ] {
            let html = t.render(
                name,
                minijinja::context! {
                    client_name => evil, login_hint => evil, error => evil, user_email => evil,
                    title => evil, message => evil, code => evil, csrf_token => "t",
                    client_id => evil, post_logout_redirect_uri => evil, state => evil,
                    location => evil,
                    sessions => vec![minijinja::context! {
                        id => evil, device => evil, address => evil, created => evil,
                        last_active => evil, current => true,
                    }],
                },
            );
            assert!(!html.contains("<script>alert(1)"), "{name} did not escape");
            assert!(
                html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
                "{name}: {html}"
            );
            assert!(
                !html.contains("style=") && !html.contains("onclick") && !html.contains("<script"),
                "{name} has inline script or style"
            );
        }
    }
}
