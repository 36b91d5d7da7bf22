//! Entity rows, relation edges, search (PostgreSQL).

use portolan_core::Entity;
use serde_json::{Map, Value};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};

use super::{audit, frag_query, pgq};
pub(super) use crate::plan::{entity_record, json_text};
use crate::query::{CompileCtx, compile_where_in};
use crate::sql::{Dialect, SqlFrag, SqlParam};
use crate::{
    AuditCtx, EntityWrite, OrgId, Page, RelTarget, Result, SearchRequest, StoreError, WriteRejection, Written,
};

/// The columns `from_row` reads; JSON columns as text.
pub(super) const COLUMNS: &str = "e.rid, e.blueprint, e.identifier, e.title, e.icon, e.team::text AS team, \
     e.properties::text AS properties, e.relations::text AS relations, e.created_at, e.created_by, e.updated_at, \
     e.updated_by, e.datasource";

/// Take the transaction-scoped advisory locks of entity keys, in hash order (so two
/// transactions locking overlapping sets cannot deadlock). Held until commit or rollback.
/// The keys are hashed here rather than by PostgreSQL (`hashtextextended`), because a key may
/// hold a NUL character, which PostgreSQL text cannot: a write of such an entity must reach its
/// build closure, whose validation rejects the identifier, as on SQLite.
pub(super) async fn lock_keys(conn: &mut PgConnection, keys: Vec<String>) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let mut hashes: Vec<i64> = keys.iter().map(|k| lock_hash(k)).collect();
    hashes.sort_unstable();
    hashes.dedup();
    sqlx::query(
        "SELECT pg_advisory_xact_lock(h) FROM \
         (SELECT h FROM unnest($1::bigint[]) WITH ORDINALITY t(h, n) ORDER BY n) s",
    )
    .bind(hashes)
    .execute(conn)
    .await?;
    Ok(())
}

/// 64-bit FNV-1a of `key`: stable across nodes, versions and platforms (a collision only
/// serializes more).
fn lock_hash(key: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

/// The name [`lock_keys`] locks for an entity (hashed; a collision only serializes more).
pub(super) fn lock_name(org: &OrgId, bp: &str, id: &str) -> String {
    format!("{}/{}/{bp}/{id}", org.0.len(), org.0)
}

/// PostgreSQL text and jsonb cannot hold the NUL character (U+0000). No stored identifier has
/// one (identifier rules forbid it), so a lookup by one finds nothing without asking the
/// database, as on SQLite; see [`nul_rejection`] for values.
pub(super) fn has_nul(s: &str) -> bool {
    s.contains('\0')
}

fn value_has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => has_nul(s),
        Value::Array(a) => a.iter().any(value_has_nul),
        Value::Object(o) => o.iter().any(|(k, v)| has_nul(k) || value_has_nul(v)),
        _ => false,
    }
}

/// The rejection of an entity PostgreSQL cannot store: one holding a NUL character (U+0000)
/// in its title, icon, teams, property values or relation values. SQLite stores any text; on
/// PostgreSQL such a write is a validation error naming the field, never an internal error.
pub(super) fn nul_rejection(e: &Entity) -> Option<WriteRejection> {
    const MSG: &str = "contains the NUL character (U+0000), which this server's database (PostgreSQL) cannot store";
    let mut errs = portolan_core::FieldErrors::default();
    for (path, v) in [("title", &e.title), ("icon", &e.icon), ("datasource", &e.datasource)] {
        if v.as_deref().is_some_and(has_nul) {
            errs.push(path, MSG);
        }
    }
    if e.team.iter().any(|t| has_nul(t)) {
        errs.push("team", MSG);
    }
    for (col, map) in [("properties", &e.properties), ("relations", &e.relations)] {
        for (k, v) in map {
            if has_nul(k) || value_has_nul(v) {
                errs.push(format!("{col}.{k}"), MSG);
            }
        }
    }
    if errs.is_empty() { None } else { Some(WriteRejection::Invalid(errs)) }
}

fn json_col<T: serde::de::DeserializeOwned + Default>(r: &PgRow, col: &str) -> T {
    let s: String = r.get(col);
    serde_json::from_str(&s).unwrap_or_default()
}

