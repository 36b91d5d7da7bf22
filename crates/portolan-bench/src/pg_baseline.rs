//! **Physical-ceiling baseline on PostgreSQL — not product code.**
//!
//! The same rows the API load creates — each entity with its relation rows and one audit row
//! whose diff is the whole entity, as the API records a creation — inserted straight into a fresh PostgreSQL database that has the store's own schema (the
//! store's migrations, applied by `sqlx::migrate!`, so every table, index and constraint of
//! `entities`, `entity_relations` and `audit_log` is there), `batch` entities per transaction
//! with multi-row `INSERT`s, `concurrency` connections at once (as the API load keeps that many
//! requests in flight). No HTTP, no JSON parsing, no validation, no lookups: the rate is an upper
//! bound for what the API could reach on this machine and server, and the report gives the
//! API's rate as a fraction of it.
//!
//! Like `baseline.rs` (SQLite), this SQL exists only to measure that ceiling.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Context as _;
use sqlx::{Connection as _, PgConnection, Postgres, QueryBuilder, Row as _};

use crate::baseline::{AT, BY, ORG, PreparedRow, Variant, prepare};
use crate::model::Dataset;
use crate::server::FreshPg;

/// Load `data` into a fresh database on the server of `admin_url` (dropped afterwards).
pub async fn run(admin_url: &str, data: &Dataset, batch: usize, concurrency: usize) -> anyhow::Result<Variant> {
    let db = FreshPg::create(admin_url).await?;
    let result = load(&db.url, data, batch, concurrency).await;
    db.drop_database().await?;
    result
}

async fn load(url: &str, data: &Dataset, batch: usize, concurrency: usize) -> anyhow::Result<Variant> {
    let mut conn = PgConnection::connect(url).await.context("cannot connect to the baseline database")?;
    sqlx::migrate!("../portolan-store/migrations/postgres")
        .run(&mut conn)
        .await
        .context("cannot apply the store's migrations to the baseline database")?;
    sqlx::query("INSERT INTO organizations(id, name, created_at) VALUES ($1, $1, $2)")
        .bind(ORG)
        .bind(AT)
        .execute(&mut conn)
        .await?;
    for (bp, _) in data.order() {
        sqlx::query(
            "INSERT INTO blueprints(org_id, identifier, body, created_at, created_by, updated_at, updated_by) \
             VALUES ($1, $2, '{}', $3, $4, $3, $4)",
        )
        .bind(ORG)
        .bind(bp)
        .bind(AT)
        .bind(BY)
        .execute(&mut conn)
        .await?;
    }
    conn.close().await?;
    let rows = Arc::new(prepare(data));
    // Blueprint by blueprint, as the API load goes (relation targets exist before their sources).
    let mut phases: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    for (_, n) in data.order() {
        phases.push((start, start + n));
        start += n;
    }
    let relation_rows = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    for (from, to) in phases {
        let chunks: Arc<Vec<(usize, usize)>> =
            Arc::new((from..to).step_by(batch.max(1)).map(|s| (s, (s + batch.max(1)).min(to))).collect());
        let next = Arc::new(AtomicUsize::new(0));
        let mut workers = Vec::new();
        for _ in 0..concurrency.max(1) {
            let (url, rows, chunks, next, relation_rows) =
                (url.to_string(), rows.clone(), chunks.clone(), next.clone(), relation_rows.clone());
            workers.push(tokio::spawn(async move {
                let mut conn = PgConnection::connect(&url).await?;
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some((a, b)) = chunks.get(k) else { break };
                    let n = insert_batch(&mut conn, &rows[*a..*b]).await?;
                    relation_rows.fetch_add(n, Ordering::Relaxed);
                }
                conn.close().await?;
                Ok::<_, anyhow::Error>(())
            }));
        }
        for w in workers {
            w.await.context("a baseline worker panicked")??;
        }
    }
    let elapsed = started.elapsed();
    Ok(Variant { rows: rows.len(), relation_rows: relation_rows.load(Ordering::Relaxed), elapsed })
}

/// One transaction: the entities (row ids returned), their relation rows, one audit row each.
async fn insert_batch(conn: &mut PgConnection, part: &[PreparedRow]) -> anyhow::Result<usize> {
    let mut tx = conn.begin().await?;
    let mut q = QueryBuilder::<Postgres>::new(
        "INSERT INTO entities(org_id, blueprint, identifier, title, icon, team, properties, relations, \
         created_at, created_by, updated_at, updated_by, datasource) ",
    );
    q.push_values(part, |mut b, r| {
        b.push_bind(ORG).push_bind(r.blueprint).push_bind(r.identifier.as_str()).push_bind(r.title.as_str());
        b.push_bind(None::<String>).push("'[]'::jsonb").push_bind(r.properties.as_str()).push_unseparated("::jsonb");
        b.push_bind(r.relations.as_str()).push_unseparated("::jsonb");
        b.push_bind(AT).push_bind(BY).push_bind(AT).push_bind(BY).push_bind(None::<String>);
    });
    q.push(" RETURNING rid");
    let rids: Vec<i64> = q.build().fetch_all(&mut *tx).await?.iter().map(|r| r.get(0)).collect();
    let edges: Vec<(i64, &str, &str)> = part
        .iter()
        .zip(&rids)
        .flat_map(|(r, rid)| r.edges.iter().map(move |(rel, t)| (*rid, rel.as_str(), t.as_str())))
        .collect();
    if !edges.is_empty() {
        let mut q = QueryBuilder::<Postgres>::new(
            "INSERT INTO entity_relations(org_id, src_rid, relation, target_blueprint, target_identifier, required) ",
        );
        q.push_values(&edges, |mut b, (rid, rel, target)| {
            b.push_bind(ORG).push_bind(*rid).push_bind(*rel).push_bind(*rel).push_bind(*target).push_bind(false);
        });
        q.build().execute(&mut *tx).await?;
    }
    let mut q = QueryBuilder::<Postgres>::new(
        "INSERT INTO audit_log(org_id, at, resource_type, action, status, identifier, blueprint, entity, origin, \
         user_id, diff) ",
    );
    q.push_values(part, |mut b, r| {
        b.push_bind(ORG).push_bind(AT).push_bind("entity").push_bind("CREATE").push_bind("SUCCESS");
        b.push_bind(r.identifier.as_str()).push_bind(r.blueprint).push_bind(r.identifier.as_str());
        b.push_bind("API").push_bind(BY).push_bind(r.audit_diff.as_str()).push_unseparated("::json");
    });
    q.build().execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(edges.len())
}
