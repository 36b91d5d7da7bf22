//! A `PgStore` on a throwaway PostgreSQL database (`portolan_store::conformance::test_db`), from
//! `PORTOLAN_TEST_DATABASE_URL` (`postgres://postgres@127.0.0.1:5432/test`).

#![allow(dead_code, clippy::expect_used)]

use portolan_store::PgStore;
pub use portolan_store::conformance::test_db::{TestDb, postgresql_half};

/// A migrated store on its own database; the database is dropped when this goes (after the
/// store, whose pool `Drop` leaves to the forced `DROP DATABASE`).
pub struct StoreDb {
    pub store: PgStore,
    pub db: TestDb,
}

impl StoreDb {
    /// The URL of this test's database.
    pub fn url(&self) -> String {
        self.db.url()
    }
}

impl std::ops::Deref for StoreDb {
    type Target = PgStore;
    fn deref(&self) -> &PgStore {
        &self.store
    }
}

/// `None` (after saying so on stderr) when PostgreSQL tests are not configured.
pub async fn fresh() -> Option<StoreDb> {
    let db = TestDb::create("portolan_t").await?;
    let store = PgStore::connect_with_pool_size(&db.url(), 4).await.expect("store");
    Some(StoreDb { store, db })
}
