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

use portolan_store::conformance::{ctx, entity, model, org, port_team, put};
use portolan_store::sql::{Dialect, SqlFrag};
use portolan_store::{write_path_lookup_key, write_path_lookups};
use serde_json::json;
use sqlx::Connection as _;

/// The indexes a PostgreSQL plan reads (index, index-only and bitmap index scans).
fn indexes_in(plan: &str) -> Vec<&str> {
    plan.lines()
        .filter_map(|l| l.split(" Scan using ").nth(1).or_else(|| l.split("Bitmap Index Scan on ").nth(1)))
        .map(|rest| rest.split_whitespace().next().unwrap_or(""))
        .collect()
}

/// A fresh database and a connection to it, with autovacuum (and so auto-analyze) off on
/// `tables`: their plans are those of tables never analyzed.
async fn fresh_without_autovacuum(tables: &[&str]) -> Option<(pg::StoreDb, sqlx::PgConnection)> {
    let s = pg::fresh().await?;
    let mut conn = sqlx::PgConnection::connect(&s.url()).await.expect("connect");
    for t in tables {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("ALTER TABLE {t} SET (autovacuum_enabled = off)")))
            .execute(&mut conn)
            .await
            .expect("autovacuum off");
    }
    Some((s, conn))
}

#[tokio::test]
async fn postgresql_half() {
    pg::postgresql_half("write-path plans, tests/pg_plans").await;
}

