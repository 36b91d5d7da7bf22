//! The browser tests of the web UI (`tests/browser/`, Playwright driving Debian's chromium),
//! run from `cargo test`: starts the real `portolan` binary on 127.0.0.1:0 with a bootstrap
//! admin, runs `npx playwright test` against it and fails if Playwright does. Screenshots of the
//! main pages land in `target/browser-screenshots/`.
//!
//! Skipped, saying so on stderr, when `tests/browser/node_modules` or `/usr/bin/chromium` is
//! missing (`.ci/browser-setup` installs both); set `PORTOLAN_REQUIRE_BROWSER_TESTS=1` to make
//! a missing prerequisite a failure instead.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const EMAIL: &str = "admin@example.com";
const PASSWORD: &str = "browser-test-password";
/// API credentials the spec uses to create an integration and ship its log lines, as Ocean does.
const CLIENT_ID: &str = "browser-test-client";
const CLIENT_SECRET: &str = "browser-test-client-secret";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn skip(why: &str) {
    if std::env::var_os("PORTOLAN_REQUIRE_BROWSER_TESTS").is_some() {
        panic!("browser tests required (PORTOLAN_REQUIRE_BROWSER_TESTS) but {why}");
    }
    let msg =
        format!("\nNOTE: browser tests SKIPPED: {why}. Run .ci/browser-setup to install chromium and Playwright.\n");
    let _ = std::io::stderr().lock().write_all(msg.as_bytes());
}

#[test]
fn web_ui_in_chromium() {
    let root = workspace();
    let dir = root.join("tests/browser");
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !dir.join("node_modules/@playwright/test").is_dir() {
        return skip("tests/browser/node_modules is missing (npm ci in tests/browser)");
    }
    if !Path::new(&chromium).exists() {
        return skip(&format!("{chromium} is missing (apt-get install -y chromium)"));
    }
    let data = std::env::temp_dir().join(format!("portolan-browser-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let mut child = Command::new(env!("CARGO_BIN_EXE_portolan"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("PORTOLAN_BOOTSTRAP_ADMIN_EMAIL", EMAIL)
        .env("PORTOLAN_BOOTSTRAP_ADMIN_PASSWORD", PASSWORD)
        .env("PORTOLAN_BOOTSTRAP_CLIENT_ID", CLIENT_ID)
        .env("PORTOLAN_BOOTSTRAP_CLIENT_SECRET", CLIENT_SECRET)
        .env("PORTOLAN_LOG_LEVEL", "warn")
        .env_remove("PORTOLAN_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start portolan");
    let stdout = child.stdout.take().expect("stdout");
    let server = Server(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("listening on ") {
                let _ = tx.send(url.trim().to_string());
            }
        }
    });
    let url = rx.recv_timeout(Duration::from_secs(60)).expect("the server did not say where it listens");
    let shots = root.join("target/browser-screenshots");
    let started = Instant::now();
    let status = Command::new("npx")
        .args(["--no-install", "playwright", "test"])
        .current_dir(&dir)
        .env("PORTOLAN_URL", &url)
        .env("PORTOLAN_ADMIN_EMAIL", EMAIL)
        .env("PORTOLAN_ADMIN_PASSWORD", PASSWORD)
        .env("PORTOLAN_CLIENT_ID", CLIENT_ID)
        .env("PORTOLAN_CLIENT_SECRET", CLIENT_SECRET)
        .env("SCREENSHOT_DIR", &shots)
        .env("CHROMIUM_PATH", &chromium)
        .env("PLAYWRIGHT_OUTPUT_DIR", root.join("target/playwright-results"))
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .status()
        .expect("run npx playwright test");
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
    assert!(
        status.success(),
        "playwright failed ({status}) after {:?}; see target/playwright-results",
        started.elapsed()
    );
    for name in [
        "01-signin",
        "02-builder",
        "03-catalog",
        "04-entity",
        "05-audit",
        "06-export",
        "07-data-sources",
        "08-event-log",
        "09-webhook",
        "10-run-form",
        "11-run",
        "12-self-service",
        "13-dashboard",
        "14-sso-signed-in",
        "15-sso-provider-error",
        "32-blueprint-permissions",
        "33-saml-settings",
        "34-saml-signed-in",
        "35-saml-idp-error",
    ] {
        let f = shots.join(format!("{name}.png"));
        assert!(f.metadata().map(|m| m.len() > 1000).unwrap_or(false), "screenshot {} missing", f.display());
    }
}
