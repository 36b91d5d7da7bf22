//! The conformance suite on PostgreSQL, when `PORTOLAN_TEST_DATABASE_URL` names a server
//! (`postgres://postgres@127.0.0.1:5432/test`). Each test gets its own fresh database
//! (`portolan_t_<pid>_<n>_<nanos>`), created through the URL's database, so tests run in
//! parallel; it is dropped when the test's store is dropped. Without the variable each test
//! says on stderr that it was skipped and passes without touching PostgreSQL.

#![allow(clippy::expect_used)]

#[path = "support/pg.rs"]
mod pg;

use pg::{TestDb, fresh};
use portolan_store::PgStore;

portolan_store::conformance_tests!(@optional fresh());

/// Says whether this binary ran on PostgreSQL, so that plain `cargo test` shows it: without
/// `PORTOLAN_TEST_DATABASE_URL` a notice written straight to the process's stderr (libtest
/// captures only `print!`/`eprint!` output, so it shows between the test lines even when every
/// test passes); with it, the server must answer.
#[tokio::test]
async fn postgresql_half() {
    pg::postgresql_half("store conformance, tests/conformance_postgres").await;
}

/// A claim refused by the share does not wait while another session holds the claim lock.
#[tokio::test]
async fn claims_the_share_refuses_wait_for_no_claim_lock() {
    use sqlx::Connection;
    let Some(store) = fresh().await else { return };
    let url = store.url();
    let hold = async {
        let mut c = sqlx::PgConnection::connect(&url).await.expect("connect");
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(portolan_store::CLAIM_LOCK)
            .execute(&mut c)
            .await
            .expect("claim lock");
        c
    };
    portolan_store::conformance::claims_the_share_refuses_wait_for_no_writer(&*store, hold).await;
}

/// Several nodes starting at once on an empty database all come up, and the migrations ran
/// exactly once.
#[tokio::test]
async fn migrations_run_once_when_nodes_start_together() {
    let Some(db) = TestDb::create("portolan_t").await else { return };
    let url = db.url();
    let nodes: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PgStore::connect_with_pool_size(&url, 2).await })
        })
        .collect();
    let mut stores = Vec::new();
    for n in nodes {
        stores.push(n.await.expect("join").expect("node starts"));
    }
    // `db` drops the database also when an assertion below fails.
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
    let applied: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations").fetch_one(&mut conn).await.expect("count");
    let migrations = sqlx::migrate!("./migrations/postgres").iter().count();
    assert_eq!(applied as usize, migrations, "every migration applied once");
    drop(conn);
    for s in stores {
        s.close().await;
    }
    drop(db);
}

/// Three slow searches of one organization on a pool of three: another organization's
/// searches are still answered at once.
#[tokio::test]
async fn slow_searches_of_one_org_leave_connections_to_others() {
    let Some(db) = fresh().await else { return };
    let url = db.url();
    let store = PgStore::connect_with_pool_size(&url, 3).await.expect("store");
    let store: std::sync::Arc<dyn portolan_store::Store> = std::sync::Arc::new(store);
    let budget = std::time::Duration::from_secs(6);
    portolan_store::conformance::slow_searches_of_one_org_leave_connections_to_others(store, 3, budget).await;
    drop(db);
}

