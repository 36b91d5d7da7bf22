//! The write path's lookups on PostgreSQL plan as index probes on a table that has never been
//! analyzed — a fresh installation receiving its first Ocean resync. The plans are read, not
//! the clock. Before issue 18 the existing-entity fetch and the relation-target check, written
//! against (org_id, blueprint, identifier), were planned on such a table as a range scan of
//! `entities_blueprint_rid` over the blueprint's rows with the identifiers as a filter — every
//! 20-entity request read the whole blueprint, so a load at Port's batch size was quadratic.
//!
//! Runs when `PORTOLAN_TEST_DATABASE_URL` names a server; otherwise says it skipped.

#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "support/pg.rs"]
mod pg;

use portolan_store::conformance::{ctx, entity, model, org, put};
use portolan_store::sql::{Dialect, SqlFrag};
use portolan_store::{write_path_lookup_key, write_path_lookups};
use serde_json::json;
use sqlx::Connection as _;

#[tokio::test]
async fn postgresql_half() {
    pg::postgresql_half("write-path plans, tests/pg_plans").await;
}

/// 20k entities loaded in batches of 20 (services with a relation to a team and a domain), on
/// tables whose autovacuum (and so auto-analyze) is off: every write-path lookup is an index
/// access on `entities` / `entity_relations`, never a sequential scan.
#[tokio::test]
async fn write_path_lookups_use_indexes_on_never_analyzed_tables() {
    let Some(s) = pg::fresh().await else { return };
    let mut conn = sqlx::PgConnection::connect(&s.url()).await.expect("connect");
    for t in ["entities", "entity_relations", "audit_log"] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("ALTER TABLE {t} SET (autovacuum_enabled = off)")))
            .execute(&mut conn)
            .await
            .expect("autovacuum off");
    }
    let o = org(&*s, "plans").await;
    let m = model(&*s, &o).await;
    let teams: Vec<_> = (0..50).map(|i| entity("team", &format!("t{i}"), json!({}), json!({}))).collect();
    for chunk in teams.chunks(20) {
        let w = chunk.iter().cloned().map(|e| put(e, &m, false)).collect();
        for r in s.write_entities(&o, w, &ctx()).await.unwrap() {
            r.expect("team accepted");
        }
    }
    for start in (0..20_000).step_by(20) {
        let w = (start..start + 20)
            .map(|i| {
                let e = entity(
                    "service",
                    &format!("svc-{i:05}"),
                    json!({"cpu": i % 7}),
                    json!({"team": format!("t{}", i % 50), "domain": format!("d{}", i % 100)}),
                );
                put(e, &m, true)
            })
            .collect();
        for r in s.write_entities(&o, w, &ctx()).await.unwrap() {
            r.expect("service accepted");
        }
    }
    let analyzed: Option<i64> = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_user_tables WHERE relname = 'entities' \
         AND (last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL)",
    )
    .fetch_one(&mut conn)
    .await
    .expect("pg_stat_user_tables");
    assert_eq!(analyzed, Some(0), "the test needs a never-analyzed entities table");

    let keys: Vec<String> =
        (0..20).map(|i| write_path_lookup_key(&o, "service", &format!("svc-{:05}", i * 997))).collect();
    let rids: Vec<i64> = (1..=20).map(|i| i * 731).collect();
    let mut failures = Vec::new();
    for (name, sql) in write_path_lookups(Dialect::Postgres) {
        let text = format!("EXPLAIN {}", SqlFrag::new(&sql).render(Dialect::Postgres));
        let q = sqlx::query(sqlx::AssertSqlSafe(text));
        let q = if sql.contains("src_rid") { q.bind(rids.clone()) } else { q.bind(keys.clone()) };
        let rows: Vec<String> = q
            .fetch_all(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("EXPLAIN {name}: {e}"))
            .iter()
            .map(|r| sqlx::Row::get(r, 0))
            .collect();
        let plan = rows.join("\n");
        eprintln!("{name}:\n{plan}\n");
        // An index access whose conditions are the keys: not a scan, and not an index range
        // (a blueprint's rows) filtered row by row.
        let indexes: Vec<&str> = plan
            .lines()
            .filter_map(|l| l.split(" Index Scan using ").nth(1).or_else(|| l.split("Bitmap Index Scan on ").nth(1)))
            .map(|rest| rest.split_whitespace().next().unwrap_or(""))
            .collect();
        let probes_only = indexes.iter().all(|i| ["entities_lookup_key", "entity_relations_src"].contains(i));
        if plan.contains("Seq Scan") || indexes.is_empty() || !probes_only || plan.contains("Filter:") {
            failures.push(format!("{name}: not an index probe per key:\n{plan}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
