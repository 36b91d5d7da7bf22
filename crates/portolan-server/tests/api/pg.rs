//! PostgreSQL test databases for the HTTP tests: the store's `TestDb` (feature `testing`), one
//! fresh database per test (`portolan_api_<pid>_<n>_<nanos>`) created through
//! `PORTOLAN_TEST_DATABASE_URL` and dropped when the test's [`TestDb`] goes, also on panic.

#![allow(dead_code)]

#[allow(unused_imports)]
pub use portolan_store::conformance::test_db::postgresql_half;

/// A fresh, empty database for one test.
pub struct TestDb(portolan_store::conformance::test_db::TestDb);

impl TestDb {
    /// `None` (after saying so on stderr) when PostgreSQL tests are not configured.
    pub async fn create() -> Option<TestDb> {
        portolan_store::conformance::test_db::TestDb::create("portolan_api").await.map(TestDb)
    }

    /// The URL of this database.
    pub fn url(&self) -> String {
        self.0.url()
    }
}
