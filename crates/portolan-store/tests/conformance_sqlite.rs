//! The conformance suite on SQLite: in memory, and on a WAL file with separate reader and
//! writer pools (the configuration `portolan serve` uses).

#![allow(clippy::expect_used)]

mod in_memory {
    portolan_store::conformance_tests!(async { portolan_store::SqliteStore::in_memory().await.expect("store") });
}

mod on_file {
    portolan_store::conformance_tests!(async { portolan_store::SqliteStore::open(&db_path()).await.expect("store") });

    /// Four slow searches of one organization on the four readers of a file store: another
    /// organization's searches are still answered at once.
    #[tokio::test]
    async fn slow_searches_of_one_org_leave_connections_to_others() {
        let store = portolan_store::SqliteStore::open(&db_path()).await.expect("store");
        let store: std::sync::Arc<dyn portolan_store::Store> = std::sync::Arc::new(store);
        let budget = std::time::Duration::from_secs(60);
        portolan_store::conformance::slow_searches_of_one_org_leave_connections_to_others(store, 4, budget).await;
    }

    /// A claim refused by the share does not wait while another connection holds the file's
    /// write lock.
    #[tokio::test]
    async fn claims_the_share_refuses_wait_for_no_writer() {
        use sqlx::{Connection, Executor};
        let path = db_path();
        let store = portolan_store::SqliteStore::open(&path).await.expect("store");
        let hold = async {
            let mut c =
                sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.expect("connect");
            c.execute("BEGIN IMMEDIATE").await.expect("write lock");
            c
        };
        portolan_store::conformance::claims_the_share_refuses_wait_for_no_writer(&store, hold).await;
    }

    /// Committed writes reach the database file within seconds, though the writer's own
    /// automatic checkpoint waits for thousands of pages: a connection of its own checkpoints
    /// after commits (`db::Checkpointer`), so the writer does not inside a commit.
    #[tokio::test]
    async fn committed_writes_reach_the_database_file_without_the_writer_checkpointing() {
        use portolan_store::conformance::{entity, model, org, write_ok};
        let path = db_path();
        let store = portolan_store::SqliteStore::open(&path).await.expect("store");
        let o = org(&*store, "ckpt").await;
        let m = model(&*store, &o).await;
        // Everything so far reaches the file (the checkpointer's first round after these commits).
        let file_len = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let settled = wait_until_stable(file_len).await;
        // A few hundred entities with text to hold: tens of new pages, far below the writer's
        // backstop (and below SQLite's default of 1,000 pages).
        let pad = "x".repeat(400);
        let es = (0..300).map(|i| entity("team", &format!("t{i}"), serde_json::json!({}), serde_json::json!({})));
        let es: Vec<_> = es
            .map(|mut e| {
                e.title = Some(format!("{pad}{}", e.identifier));
                e
            })
            .collect();
        write_ok(&*store, &o, &m, es).await;
        file_grows_past(file_len, settled).await;
        store.close().await;
    }

    /// A write outside a transaction (an integration's log lines: one statement on the writer)
    /// wakes no checkpoint, and still reaches the database file within seconds.
    #[tokio::test]
    async fn writes_outside_a_transaction_reach_the_database_file_within_seconds() {
        let path = db_path();
        let store = portolan_store::SqliteStore::open(&path).await.expect("store");
        let o = portolan_store::conformance::org(&*store, "ckpt").await;
        let file_len = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let settled = wait_until_stable(file_len).await;
        let line = |i: usize| portolan_store::IntegrationLog {
            id: String::new(),
            at: portolan_store::conformance::T0.into(),
            level: "INFO".into(),
            source: "ocean".into(),
            event: "log".into(),
            resync_id: None,
            message: format!("{}{i}", "x".repeat(400)),
            extra: serde_json::json!({}),
        };
        let lines: Vec<_> = (0..300).map(line).collect();
        store.append_integration_logs(&o, "gitlab", &lines).await.expect("append");
        file_grows_past(file_len, settled).await;
        store.close().await;
    }

    /// Wait (up to 10 s) for `f` to exceed `settled`.
    async fn file_grows_past(f: impl Fn() -> u64, settled: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while f() <= settled {
            assert!(
                std::time::Instant::now() < deadline,
                "the database file is still {settled} bytes 10 s after a commit: its pages stayed in the WAL"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// The value of `f` once it stopped changing for half a second.
    async fn wait_until_stable(f: impl Fn() -> u64) -> u64 {
        let mut last = f();
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            let now = f();
            if now == last {
                return now;
            }
            last = now;
        }
    }

    /// A database file in a directory of its own under the system's temporary directory.
    fn db_path() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("portolan-conf-{}", unique()));
        std::fs::create_dir_all(&dir).expect("dir");
        dir.join("db.sqlite")
    }

    fn unique() -> String {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        format!("{}-{}-{nanos}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
    }
}
