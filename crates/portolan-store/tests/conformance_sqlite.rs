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

    fn unique() -> String {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        format!("{}-{}-{nanos}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
    }
}
