//! PostgreSQL test databases: with `PORTOLAN_TEST_DATABASE_URL` naming a server
//! (`postgres://postgres@127.0.0.1:5432/test`), each test gets a fresh database
//! (`portolan_api_<pid>_<n>_<nanos>`), created through the URL's database, so tests run in
//! parallel; it is dropped when the test's [`TestDb`] goes, also when the test panics.
//! (The store's `tests/conformance_postgres.rs` does the same for the conformance suite.)

#![allow(dead_code, clippy::expect_used)]

use std::io::Write;

pub const ENV: &str = "PORTOLAN_TEST_DATABASE_URL";

/// A fresh, empty database; dropped (best effort) on drop.
pub struct TestDb {
    admin_url: String,
    name: String,
}

impl TestDb {
    /// `None` (after saying so on stderr) when PostgreSQL tests are not configured.
    pub async fn create() -> Option<TestDb> {
        let Ok(admin_url) = std::env::var(ENV) else {
            eprintln!("skipped: {ENV} not set (PostgreSQL half of the HTTP tests not run)");
            return None;
        };
        let name = format!("portolan_api_{}", unique());
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {ENV} ({}): {e}", redact(&admin_url)));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        Some(TestDb { admin_url, name })
    }

    /// The URL of this database.
    pub fn url(&self) -> String {
        with_database(&self.admin_url, &self.name)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        // The test's runtime may be unwinding from a panic, and the server it spawned still
        // holds pooled connections: drop the database from a runtime of our own, forcing those
        // sessions closed.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&url).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await;
                }
            });
        })
        .join();
    }
}

/// The body of the one test every PostgreSQL test binary has, so that plain `cargo test` shows
/// whether the PostgreSQL half ran: without `PORTOLAN_TEST_DATABASE_URL` it writes a notice
/// straight to the process's stderr (libtest captures only `print!`/`eprint!` output, so the
/// notice shows between the test lines even when every test passes); with it, it checks the
/// server answers.
pub async fn postgresql_half(what: &str) {
    match std::env::var(ENV) {
        Err(_) => {
            let msg = format!(
                "\nNOTE: PostgreSQL half SKIPPED ({what}): {ENV} is not set, so this binary's tests ran \
                 nothing on PostgreSQL.\n      Set it (e.g. {ENV}=postgres://postgres@127.0.0.1:5432/test) to run \
                 them.\n"
            );
            let _ = std::io::stderr().lock().write_all(msg.as_bytes());
        }
        Ok(url) => {
            use sqlx::Connection;
            let conn = sqlx::PgConnection::connect(&url).await;
            assert!(conn.is_ok(), "{ENV} is set but PostgreSQL is unreachable ({}): {:?}", redact(&url), conn.err());
        }
    }
}

/// `url` with its password replaced by `***`.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
            None => url.to_string(),
        },
        _ => url.to_string(),
    }
}

/// `url` with its database replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{}_{}_{nanos}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}
