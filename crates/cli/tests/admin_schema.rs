//! schemathesis (property-based API testing from PyPI) against the admin API's OpenAPI
//! document, on a real server with real data: every generated request, valid or not, must
//! get an answer the document allows, never a 5xx. `scripts/test.sh` installs schemathesis
//! into `tests/admin-api/.venv` (or set `SCHEMATHESIS` to its path).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;

use common::*;

fn schemathesis() -> PathBuf {
    if let Ok(p) = std::env::var("SCHEMATHESIS") {
        return PathBuf::from(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = root.join("tests/admin-api/.venv/bin/schemathesis");
    assert!(
        venv.is_file(),
        "{} is missing: run `python3 -m venv tests/admin-api/.venv && tests/admin-api/.venv/bin/pip install -r tests/admin-api/requirements.txt` (scripts/test.sh does it), or set SCHEMATHESIS",
        venv.display()
    );
    venv
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let tool = schemathesis();
    let port = free_port();
    let srv = TestServer::start_with(&[("PORTCULLIS_ADMIN_LISTEN", &format!("127.0.0.1:{port}"))]);
    let seed = srv.seed();
    // Some events to page through.
    let http = srv.http();
    for _ in 0..3 {
        let (_, c) = pkce();
        browser_login(
            &srv,
            &http,
            &mut Jar::default(),
            &authorize_url(&srv, &seed.web_id, CB, &c, &[]),
            "alice@example.com",
            "not the password, again",
        )
        .await;
    }
    let token = srv.cli_json(&["admin", "rotate-token"], None)["admin_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let ca = srv.db_path().with_file_name("st-ca.pem");
    std::fs::write(&ca, &srv.ca_pem).unwrap();
    let base = format!("https://localhost:{port}");
    let out = tokio::process::Command::new(&tool)
        .args([
            "run",
            &format!("{base}/openapi.json"),
            "--url",
            &base,
            "--header",
            &format!("Authorization: Bearer {token}"),
            "--tls-verify",
            ca.to_str().unwrap(),
            "--checks",
            "all",
            "--max-examples",
            "60",
            "--workers",
            "1",
            "--request-timeout",
            "10",
        ])
        .env("SCHEMATHESIS_HOOKS", "")
        .env("NO_COLOR", "1")
        // Its cache goes in the test's own directory, not the source tree.
        .current_dir(srv.db_path().parent().unwrap())
        .kill_on_drop(true)
        .output()
        .await
        .expect("running schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis failed ({}):\n{stdout}\n{stderr}\nserver log (tail):\n{}",
        out.status,
        srv.log()
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
    eprintln!("{stdout}");
    assert!(
        !srv.log().contains("\"level\":\"ERROR\""),
        "an error in the server log"
    );
}