/// 20k entities loaded in batches of 20 (services with a relation to a team and a domain), on
/// tables whose autovacuum (and so auto-analyze) is off: every write-path lookup is an index
/// access on `entities` / `entity_relations`, never a sequential scan.
#[tokio::test]
async fn write_path_lookups_use_indexes_on_never_analyzed_tables() {
    let Some((s, mut conn)) = fresh_without_autovacuum(&["entities", "entity_relations", "audit_log"]).await else {
        return;
    };
    let o = org(&*s, "plans").await;
    let m = model(&*s, &o).await;
    let teams: Vec<_> = (0..50).map(|i| entity("team", &format!("t{i}"), json!({}), json!({}))).collect();
    for chunk in teams.chunks(20) {
        let w = chunk.iter().cloned().map(|e| put(e, &m, false)).collect();
        for r in s.write_entities(&o, w, &ctx()).await.unwrap() {
            r.expect("team accepted");
        }
    }
    // Owning teams too, so that the `entity_teams` rows (kept by triggers) grow with the load,
    // and an update that moves a service to another domain moves it to another team.
    for i in 0..5 {
        port_team(&*s, &o, &format!("owners{i}")).await;
    }
    let service = |i: usize, domain: usize| {
        let mut e = entity(
            "service",
            &format!("svc-{i:05}"),
            json!({"cpu": i % 7}),
            json!({"team": format!("t{}", i % 50), "domain": format!("d{}", domain % 100)}),
        );
        e.team = vec![format!("owners{}", domain % 5)];
        put(e, &m, true)
    };
    for start in (0..20_000).step_by(20) {
        let w = (start..start + 20).map(|i| service(i, i)).collect();
        for r in s.write_entities(&o, w, &ctx()).await.unwrap() {
            r.expect("service accepted");
        }
        // Every tenth batch also moves the batch before it to another domain and team, from the
        // start of the load: updates replace relation rows (`unlink replaced relations`) and
        // `entity_teams` rows (the update trigger).
        if start % 200 == 100 {
            let w = (start - 20..start).map(|i| service(i, i + 1)).collect();
            for r in s.write_entities(&o, w, &ctx()).await.unwrap() {
                r.expect("service updated");
            }
        }
    }
    // What the store's own connections did during the load: each ran the lookups hundreds of
    // times, from an empty table on, as prepared statements. PostgreSQL plans a prepared
    // statement generically from its sixth run and keeps that plan until the table's
    // statistics change — on a never-analyzed table, never: a sequential scan chosen while the
    // table held a few rows was kept for the whole load (the EXPLAINs below, planned at 20k
    // rows, did not show it): 22.3M rows of `entities` read for this load of 20k, growing with
    // its square. Planned for each run, the lookups scan only while the tables are small (a
    // few thousand rows, a constant however large the load grows): 346,635 rows of `entities`
    // and 158,320 of `entity_relations` here, none of any other table (20k audit rows, 40k
    // relation rows, the `entity_teams` rows). The rows read by sequential scans count it, for
    // every table; a backend's statistics are flushed when it exits, so the store's
    // connections are closed first.
    s.store.close().await;
    let scanned = rows_scanned(&mut conn).await;
    eprintln!("rows read by sequential scans during the load, by table: {scanned:?}");
    assert!(scanned.iter().any(|(t, _)| t == "entities"), "statistics of entities: {scanned:?}");
    for (table, rows) in scanned {
        assert!(
            rows < 2_000_000,
            "the store's statements read {rows} rows of {table} by sequential scans during a load of \
             20k: a plan cached while the table was small"
        );
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
        // The generic plan too: sqlx prepares every statement, and from its sixth run
        // PostgreSQL may plan it without the parameters' values.
        let list = if sql.contains("src_rid") {
            format!("ARRAY[{}]::bigint[]", rids.iter().map(i64::to_string).collect::<Vec<_>>().join(", "))
        } else {
            format!("ARRAY[{}]::text[]", keys.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(", "))
        };
        let prepare = format!(
            "SET plan_cache_mode = force_generic_plan; PREPARE generic AS {}",
            SqlFrag::new(&sql).render(Dialect::Postgres)
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(prepare)).execute(&mut conn).await.expect("PREPARE");
        let generic: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN EXECUTE generic({list})")))
            .fetch_all(&mut conn)
            .await
            .expect("EXPLAIN EXECUTE")
            .iter()
            .map(|r| sqlx::Row::get(r, 0))
            .collect();
        sqlx::raw_sql("DEALLOCATE generic; RESET plan_cache_mode").execute(&mut conn).await.expect("DEALLOCATE");
        for (kind, plan) in [("custom", rows.join("\n")), ("generic", generic.join("\n"))] {
            eprintln!("{name} ({kind} plan):\n{plan}\n");
            // An index access whose conditions are the keys: not a scan, and not an index range
            // (a blueprint's rows) filtered row by row.
            let indexes = indexes_in(&plan);
            let probes_only = indexes.iter().all(|i| ["entities_lookup_key", "entity_relations_src"].contains(i));
            if plan.contains("Seq Scan") || indexes.is_empty() || !probes_only || plan.contains("Filter:") {
                failures.push(format!("{name} ({kind} plan): not an index probe per key:\n{plan}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The rows of each table read by sequential scans (tables with none left out), once every
/// other connection to this database has ended (a backend flushes its statistics as it exits).
async fn rows_scanned(conn: &mut sqlx::PgConnection) -> Vec<(String, i64)> {
    let mut others: i64 = -1;
    for _ in 0..400 {
        others = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_one(&mut *conn)
        .await
        .expect("pg_stat_activity");
        if others == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(others, 0, "the store's connections did not end within 10 s: their statistics are not flushed");
    sqlx::raw_sql("SELECT pg_stat_clear_snapshot()").execute(&mut *conn).await.expect("clear snapshot");
    sqlx::query_as(
        "SELECT relname::text, seq_tup_read FROM pg_stat_user_tables WHERE seq_tup_read > 0 \
         ORDER BY seq_tup_read DESC",
    )
    .fetch_all(&mut *conn)
    .await
    .expect("pg_stat_user_tables")
}

/// A team-scoped reader's count of one blueprint (migration 0027) reads only the teams' ranges
/// of the `entity_teams` key on never-analyzed tables — no entity, no sequential scan — for one
/// team and for several; a reader in one team pages by walking the team's key in row order.
#[tokio::test]
async fn team_scoped_counts_read_the_team_rows_key_on_never_analyzed_tables() {
    let Some((s, mut conn)) = fresh_without_autovacuum(&["entities", "entity_teams"]).await else { return };
    let o = org(&*s, "teams").await;
    let m = model(&*s, &o).await;
    for i in 0..10 {
        port_team(&*s, &o, &format!("t{i}")).await;
    }
    for start in (0..5_000).step_by(500) {
        let w = (start..start + 500)
            .map(|i| {
                let mut e = entity("service", &format!("svc-{i:05}"), json!({}), json!({}));
                e.team = vec![format!("t{}", i % 10)];
                put(e, &m, false)
            })
            .collect();
        for r in s.write_entities(&o, w, &ctx()).await.unwrap() {
            r.expect("service accepted");
        }
    }
    let mut failures = Vec::new();
    for teams in [vec!["t3".to_string()], (0..10).map(|i| format!("t{i}")).collect()] {
        let frag = portolan_store::team_count_sql(Dialect::Postgres, &o.0, "service", &teams);
        let plan = explain(&mut conn, &frag).await;
        eprintln!("{} team(s):\n{plan}\n", teams.len());
        let team_rows = ["entity_teams_pkey", "entity_teams_first", "entity_teams_others"];
        if plan.contains("Seq Scan")
            || plan.contains(" on entities")
            || !indexes_in(&plan).iter().all(|i| team_rows.contains(i))
        {
            failures.push(format!("{} team(s): not the entity_teams key alone:\n{plan}", teams.len()));
        }
        // sqlx prepares each statement, and PostgreSQL plans it generically from its sixth run:
        // the teams must not be an `ARRAY[$3, $4, …]` rebuilt for each row filtered (that made
        // a member's count twice the unrestricted one).
        let generic = generic_plan(&mut conn, &frag).await;
        eprintln!("{} team(s), generic plan:\n{generic}\n", teams.len());
        if generic.contains("Seq Scan") || generic.lines().any(|l| l.contains("Filter:") && l.contains("ARRAY[")) {
            failures.push(format!("{} team(s), generic plan: a scan or a list built per row:\n{generic}", teams.len()));
        }
        let n: i64 = sqlx::Row::get(&statement("", &frag).fetch_one(&mut conn).await.expect("count"), 0);
        assert_eq!(n, 500 * teams.len() as i64, "{teams:?}");
    }
    // A reader in one team pages by walking the team's key entries in row order, each entity
    // probed by its primary key: no sort, no scan, so the page stops at its limit.
    let mut walk = portolan_store::team_walk_sql(Dialect::Postgres, "SELECT e.identifier", &o.0, "service", "t3");
    walk.push(" AND e.title IS NULL ORDER BY et.rid LIMIT 201");
    let plan = explain(&mut conn, &walk).await;
    eprintln!("one-team page:\n{plan}\n");
    let ok = plan.contains("Nested Loop")
        && !plan.contains("Sort")
        && !plan.contains("Seq Scan")
        && indexes_in(&plan) == ["entity_teams_pkey", "entities_pkey"];
    if !ok {
        failures.push(format!("one-team page: not a walk of the team's key in row order:\n{plan}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Search rules and sorts on an aggregation property, on never-analyzed tables (a fresh
/// database after its first load and recompute): the rule reads the property's range of
/// `aggregation_values` once per statement, and the sort's per-row lookup is an index probe by
/// entity — never a scan of the values per searched row. The statements
/// are the store's shape: its filter (`e.org_id`, `e.blueprint`, the compiled rule), then its
/// order (`query::stored_value`).
#[tokio::test]
async fn aggregation_rules_and_sorts_use_indexes_on_never_analyzed_tables() {
    use portolan_store::query::{CompileCtx, compile_where_in, stored_value};
    use portolan_store::{AggregateTargets, Aggregations as _};
    let Some((s, mut conn)) = fresh_without_autovacuum(&["entities", "entity_relations", "aggregation_values"]).await
    else {
        return;
    };
    let o = org(&*s, "plans").await;
    let issue = portolan_store::conformance::bp(json!({"identifier": "issue", "title": "Issue"}));
    let service = portolan_store::conformance::bp(json!({"identifier": "service", "title": "Service",
        "relations": {"issue": {"target": "issue", "many": true}},
        "aggregationProperties": {"issues": {"title": "Issues", "target": "issue",
            "calculationSpec": {"calculationBy": "entities", "func": "count"}}}}));
    let mut m = std::collections::HashMap::new();
    for b in [issue, service] {
        s.create_blueprint(&o, &b, &ctx()).await.unwrap();
        m.insert(b.identifier.clone(), b);
    }
    let issues: Vec<_> = (0..20).map(|i| entity("issue", &format!("i{i}"), json!({}), json!({}))).collect();
    let w = issues.into_iter().map(|e| put(e, &m, false)).collect();
    for r in s.write_entities(&o, w, &ctx()).await.unwrap() {
        r.expect("issue accepted");
    }
    for start in (0..5_000).step_by(500) {
        let w = (start..start + 500)
            .map(|i| {
                let rel: Vec<String> = (0..i % 5).map(|k| format!("i{k}")).collect();
                put(entity("service", &format!("svc-{i:05}"), json!({}), json!({"issue": rel})), &m, false)
            })
            .collect();
        for r in s.write_entities(&o, w, &ctx()).await.unwrap() {
            r.expect("service accepted");
        }
    }
    let mut after = 0;
    loop {
        let t = AggregateTargets::After { after, limit: 1000 };
        let out = s.compute_aggregations(&o, "service", &m, chrono::Utc::now(), t).await.unwrap();
        match out.next {
            Some(n) => after = n,
            None => break,
        }
    }
    let analyzed: Option<i64> = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_user_tables WHERE relname IN ('entities', 'aggregation_values') \
         AND (last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL)",
    )
    .fetch_one(&mut conn)
    .await
    .expect("pg_stat_user_tables");
    assert_eq!(analyzed, Some(0), "the test needs never-analyzed tables");

    let ctx = CompileCtx {
        org_id: &o.0,
        now: chrono::Utc::now(),
        blueprints: &m,
        dialect: Dialect::Postgres,
        scorecards: None,
        team_rows: false,
        reader: None,
    };
    let scope = |f: &mut SqlFrag| {
        f.push(" FROM entities e WHERE e.org_id = ").param(o.0.as_str()).push(" AND e.blueprint = ").param("service");
    };
    let q = portolan_core::search::parse_query(&json!({"combinator": "and", "rules": [
        {"property": "issues", "operator": ">", "value": 3}]}))
    .unwrap();
    let mut rule = SqlFrag::new("SELECT e.rid");
    scope(&mut rule);
    rule.push(" AND (").append(compile_where_in(&q, &ctx, Some("service")).unwrap()).push(") ORDER BY e.rid LIMIT 51");
    let mut sort = SqlFrag::new("SELECT e.rid");
    scope(&mut sort);
    sort.push(" ORDER BY ").append(stored_value("issues")).push(" DESC NULLS LAST, e.rid DESC LIMIT 51 OFFSET 0");
    let mut failures = Vec::new();
    for (name, f) in [("rule", rule), ("sort", sort)] {
        let plan = explain(&mut conn, &f).await;
        eprintln!("{name}:\n{plan}\n");
        // An index, and for the sort's per-row lookup one whose condition has the entity: a
        // filter on it would read the property's every value for each searched row.
        if plan.contains("Seq Scan on aggregation_values")
            || !plan.contains("Index Scan using aggregation_values_")
            || plan.contains("Filter: (entity = e.identifier)")
        {
            failures.push(format!("{name}: aggregation_values not read by an index probe:\n{plan}"));
        }
        // And it runs: 1,000 services have 4 issues (a full page), all 5,000 are sorted.
        assert_eq!(statement("", &f).fetch_all(&mut conn).await.unwrap().len(), 51, "{name}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// `frag` as a PostgreSQL statement (after `prefix`, e.g. `EXPLAIN `) with its parameters bound,
/// each as its type.
fn statement(prefix: &str, frag: &SqlFrag) -> sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments> {
    use portolan_store::sql::SqlParam;
    let mut q = sqlx::query(sqlx::AssertSqlSafe(format!("{prefix}{}", frag.render(Dialect::Postgres))));
    for p in frag.params.iter().cloned() {
        q = match p {
            SqlParam::Null => q.bind(None::<String>),
            SqlParam::Bool(b) => q.bind(b),
            SqlParam::Int(i) => q.bind(i),
            SqlParam::Real(x) => q.bind(x),
            SqlParam::Text(t) => q.bind(t),
            SqlParam::Texts(v) => q.bind(v),
        };
    }
    q
}

/// The generic plan PostgreSQL makes for `frag` (the plan of a prepared statement from its
/// sixth run, parameters unknown), one line per plan row.
async fn generic_plan(conn: &mut sqlx::PgConnection, frag: &SqlFrag) -> String {
    use portolan_store::sql::SqlParam;
    let text = |t: &str| format!("'{}'", t.replace('\'', "''"));
    let args: Vec<String> = frag
        .params
        .iter()
        .map(|p| match p {
            SqlParam::Null => "NULL".to_string(),
            SqlParam::Bool(b) => b.to_string(),
            SqlParam::Int(i) => i.to_string(),
            SqlParam::Real(x) => x.to_string(),
            SqlParam::Text(t) => text(t),
            SqlParam::Texts(v) => {
                format!("ARRAY[{}]::text[]", v.iter().map(|t| text(t)).collect::<Vec<_>>().join(", "))
            }
        })
        .collect();
    let prepare =
        format!("SET plan_cache_mode = force_generic_plan; PREPARE generic AS {}", frag.render(Dialect::Postgres));
    sqlx::raw_sql(sqlx::AssertSqlSafe(prepare)).execute(&mut *conn).await.expect("PREPARE");
    let explain = format!("EXPLAIN EXECUTE generic({})", args.join(", "));
    let rows = sqlx::query(sqlx::AssertSqlSafe(explain)).fetch_all(&mut *conn).await.expect("EXPLAIN EXECUTE");
    sqlx::raw_sql("DEALLOCATE generic; RESET plan_cache_mode").execute(&mut *conn).await.expect("DEALLOCATE");
    rows.iter().map(|r| sqlx::Row::get::<String, _>(r, 0)).collect::<Vec<_>>().join("\n")
}

/// The plan PostgreSQL makes for `frag`, one line per plan row.
async fn explain(conn: &mut sqlx::PgConnection, frag: &SqlFrag) -> String {
    let rows = statement("EXPLAIN ", frag).fetch_all(conn).await.expect("EXPLAIN");
    rows.iter().map(|r| sqlx::Row::get::<String, _>(r, 0)).collect::<Vec<_>>().join("\n")
}

/// The job queue's statements (claim, queue once) on a never-analyzed `jobs` table holding
/// 20,000 finished jobs and 300 queued ones of two organizations: no sequential scan, and
/// every index they use holds unfinished jobs only (the partial indexes of migration 0025) —
/// before it the claim walked every job ever run, so workers slowed as history grew.
#[tokio::test]
async fn job_queue_statements_use_the_unfinished_jobs_indexes() {
    let Some(s) = pg::fresh().await else { return };
    let mut conn = sqlx::PgConnection::connect(&s.url()).await.expect("connect");
    sqlx::raw_sql("ALTER TABLE jobs SET (autovacuum_enabled = off)").execute(&mut conn).await.expect("autovacuum off");
    let (a, _b) = (org(&*s, "qa").await, org(&*s, "qb").await);
    sqlx::raw_sql(
        "INSERT INTO jobs(org_id, kind, payload, status, attempts, max_attempts, run_at, created_at, updated_at) \
         SELECT CASE WHEN x % 2 = 0 THEN 'org_qa' ELSE 'org_qb' END, 'action_run', '{}', \
         CASE WHEN x <= 20000 THEN 'succeeded' ELSE 'queued' END, 0, 3, '2026-01-01', '2026-01-01', '2026-01-01' \
         FROM generate_series(1, 20300) AS x",
    )
    .execute(&mut conn)
    .await
    .expect("jobs");
    let mut failures = Vec::new();
    for (name, f) in portolan_store::job_queue_statements(Dialect::Postgres, &a) {
        let plan = explain(&mut conn, &f).await;
        eprintln!("{name}:\n{plan}\n");
        let indexes = indexes_in(&plan);
        let unfinished_only =
            indexes.iter().all(|i| ["jobs_queued", "jobs_queued_kind", "jobs_running", "jobs_pkey"].contains(i));
        if plan.contains("Seq Scan on jobs") || !unfinished_only {
            failures.push(format!("{name}: reads beyond the unfinished jobs:\n{plan}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
