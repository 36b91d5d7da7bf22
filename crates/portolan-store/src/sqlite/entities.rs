//! Entity rows, relation edges, search.

use std::collections::{HashMap, HashSet};

use portolan_core::Entity;
use serde_json::{Map, Value};
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Row, Sqlite, SqliteConnection, SqlitePool};

use super::audit;
pub(super) use crate::plan::{entity_record, json_text};
use crate::query::{CompileCtx, compile_where_in};
use crate::sql::{Dialect, SqlFrag, SqlParam};
use crate::{
    AuditCtx, EntityWrite, OrgId, Page, RelTarget, Result, SearchRequest, StoreError, WriteRejection, Written,
};

pub(super) const COLUMNS: &str = "e.rid, e.blueprint, e.identifier, e.title, e.icon, e.team, e.properties, e.relations, \
                       e.created_at, e.created_by, e.updated_at, e.updated_by, e.datasource";

/// Bind fragment parameters to a query.
pub(crate) fn bind<'q>(
    mut q: Query<'q, Sqlite, SqliteArguments>,
    params: &[SqlParam],
) -> Query<'q, Sqlite, SqliteArguments> {
    for p in params {
        q = match p {
            SqlParam::Null => q.bind(None::<String>),
            SqlParam::Bool(b) => q.bind(*b),
            SqlParam::Int(i) => q.bind(*i),
            SqlParam::Real(f) => q.bind(*f),
            SqlParam::Text(s) => q.bind(s.clone()),
        };
    }
    q
}

fn json_col<T: serde::de::DeserializeOwned + Default>(r: &SqliteRow, col: &str) -> T {
    let s: String = r.get(col);
    serde_json::from_str(&s).unwrap_or_default()
}

pub(super) fn from_row(r: &SqliteRow) -> (i64, Entity) {
    (
        r.get("rid"),
        Entity {
            identifier: r.get("identifier"),
            title: r.get("title"),
            icon: r.get("icon"),
            blueprint: r.get("blueprint"),
            team: json_col(r, "team"),
            properties: json_col::<Map<String, Value>>(r, "properties"),
            relations: json_col::<Map<String, Value>>(r, "relations"),
            created_at: r.get("created_at"),
            created_by: r.get("created_by"),
            updated_at: r.get("updated_at"),
            updated_by: r.get("updated_by"),
            datasource: r.get("datasource"),
        },
    )
}

pub(crate) async fn get(pool: &SqlitePool, org: &OrgId, bp: &str, id: &str) -> Result<Option<Entity>> {
    let sql = format!("SELECT {COLUMNS} FROM entities e WHERE e.org_id = ? AND e.blueprint = ? AND e.identifier = ?");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&org.0).bind(bp).bind(id).fetch_optional(pool).await?;
    Ok(row.map(|r| from_row(&r).1))
}

pub(crate) async fn get_many(pool: &SqlitePool, org: &OrgId, bp: &str, ids: &[String]) -> Result<Vec<Entity>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let mut q = SqlFrag::new(&format!("SELECT {COLUMNS} FROM entities e WHERE e.org_id = "));
        q.param(SqlParam::Text(org.0.clone())).push(" AND e.blueprint = ").param(SqlParam::Text(bp.into()));
        q.push(" AND e.identifier IN (");
        for (i, id) in chunk.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.param(SqlParam::Text(id.clone()));
        }
        q.push(")");
        let rows = bind(sqlx::query(sqlx::AssertSqlSafe(q.sql)), &q.params).fetch_all(pool).await?;
        out.extend(rows.iter().map(|r| from_row(r).1));
    }
    Ok(out)
}

async fn get_in_tx(conn: &mut SqliteConnection, org: &OrgId, bp: &str, id: &str) -> Result<Option<(i64, Entity)>> {
    let sql = format!("SELECT {COLUMNS} FROM entities e WHERE e.org_id = ? AND e.blueprint = ? AND e.identifier = ?");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&org.0).bind(bp).bind(id).fetch_optional(conn).await?;
    Ok(row.map(|r| from_row(&r)))
}

async fn exists(conn: &mut SqliteConnection, org: &OrgId, bp: &str, id: &str) -> Result<bool> {
    let row = sqlx::query("SELECT 1 FROM entities WHERE org_id = ? AND blueprint = ? AND identifier = ?")
        .bind(&org.0)
        .bind(bp)
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(row.is_some())
}

