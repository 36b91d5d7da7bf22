//! The compiler's fixtures on PostgreSQL, when `PORTOLAN_TEST_DATABASE_URL` is set: a fresh
//! database per call of [`setup`], the PostgreSQL migrations, the same entities as SQLite.

use std::collections::HashMap;

use portolan_core::Blueprint;
use portolan_core::search::parse_query;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, PgPool, Row};

use super::{Fixture, blueprints, entities, now};
use crate::query::{CompileCtx, compile_where};
use crate::sql::{Dialect, SqlFrag};

pub(super) struct PgDb {
    pub pool: PgPool,
    admin_url: String,
    name: String,
}

impl PgDb {
    /// Drop the database (forcing the pool's sessions closed).
    pub async fn drop_db(self) {
        self.pool.close().await;
        if let Ok(mut conn) = PgConnection::connect(&self.admin_url).await {
            let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await;
        }
    }
}

/// A fresh, migrated and populated database; `None` when PostgreSQL tests are not configured.
pub(super) async fn setup() -> Option<(PgDb, HashMap<String, Blueprint>)> {
    let admin_url = std::env::var("PORTOLAN_TEST_DATABASE_URL").ok()?;
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let name = format!("portolan_q_{}_{}_{nanos}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
    let mut conn = PgConnection::connect(&admin_url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
    let url = match admin_url.rfind('/') {
        Some(i) if i > admin_url.find("://").map_or(0, |j| j + 2) => format!("{}/{name}", &admin_url[..i]),
        _ => format!("{admin_url}/{name}"),
    };
    let store = crate::PgStore::connect_with_pool_size(&url, 2).await.unwrap();
    let pool = store.pool().clone();
    let bps = blueprints();
    for org in ["org1", "org2"] {
        sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, $1, '2024-01-01T00:00:00.000Z')")
            .bind(org)
            .execute(&pool)
            .await
            .unwrap();
        let mut ids: Vec<&String> = bps.keys().collect();
        ids.sort();
        for id in ids {
            sqlx::query(
                "INSERT INTO blueprints (org_id, identifier, body, created_at, created_by, updated_at, updated_by) \
                 VALUES ($1, $2, '{}', 'c', 'u', 'c', 'u')",
            )
            .bind(org)
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
        }
    }
    let db = PgDb { pool, admin_url, name };
    for f in entities() {
        insert(&db.pool, &bps, f).await;
    }
    Some((db, bps))
}

pub(super) async fn insert(pool: &PgPool, bps: &HashMap<String, Blueprint>, f: Fixture) {
    let (org, bp, id, title, team, props, rels, created, updated, ds) = f;
    let rid: i64 = sqlx::query(
        "INSERT INTO entities (org_id, blueprint, identifier, title, team, properties, relations, created_at, \
         created_by, updated_at, updated_by, datasource) \
         VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7::jsonb, $8, 'alice', $9, 'bob', $10) RETURNING rid",
    )
    .bind(org)
    .bind(bp)
    .bind(id)
    .bind(title.as_str())
    .bind(team.to_string())
    .bind(props.to_string())
    .bind(rels.to_string())
    .bind(created)
    .bind(updated)
    .bind(ds.as_str())
    .fetch_one(pool)
    .await
    .unwrap()
    .get(0);
    for (rel, value) in rels.as_object().unwrap() {
        let def = &bps[bp].relations[rel];
        let targets: Vec<&str> = match value {
            Value::String(s) => vec![s.as_str()],
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        for t in targets {
            sqlx::query(
                "INSERT INTO entity_relations (org_id, src_rid, relation, target_blueprint, target_identifier, \
                 required) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(org)
            .bind(rid)
            .bind(rel)
            .bind(&def.target)
            .bind(t)
            .bind(def.required)
            .execute(pool)
            .await
            .unwrap();
        }
    }
}

pub(super) async fn run(pool: &PgPool, org: &str, frag: SqlFrag) -> Vec<String> {
    let mut q = SqlFrag::new("SELECT e.identifier FROM entities e WHERE e.org_id = ");
    q.param(org).push(" AND (").append(frag).push(") ORDER BY e.identifier");
    match crate::db::pg_query(&q).fetch_all(pool).await {
        Ok(rows) => rows.iter().map(|r| r.get::<String, _>(0)).collect(),
        Err(e) => panic!("{e}\nSQL: {}\nparams: {:?}", q.render(Dialect::Postgres), q.params),
    }
}

/// Runs `q` for `org` on PostgreSQL; a lone rule is wrapped in an `and` group.
pub(super) async fn search_in(pool: &PgPool, bps: &HashMap<String, Blueprint>, org: &str, q: &Value) -> Vec<String> {
    let wrapped;
    let q = if q.get("combinator").is_some() {
        q
    } else {
        wrapped = json!({"combinator": "and", "rules": [q]});
        &wrapped
    };
    let query = parse_query(q).unwrap_or_else(|e| panic!("parse {q}: {e}"));
    let ctx = CompileCtx {
        org_id: org,
        now: now(),
        blueprints: bps,
        dialect: Dialect::Postgres,
        scorecards: None,
        team_rows: false,
        reader: None,
    };
    let frag = compile_where(&query, &ctx).unwrap_or_else(|e| panic!("compile {q}: {e}"));
    run(pool, org, frag).await
}
