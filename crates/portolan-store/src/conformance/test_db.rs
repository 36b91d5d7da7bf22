//! Throwaway PostgreSQL databases for tests (feature `testing`), from
//! `PORTOLAN_TEST_DATABASE_URL` (`postgres://postgres@127.0.0.1:5432/test`): each test creates
//! its own database (`<prefix>_<pid>_<n>_<nanos>`) through that URL, so tests run in parallel,
//! and the database is dropped when its [`TestDb`] goes, even while the test panics.
//!
//! Without the variable, [`TestDb::create`] says on stderr that the test was skipped and returns
//! `None`; [`postgresql_half`] is the test body that makes a whole binary's skip visible.

use std::io::Write;

/// The variable naming the PostgreSQL server tests run on.
pub const ENV: &str = "PORTOLAN_TEST_DATABASE_URL";

/// A fresh, empty database, dropped (best effort, closing its sessions) when this goes.
#[derive(Debug)]
pub struct TestDb {
    admin_url: String,
    name: String,
}

impl TestDb {
    /// A new database named `<prefix>_…`; `None` (after saying so on stderr) when [`ENV`] is not
    /// set. Panics when it is set but the server cannot be reached or refuses.
    pub async fn create(prefix: &str) -> Option<TestDb> {
        let Ok(admin_url) = std::env::var(ENV) else {
            eprintln!("skipped: {ENV} not set (PostgreSQL tests not run)");
            return None;
        };
        let name = format!("{prefix}_{}", unique());
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {ENV} ({}): {e}", redact(&admin_url)));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        Some(TestDb { admin_url, name })
    }

    /// The URL of this database.
    pub fn url(&self) -> String {
        with_database(&self.admin_url, &self.name)
    }

    /// The URL it was created through ([`ENV`]).
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        // The test's runtime may be unwinding from a panic with connections still checked out;
        // drop the database from a runtime of our own, forcing those sessions closed.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
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

/// The body of a test that says whether its binary ran on PostgreSQL, so that plain `cargo
/// test` shows it: without [`ENV`] a notice naming `what` written straight to the process's
/// stderr (libtest captures only `print!`/`eprint!` output, so it shows between the test lines
/// even when every test passes); with it, the server must answer.
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

/// `url` with its database replaced by `db` (query parameters kept).
pub fn with_database(url: &str, db: &str) -> String {
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

/// `url` with its password replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
            None => url.to_string(),
        },
        _ => url.to_string(),
    }
}

fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{}_{}_{nanos}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

#[cfg(test)]
mod tests {
    use super::{redact, with_database};

    #[test]
    fn urls_get_another_database_and_hide_their_password() {
        assert_eq!(with_database("postgres://u@h:5432/test", "t1"), "postgres://u@h:5432/t1");
        assert_eq!(with_database("postgres://u@h/test?sslmode=disable", "t1"), "postgres://u@h/t1?sslmode=disable");
        assert_eq!(with_database("postgres://u@h", "t1"), "postgres://u@h/t1");
        assert_eq!(redact("postgres://u:secret@h/test"), "postgres://u:***@h/test");
        assert_eq!(redact("postgres://u@h/test"), "postgres://u@h/test");
    }
}
