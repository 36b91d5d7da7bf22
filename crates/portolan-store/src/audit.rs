//! The audit log: one place builds its records, one place writes them. Records are never
//! deleted: on SQLite an organization's automation cursor (migration 0034) relies on their ids
//! never being reused.

use async_trait::async_trait;
use serde::Serialize;
use serde_json::{Value, json};

use crate::db::{Row, Tx};
use crate::sql::{SqlFrag, SqlParam};
use crate::{OrgId, Result, SqlStore};

/// Every `resourceType` the audit log holds (the API's and the UI's filters offer these).
pub const RESOURCE_TYPES: &[&str] = &[
    "blueprint",
    "entity",
    "run",
    "webhook",
    "scorecard",
    "action",
    "integration",
    "page",
    "secret",
    "organization",
    "team",
    "user",
    "credential",
];

/// Who is changing something, from where and when: stamped on audit records.
#[derive(Debug, Clone)]
pub struct AuditCtx {
    pub user_id: String,
    /// `API`, `UI`, or the writer's datasource (User-Agent).
    pub origin: String,
    pub at: String,
    /// How many automation runs led to this change (0: a person, a script or an integration).
    /// Entity changes record it on the automation events they cause, so a loop of automations
    /// can be cut.
    pub depth: u32,
}

/// One audit-log record (port-api.md §8.8).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// Assigned by the store (`aud_<n>`, increasing); ignored on append.
    pub id: String,
    pub at: String,
    pub resource_type: String,
    pub action: String,
    pub status: String,
    pub identifier: String,
    pub blueprint: Option<String>,
    pub entity: Option<String>,
    pub origin: String,
    pub user_id: String,
    pub diff: Option<Value>,
    pub message: Option<String>,
}

/// Filters of `GET /v1/audit-log`, all AND-ed.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub identifier: Option<String>,
    pub entity: Option<String>,
    pub blueprint: Option<String>,
    pub resources: Vec<String>,
    pub origin: Vec<String>,
    pub action: Option<String>,
    pub status: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// Records with an id below this one (the `n` of `aud_<n>`): the next page of a listing,
    /// which is newest first.
    pub before: Option<i64>,
    pub limit: u32,
}

#[async_trait]
pub trait Audit: Send + Sync {
    async fn append_audit(&self, org: &OrgId, records: &[AuditRecord]) -> Result<()>;
    async fn list_audit(&self, org: &OrgId, filter: &AuditFilter) -> Result<Vec<AuditRecord>>;
}

impl AuditCtx {
    /// The audit record of a successful change: the one place audit records are built (callers
    /// set `blueprint`, `entity` and `message` where they apply).
    pub(crate) fn record<T: Serialize + ?Sized>(
        &self,
        resource_type: &str,
        action: &str,
        identifier: &str,
        before: Option<&T>,
        after: Option<&T>,
    ) -> AuditRecord {
        AuditRecord {
            id: String::new(),
            at: self.at.clone(),
            resource_type: resource_type.into(),
            action: action.into(),
            status: "SUCCESS".into(),
            identifier: identifier.into(),
            blueprint: None,
            entity: None,
            origin: self.origin.clone(),
            user_id: self.user_id.clone(),
            diff: Some(json!({"before": before, "after": after})),
            message: None,
        }
    }
}

/// Append records with one statement per 500, in the caller's transaction.
pub(crate) async fn insert(tx: &mut Tx, org: &OrgId, records: &[AuditRecord]) -> Result<()> {
    insert_returning(tx, org, records, &[], false).await.map(|_| ())
}