/// Insert or update the entity row and replace its relation edges. Returns the row id.
async fn save(
    conn: &mut SqliteConnection,
    org: &OrgId,
    rid: Option<i64>,
    e: &Entity,
    edges: &[RelTarget],
) -> Result<i64> {
    let rid = match rid {
        Some(rid) => {
            sqlx::query(
                "UPDATE entities SET title = ?, icon = ?, team = ?, properties = ?, relations = ?, \
                 updated_at = ?, updated_by = ?, datasource = ? WHERE rid = ? AND org_id = ?",
            )
            .bind(&e.title)
            .bind(&e.icon)
            .bind(json_text(&e.team))
            .bind(json_text(&e.properties))
            .bind(json_text(&e.relations))
            .bind(&e.updated_at)
            .bind(&e.updated_by)
            .bind(&e.datasource)
            .bind(rid)
            .bind(&org.0)
            .execute(&mut *conn)
            .await?;
            sqlx::query("DELETE FROM entity_relations WHERE src_rid = ?").bind(rid).execute(&mut *conn).await?;
            rid
        }
        None => sqlx::query(
            "INSERT INTO entities(org_id, blueprint, identifier, title, icon, team, properties, relations, \
             created_at, created_by, updated_at, updated_by, datasource) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING rid",
        )
        .bind(&org.0)
        .bind(&e.blueprint)
        .bind(&e.identifier)
        .bind(&e.title)
        .bind(&e.icon)
        .bind(json_text(&e.team))
        .bind(json_text(&e.properties))
        .bind(json_text(&e.relations))
        .bind(&e.created_at)
        .bind(&e.created_by)
        .bind(&e.updated_at)
        .bind(&e.updated_by)
        .bind(&e.datasource)
        .fetch_one(&mut *conn)
        .await?
        .get(0),
    };
    for edge in edges {
        sqlx::query(
            "INSERT INTO entity_relations(org_id, src_rid, relation, target_blueprint, target_identifier, required) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&org.0)
        .bind(rid)
        .bind(&edge.relation)
        .bind(&edge.target_blueprint)
        .bind(&edge.target_identifier)
        .bind(edge.required)
        .execute(&mut *conn)
        .await?;
    }
    Ok(rid)
}

/// One write after another, each seeing the previous ones: used when a batch names the same
/// entity twice. (Batches of distinct entities take `write::write_batch`.)
pub(super) async fn write_sequential(
    pool: &SqlitePool,
    org: &OrgId,
    writes: Vec<EntityWrite>,
    ctx: &AuditCtx,
) -> Result<Vec<std::result::Result<Written, WriteRejection>>> {
    let mut tx = pool.begin().await?;
    let mut out = Vec::with_capacity(writes.len());
    for w in writes {
        let before = get_in_tx(&mut tx, org, &w.blueprint, &w.identifier).await?;
        let (entity, edges) = match (w.build)(before.as_ref().map(|(_, e)| e)) {
            Ok(x) => x,
            Err(rej) => {
                out.push(Err(rej));
                continue;
            }
        };
        let mut stubs = Vec::new();
        let mut rejection = None;
        for edge in &edges {
            let is_self = edge.target_blueprint == entity.blueprint && edge.target_identifier == entity.identifier;
            if is_self || exists(&mut tx, org, &edge.target_blueprint, &edge.target_identifier).await? {
                continue;
            }
            if w.create_missing_related {
                stubs.push(edge);
            } else {
                rejection = Some(WriteRejection::MissingTarget {
                    relation: edge.relation.clone(),
                    blueprint: edge.target_blueprint.clone(),
                    identifier: edge.target_identifier.clone(),
                });
                break;
            }
        }
        if let Some(rej) = rejection {
            out.push(Err(rej));
            continue;
        }
        for edge in stubs {
            if exists(&mut tx, org, &edge.target_blueprint, &edge.target_identifier).await? {
                continue; // two relations naming the same missing target
            }
            let stub = Entity {
                identifier: edge.target_identifier.clone(),
                title: None,
                icon: None,
                blueprint: edge.target_blueprint.clone(),
                team: vec![],
                properties: Map::new(),
                relations: Map::new(),
                created_at: ctx.at.clone(),
                created_by: ctx.user_id.clone(),
                updated_at: ctx.at.clone(),
                updated_by: ctx.user_id.clone(),
                datasource: entity.datasource.clone(),
            };
            save(&mut tx, org, None, &stub, &[]).await?;
            let rec = entity_record(ctx, "CREATE", &stub.blueprint, &stub.identifier, None, Some(&stub));
            audit::insert(&mut tx, org, &rec).await?;
        }
        save(&mut tx, org, before.as_ref().map(|(rid, _)| *rid), &entity, &edges).await?;
        let action = if before.is_some() { "UPDATE" } else { "CREATE" };
        let rec = entity_record(
            ctx,
            action,
            &entity.blueprint,
            &entity.identifier,
            before.as_ref().map(|(_, e)| e),
            Some(&entity),
        );
        audit::insert(&mut tx, org, &rec).await?;
        out.push(Ok(Written { entity, created: before.is_none() }));
    }
    tx.commit().await?;
    Ok(out)
}

/// Remove `target` from a relation value: a single relation becomes null, a many relation
/// loses the identifier.
fn unlink(v: &Value, target: &str) -> Value {
    match v {
        Value::String(s) if s == target => Value::Null,
        Value::Array(a) => Value::Array(a.iter().filter(|x| x.as_str() != Some(target)).cloned().collect()),
        other => other.clone(),
    }
}

pub(crate) async fn delete(
    pool: &SqlitePool,
    org: &OrgId,
    bp: &str,
    ids: &[String],
    cascade: bool,
    ctx: &AuditCtx,
) -> Result<Vec<(String, String)>> {
    let mut tx = pool.begin().await?;
    let mut doomed: Vec<(i64, Entity)> = Vec::new();
    let mut doomed_keys: HashSet<(String, String)> = HashSet::new();
    for id in ids {
        match get_in_tx(&mut tx, org, bp, id).await? {
            Some(x) => {
                if doomed_keys.insert((bp.to_string(), id.clone())) {
                    doomed.push(x);
                }
            }
            None => return Err(StoreError::NotFound(format!("entity {id:?} of blueprint {bp:?}"))),
        }
    }
    // Walk edges pointing at doomed entities: required ones cascade or block, others unlink.
    let mut blocked = Vec::new();
    let mut unlinks: Vec<(i64, String, String)> = Vec::new(); // (source rid, relation, target id)
    let mut i = 0;
    while i < doomed.len() {
        let (tbp, tid) = (doomed[i].1.blueprint.clone(), doomed[i].1.identifier.clone());
        i += 1;
        let rows = sqlx::query(
            "SELECT er.src_rid, er.relation, er.required, e.blueprint, e.identifier FROM entity_relations er \
             JOIN entities e ON e.rid = er.src_rid \
             WHERE er.org_id = ? AND er.target_blueprint = ? AND er.target_identifier = ? AND e.org_id = ?",
        )
        .bind(&org.0)
        .bind(&tbp)
        .bind(&tid)
        .bind(&org.0)
        .fetch_all(&mut *tx)
        .await?;
        for r in rows {
            let key: (String, String) = (r.get(3), r.get(4));
            if doomed_keys.contains(&key) {
                continue;
            }
            let required: bool = r.get(2);
            if !required {
                unlinks.push((r.get(0), r.get(1), tid.clone()));
            } else if cascade {
                if let Some(x) = get_in_tx(&mut tx, org, &key.0, &key.1).await? {
                    doomed_keys.insert(key);
                    doomed.push(x);
                }
            } else {
                blocked.push(key);
            }
        }
    }
    if !blocked.is_empty() {
        blocked.sort();
        blocked.dedup();
        return Err(StoreError::RequiredBy {
            blueprint: bp.to_string(),
            identifier: ids.first().cloned().unwrap_or_default(),
            dependents: blocked,
        });
    }
    let mut changed: HashMap<i64, Vec<(String, String)>> = HashMap::new();
    for (rid, rel, target) in unlinks {
        changed.entry(rid).or_default().push((rel, target));
    }
    for (rid, rels) in changed {
        let sql = format!("SELECT {COLUMNS} FROM entities e WHERE e.rid = ? AND e.org_id = ?");
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(rid).bind(&org.0).fetch_optional(&mut *tx).await?
        else {
            continue;
        };
        let (_, before) = from_row(&row);
        let mut after = before.clone();
        for (rel, target) in &rels {
            if let Some(v) = after.relations.get(rel) {
                let nv = unlink(v, target);
                after.relations.insert(rel.clone(), nv);
            }
            sqlx::query("DELETE FROM entity_relations WHERE src_rid = ? AND relation = ? AND target_identifier = ?")
                .bind(rid)
                .bind(rel)
                .bind(target)
                .execute(&mut *tx)
                .await?;
        }
        after.updated_at = ctx.at.clone();
        after.updated_by = ctx.user_id.clone();
        sqlx::query("UPDATE entities SET relations = ?, updated_at = ?, updated_by = ? WHERE rid = ? AND org_id = ?")
            .bind(json_text(&after.relations))
            .bind(&after.updated_at)
            .bind(&after.updated_by)
            .bind(rid)
            .bind(&org.0)
            .execute(&mut *tx)
            .await?;
        let rec = entity_record(ctx, "UPDATE", &after.blueprint, &after.identifier, Some(&before), Some(&after));
        audit::insert(&mut tx, org, &rec).await?;
    }
    let mut deleted = Vec::with_capacity(doomed.len());
    for (rid, e) in &doomed {
        sqlx::query("DELETE FROM entities WHERE rid = ? AND org_id = ?")
            .bind(rid)
            .bind(&org.0)
            .execute(&mut *tx)
            .await?;
        let rec = entity_record(ctx, "DELETE", &e.blueprint, &e.identifier, Some(e), None);
        audit::insert(&mut tx, org, &rec).await?;
        deleted.push((e.blueprint.clone(), e.identifier.clone()));
    }
    tx.commit().await?;
    Ok(deleted)
}

fn filter(org: &OrgId, req: &SearchRequest<'_>, select: &str) -> Result<SqlFrag> {
    let mut q = SqlFrag::new(select);
    q.push(" FROM entities e WHERE e.org_id = ").param(SqlParam::Text(org.0.clone()));
    if let Some(bp) = req.blueprint {
        q.push(" AND e.blueprint = ").param(SqlParam::Text(bp.to_string()));
    }
    if let Some(query) = req.query {
        let ctx = CompileCtx { org_id: &org.0, now: req.now, blueprints: req.blueprints, dialect: Dialect::Sqlite };
        let frag = compile_where_in(query, &ctx, req.blueprint).map_err(StoreError::Invalid)?;
        q.push(" AND (").append(frag).push(")");
    }
    Ok(q)
}

pub(crate) async fn count(
    pool: &SqlitePool,
    (budget, closing): (std::time::Duration, &std::sync::Arc<std::sync::atomic::AtomicBool>),
    org: &OrgId,
    req: &SearchRequest<'_>,
) -> Result<u64> {
    let q = filter(org, req, "SELECT COUNT(*)")?;
    let mut run = super::budget::Running::start(pool, budget, closing).await?;
    let row = match bind(sqlx::query(sqlx::AssertSqlSafe(q.sql)), &q.params).fetch_one(&mut *run.conn).await {
        Ok(row) => row,
        Err(e) => return Err(run.error(e)),
    };
    Ok(row.get::<i64, _>(0) as u64)
}

pub(crate) async fn search(
    pool: &SqlitePool,
    (budget, closing): (std::time::Duration, &std::sync::Arc<std::sync::atomic::AtomicBool>),
    org: &OrgId,
    req: &SearchRequest<'_>,
) -> Result<Page> {
    let mut q = filter(org, req, &format!("SELECT {COLUMNS}"))?;
    if let Some(after) = req.after {
        q.push(" AND e.rid > ").param(SqlParam::Int(after));
    }
    let limit = i64::from(req.limit.max(1));
    q.push(" ORDER BY e.rid LIMIT ").param(SqlParam::Int(limit + 1));
    let mut run = super::budget::Running::start(pool, budget, closing).await?;
    let rows = match bind(sqlx::query(sqlx::AssertSqlSafe(q.sql)), &q.params).fetch_all(&mut *run.conn).await {
        Ok(rows) => rows,
        Err(e) => return Err(run.error(e)),
    };
    drop(run);
    let mut entities = Vec::with_capacity(rows.len());
    let mut last = None;
    for r in rows.iter().take(limit as usize) {
        let (rid, e) = from_row(r);
        last = Some(rid);
        entities.push(e);
    }
    let next = if rows.len() as i64 > limit { last } else { None };
    Ok(Page { entities, next })
}