/// Two nodes (stores) on one database: concurrent read-modify-writes of one entity lose no
/// update, and concurrent creates of one entity give one create and conflicts for the rest.
#[tokio::test]
async fn concurrent_writes_from_two_nodes_are_serialized_per_entity() {
    use portolan_store::conformance::{ctx, entity, model, org, put};
    use portolan_store::{EntityWrite, WriteRejection};
    use serde_json::json;
    use std::sync::Arc;

    let Some(db) = fresh().await else { return };
    let url = db.url();
    let other = PgStore::connect_with_pool_size(&url, 4).await.expect("second node");
    let nodes: [Arc<PgStore>; 2] = [Arc::new(db.store.clone()), Arc::new(other.clone())];
    let a = org(&*nodes[0], "a").await;
    let m = model(&*nodes[0], &a).await;
    let s1 = put(entity("service", "s1", json!({"cpu": 0}), json!({})), &m, true);
    for r in nodes[0].write_entities(&a, vec![s1], &ctx()).await.expect("write") {
        r.expect("created");
    }

    let increment = || EntityWrite {
        blueprint: "service".into(),
        identifier: "s1".into(),
        build: Box::new(|stored| {
            let mut e = stored.cloned().ok_or(WriteRejection::NotFound("s1".into()))?;
            let cpu = e.properties.get("cpu").and_then(|v| v.as_i64()).unwrap_or(0);
            e.properties.insert("cpu".into(), json!(cpu + 1));
            Ok((e, Vec::new()))
        }),
        create_missing_related: false,
    };
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (node, a, w) = (nodes[i % 2].clone(), a.clone(), increment());
        tasks.push(tokio::spawn(async move { node.write_entities(&a, vec![w], &ctx()).await }));
    }
    for t in tasks {
        t.await.expect("join").expect("write").into_iter().for_each(|r| drop(r.expect("incremented")));
    }
    let s1 = nodes[1].get_entity(&a, "service", "s1").await.expect("read").expect("s1");
    assert_eq!(s1.properties.get("cpu"), Some(&json!(20)));

    let create = || EntityWrite {
        blueprint: "domain".into(),
        identifier: "d1".into(),
        build: Box::new(|stored| match stored {
            Some(_) => Err(WriteRejection::Conflict("d1".into())),
            None => Ok((entity("domain", "d1", json!({}), json!({})), Vec::new())),
        }),
        create_missing_related: false,
    };
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (node, a, w) = (nodes[i % 2].clone(), a.clone(), create());
        tasks.push(tokio::spawn(async move { node.write_entities(&a, vec![w], &ctx()).await }));
    }
    let mut created = 0;
    for t in tasks {
        for r in t.await.expect("join").expect("write") {
            match r {
                Ok(w) => created += usize::from(w.created),
                Err(WriteRejection::Conflict(_)) => {}
                Err(e) => panic!("unexpected rejection {e:?}"),
            }
        }
    }
    assert_eq!(created, 1);
    other.close().await;
}

/// Walking relations backwards (`relatedTo` downstream, `matchAny`, dependents) joins
/// `entity_relations` on `(org_id, target_blueprint, target_identifier)` = an entity's key. The
/// two sides must share a collation, or PostgreSQL can use `entity_relations_target` for
/// `org_id` only and scans every edge of the organization per hop (a relatedTo search took
/// ~3 s at 100,000 entities before migration 0006).
#[tokio::test]
async fn backward_relation_hops_use_the_whole_target_index() {
    let Some(db) = fresh().await else { return };
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&db.url()).await.expect("connect");
    let collations: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, collation_name::text FROM information_schema.columns \
         WHERE (table_name = 'entities' AND column_name IN ('blueprint', 'identifier')) \
            OR (table_name = 'entity_relations' AND column_name IN ('target_blueprint', 'target_identifier')) \
         ORDER BY column_name",
    )
    .fetch_all(&mut conn)
    .await
    .expect("columns");
    assert_eq!(collations.len(), 4);
    for (table, column, collation) in &collations {
        assert_eq!(collation.as_deref(), Some("C"), "{table}.{column} must be COLLATE \"C\"");
    }
    // And the planner uses the index for the whole key of the join.
    sqlx::raw_sql(
        "SET enable_mergejoin = off; SET enable_hashjoin = off; SET enable_bitmapscan = off; \
         CREATE TEMP TABLE hop(org_id TEXT, blueprint TEXT COLLATE \"C\", identifier TEXT COLLATE \"C\")",
    )
    .execute(&mut conn)
    .await
    .expect("setup");
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN SELECT r.src_rid FROM hop t JOIN entity_relations r ON r.org_id = t.org_id \
         AND r.target_blueprint = t.blueprint AND r.target_identifier = t.identifier",
    )
    .fetch_all(&mut conn)
    .await
    .expect("explain");
    let plan = plan.join("\n");
    let cond = plan.lines().find(|l| l.contains("Index Cond")).unwrap_or_default();
    assert!(cond.contains("target_identifier"), "the target index must cover the whole key:\n{plan}");
    drop(conn);
    drop(db);
}