/// [`insert`], with `event_depths[i]` (when given) the automation event depth of record `i`:
/// a record with one is a pending automation event (migration 0033). Answers each entity
/// record's row id by `(blueprint, entity)` (a batch names each entity once) when `ids` is set.
pub(crate) async fn insert_returning(
    tx: &mut Tx,
    org: &OrgId,
    records: &[AuditRecord],
    event_depths: &[Option<u32>],
    ids: bool,
) -> Result<std::collections::HashMap<(String, String), i64>> {
    let json = tx.dialect().json_cast();
    let mut out = std::collections::HashMap::new();
    for (c, chunk) in records.chunks(500).enumerate() {
        let mut q = SqlFrag::new(
            "INSERT INTO audit_log(org_id, at, resource_type, action, status, identifier, blueprint, entity, origin, user_id, event_depth, diff, message) VALUES ",
        );
        for (i, r) in chunk.iter().enumerate() {
            q.push(if i == 0 { "(" } else { ", (" });
            let opt = |v: &Option<String>| v.clone().map_or(SqlParam::Null, SqlParam::Text);
            let depth = event_depths.get(c * 500 + i).copied().flatten();
            let values = [
                SqlParam::Text(org.0.clone()),
                SqlParam::Text(r.at.clone()),
                SqlParam::Text(r.resource_type.clone()),
                SqlParam::Text(r.action.clone()),
                SqlParam::Text(r.status.clone()),
                SqlParam::Text(r.identifier.clone()),
                opt(&r.blueprint),
                opt(&r.entity),
                SqlParam::Text(r.origin.clone()),
                SqlParam::Text(r.user_id.clone()),
            ];
            // Typed: PostgreSQL takes an untyped NULL in a multi-row VALUES for text.
            q.param_list(values).push(", CAST(");
            q.param(depth.map_or(SqlParam::Null, |d| SqlParam::Int(i64::from(d)))).push(" AS BIGINT), ");
            q.param(r.diff.as_ref().map_or(SqlParam::Null, |d| SqlParam::Text(d.to_string())));
            q.push(json).push(", ");
            q.param(opt(&r.message)).push(")");
        }
        if !ids {
            tx.frag(&q).execute(&mut *tx).await?;
            continue;
        }
        q.push(" RETURNING id, blueprint, entity");
        for row in tx.frag(&q).fetch_all(&mut *tx).await? {
            let (bp, entity): (Option<String>, Option<String>) = (row.get(1), row.get(2));
            if let (Some(bp), Some(entity)) = (bp, entity) {
                out.insert((bp, entity), row.get::<i64, _>(0));
            }
        }
    }
    Ok(out)
}

fn from_row(r: &Row) -> AuditRecord {
    let diff: Option<String> = r.get("diff");
    AuditRecord {
        id: format!("aud_{}", r.get::<i64, _>("id")),
        at: r.get("at"),
        resource_type: r.get("resource_type"),
        action: r.get("action"),
        status: r.get("status"),
        identifier: r.get("identifier"),
        blueprint: r.get("blueprint"),
        entity: r.get("entity"),
        origin: r.get("origin"),
        user_id: r.get("user_id"),
        diff: diff.and_then(|d| serde_json::from_str(&d).ok()),
        message: r.get("message"),
    }
}

#[async_trait]
impl Audit for SqlStore {
    async fn append_audit(&self, org: &OrgId, records: &[AuditRecord]) -> Result<()> {
        let mut tx = self.db.begin().await?;
        insert(&mut tx, org, records).await?;
        tx.commit().await
    }

    async fn list_audit(&self, org: &OrgId, f: &AuditFilter) -> Result<Vec<AuditRecord>> {
        let db = &self.db;
        let strings = [&f.identifier, &f.entity, &f.blueprint, &f.action, &f.status, &f.from, &f.to];
        if strings
            .iter()
            .filter_map(|v| v.as_deref())
            .chain(f.resources.iter().chain(&f.origin).map(String::as_str))
            .any(|s| db.refuses(s))
        {
            return Ok(Vec::new());
        }
        let mut q = SqlFrag::default();
        q.push(
            "SELECT id, at, resource_type, action, status, identifier, blueprint, entity, origin, user_id, \
             CAST(diff AS TEXT) AS diff, message FROM audit_log WHERE org_id = ",
        );
        q.param(SqlParam::Text(org.0.clone()));
        let eq = |q: &mut SqlFrag, col: &str, v: &Option<String>| {
            if let Some(v) = v {
                q.push(&format!(" AND {col} = "));
                q.param(SqlParam::Text(v.clone()));
            }
        };
        eq(&mut q, "identifier", &f.identifier);
        eq(&mut q, "entity", &f.entity);
        eq(&mut q, "blueprint", &f.blueprint);
        eq(&mut q, "action", &f.action);
        eq(&mut q, "status", &f.status);
        if let Some(before) = f.before {
            q.push(" AND id < ");
            q.param(SqlParam::Int(before));
        }
        if let Some(from) = &f.from {
            q.push(" AND at >= ");
            q.param(SqlParam::Text(from.clone()));
        }
        if let Some(to) = &f.to {
            q.push(" AND at <= ");
            q.param(SqlParam::Text(to.clone()));
        }
        for (col, list) in [("resource_type", &f.resources), ("origin", &f.origin)] {
            if !list.is_empty() {
                q.push(&format!(" AND {col}")).in_texts(db.dialect(), list.iter().map(String::as_str), false);
            }
        }
        q.push(" ORDER BY id DESC LIMIT ");
        q.param(SqlParam::Int(i64::from(f.limit.clamp(1, 10_000))));
        let rows = db.frag(&q).fetch_all(db.read()).await?;
        Ok(rows.iter().map(from_row).collect())
    }
}
