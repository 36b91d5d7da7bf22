//! Fresh PostgreSQL databases for tests, from `PORTOLAN_TEST_DATABASE_URL`
//! (`postgres://postgres@127.0.0.1:5432/test`): each test gets its own database
//! (`portolan_t_<pid>_<n>_<nanos>`), so tests run in parallel; it is dropped when its guard goes.

#![allow(dead_code, clippy::expect_used)]

use portolan_store::PgStore;

/// A store on a fresh database, dropped (best effort) when the guard goes.
pub struct TestDb {
    pub store: PgStore,
    pub admin_url: String,
    pub name: String,
}

impl TestDb {
    /// The URL of this test's database.
    pub fn url(&self) -> String {
        with_database(&self.admin_url, &self.name)
    }
}

impl std::ops::Deref for TestDb {
    type Target = PgStore;
    fn deref(&self) -> &PgStore {
        &self.store
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        // The test's runtime may be unwinding from a panic with connections still checked out;
        // drop the database from a runtime of our own, forcing those sessions closed.
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

/// `None` (after saying so on stderr) when PostgreSQL tests are not configured.
pub async fn fresh() -> Option<TestDb> {
    let (admin_url, name) = empty_database().await?;
    let url = with_database(&admin_url, &name);
    let store = PgStore::connect_with_pool_size(&url, 4).await.expect("store");
    Some(TestDb { store, admin_url, name })
}

/// A new, empty database: (the admin URL, its name).
pub async fn empty_database() -> Option<(String, String)> {
    let Ok(admin_url) = std::env::var("PORTOLAN_TEST_DATABASE_URL") else {
        eprintln!("skipped: PORTOLAN_TEST_DATABASE_URL not set (PostgreSQL tests not run)");
        return None;
    };
    let name = format!("portolan_t_{}", unique());
    {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&admin_url).await.expect("connect to PORTOLAN_TEST_DATABASE_URL");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create test database");
    }
    Some((admin_url, name))
}

/// `url` with its database replaced by `db`.
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

fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{}_{}_{nanos}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}
