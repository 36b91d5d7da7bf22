//! The conformance suite on SQLite: in memory, and on a WAL file with separate reader and
//! writer pools (the configuration `portolan serve` uses).

#![allow(clippy::expect_used)]

mod in_memory {
    portolan_store::conformance_tests!(async { portolan_store::SqliteStore::in_memory().await.expect("store") });
}

mod on_file {
    portolan_store::conformance_tests!(async {
        let dir = std::env::temp_dir().join(format!("portolan-conf-{}", unique()));
        std::fs::create_dir_all(&dir).expect("dir");
        portolan_store::SqliteStore::open(&dir.join("db.sqlite")).await.expect("store")
    });

    /// Four slow searches of one organization on the four readers of a file store: another
    /// organization's searches are still answered at once.
    #[tokio::test]
    async fn slow_searches_of_one_org_leave_connections_to_others() {
        let dir = std::env::temp_dir().join(format!("portolan-conf-{}", unique()));
        std::fs::create_dir_all(&dir).expect("dir");
        let store = portolan_store::SqliteStore::open(&dir.join("db.sqlite")).await.expect("store");
        let store: std::sync::Arc<dyn portolan_store::Store> = std::sync::Arc::new(store);
        let budget = std::time::Duration::from_secs(60);
        portolan_store::conformance::slow_searches_of_one_org_leave_connections_to_others(store, 4, budget).await;
    }

    /// A claim refused by the share does not wait while another connection holds the file's
    /// write lock.
    #[tokio::test]
    async fn claims_the_share_refuses_wait_for_no_writer() {
        use sqlx::{Connection, Executor};
        let dir = std::env::temp_dir().join(format!("portolan-conf-{}", unique()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("db.sqlite");
        let store = portolan_store::SqliteStore::open(&path).await.expect("store");
        let hold = async {
            let mut c =
                sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.expect("connect");
            c.execute("BEGIN IMMEDIATE").await.expect("write lock");
            c
        };
        portolan_store::conformance::claims_the_share_refuses_wait_for_no_writer(&store, hold).await;
    }

    fn unique() -> String {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        format!("{}-{}-{nanos}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
    }
}