pub(super) fn from_row(r: &PgRow) -> (i64, Entity) {
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

pub(crate) async fn get(pool: &PgPool, org: &OrgId, bp: &str, id: &str) -> Result<Option<Entity>> {
    if has_nul(bp) || has_nul(id) {
        return Ok(None);
    }
    let sql = format!("SELECT {COLUMNS} FROM entities e WHERE e.org_id = ? AND e.blueprint = ? AND e.identifier = ?");
    let row = pgq(&sql).bind(&org.0).bind(bp).bind(id).fetch_optional(pool).await?;
    Ok(row.map(|r| from_row(&r).1))
}

pub(crate) async fn get_many(pool: &PgPool, org: &OrgId, bp: &str, ids: &[String]) -> Result<Vec<Entity>> {
    if has_nul(bp) {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = ids.iter().filter(|id| !has_nul(id)).cloned().collect();
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
        let rows = frag_query(&q).fetch_all(pool).await?;
        out.extend(rows.iter().map(|r| from_row(r).1));
    }
    Ok(out)
}

pub(super) async fn get_in_tx(
    conn: &mut PgConnection,
    org: &OrgId,
    bp: &str,
    id: &str,
) -> Result<Option<(i64, Entity)>> {
    if has_nul(bp) || has_nul(id) {
        return Ok(None);
    }
    let sql = format!("SELECT {COLUMNS} FROM entities e WHERE e.org_id = ? AND e.blueprint = ? AND e.identifier = ?");
    let row = pgq(&sql).bind(&org.0).bind(bp).bind(id).fetch_optional(conn).await?;
    Ok(row.map(|r| from_row(&r)))
}

async fn exists(conn: &mut PgConnection, org: &OrgId, bp: &str, id: &str) -> Result<bool> {
    if has_nul(bp) || has_nul(id) {
        return Ok(false);
    }
    let row = pgq("SELECT 1 FROM entities WHERE org_id = ? AND blueprint = ? AND identifier = ?")
        .bind(&org.0)
        .bind(bp)
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(row.is_some())
}

/// Insert or update the entity row and replace its relation edges. Returns the row id.
async fn save(conn: &mut PgConnection, org: &OrgId, rid: Option<i64>, e: &Entity, edges: &[RelTarget]) -> Result<i64> {
    let rid = match rid {
        Some(rid) => {
            pgq(
                "UPDATE entities SET title = ?, icon = ?, team = ?::jsonb, properties = ?::jsonb, relations = ?::jsonb, \
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
            pgq("DELETE FROM entity_relations WHERE src_rid = ?").bind(rid).execute(&mut *conn).await?;
            rid
        }
        None => pgq("INSERT INTO entities(org_id, blueprint, identifier, title, icon, team, properties, relations, \
             created_at, created_by, updated_at, updated_by, datasource) \
             VALUES (?, ?, ?, ?, ?, ?::jsonb, ?::jsonb, ?::jsonb, ?, ?, ?, ?, ?) RETURNING rid")
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
        pgq(
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
    pool: &PgPool,
    org: &OrgId,
    writes: Vec<EntityWrite>,
    ctx: &AuditCtx,
) -> Result<Vec<std::result::Result<Written, WriteRejection>>> {
    let names: Vec<String> = writes.iter().map(|w| lock_name(org, &w.blueprint, &w.identifier)).collect();
    let mut tx = pool.begin().await?;
    lock_keys(&mut tx, names).await?;
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
        if let Some(rej) = nul_rejection(&entity) {
            out.push(Err(rej));
            continue;
        }
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

fn filter(org: &OrgId, req: &SearchRequest<'_>, select: &str) -> Result<SqlFrag> {
    let mut q = SqlFrag::new(select);
    q.push(" FROM entities e WHERE e.org_id = ").param(SqlParam::Text(org.0.clone()));
    if let Some(bp) = req.blueprint {
        if has_nul(bp) {
            q.push(" AND FALSE"); // no blueprint identifier has one (nor can PostgreSQL bind it)
            return Ok(q);
        }
        q.push(" AND e.blueprint = ").param(SqlParam::Text(bp.to_string()));
    }
    if let Some(query) = req.query {
        let ctx = CompileCtx { org_id: &org.0, now: req.now, blueprints: req.blueprints, dialect: Dialect::Postgres };
        let frag = compile_where_in(query, &ctx, req.blueprint).map_err(StoreError::Invalid)?;
        // PostgreSQL cannot bind text holding a NUL character: a query value with one is refused
        // (SQLite compares it like any other text).
        if frag.params.iter().any(|p| matches!(p, SqlParam::Text(t) if has_nul(t))) {
            return Err(StoreError::Invalid(portolan_core::FieldError::new(
                "query",
                "a value contains the NUL character (U+0000), which this server's database (PostgreSQL) cannot compare",
            )));
        }
        q.push(" AND (").append(frag).push(")");
    }
    Ok(q)
}

pub(crate) async fn count(
    pool: &PgPool,
    budget: std::time::Duration,
    org: &OrgId,
    req: &SearchRequest<'_>,
) -> Result<u64> {
    let q = filter(org, req, "SELECT COUNT(*)")?;
    let rows = super::budgeted_rows(pool, budget, &q).await?;
    Ok(rows.first().map_or(0, |row| row.get::<i64, _>(0) as u64))
}

pub(crate) async fn search(
    pool: &PgPool,
    budget: std::time::Duration,
    org: &OrgId,
    req: &SearchRequest<'_>,
) -> Result<Page> {
    let mut q = filter(org, req, &format!("SELECT {COLUMNS}"))?;
    if let Some(after) = req.after {
        q.push(" AND e.rid > ").param(SqlParam::Int(after));
    }
    let limit = i64::from(req.limit.max(1));
    q.push(" ORDER BY e.rid LIMIT ").param(SqlParam::Int(limit + 1));
    let rows = super::budgeted_rows(pool, budget, &q).await?;
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
