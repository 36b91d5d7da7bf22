//! The audit log table.

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, SqliteConnection, SqlitePool};

use crate::sql::{SqlFrag, SqlParam};
use crate::{AuditFilter, AuditRecord, OrgId, Result};

pub(crate) async fn insert(conn: &mut SqliteConnection, org: &OrgId, r: &AuditRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log(org_id, at, resource_type, action, status, identifier, blueprint, entity, origin, user_id, diff, message) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&org.0)
    .bind(&r.at)
    .bind(&r.resource_type)
    .bind(&r.action)
    .bind(&r.status)
    .bind(&r.identifier)
    .bind(&r.blueprint)
    .bind(&r.entity)
    .bind(&r.origin)
    .bind(&r.user_id)
    .bind(r.diff.as_ref().map(|d| d.to_string()))
    .bind(&r.message)
    .execute(conn)
    .await?;
    Ok(())
}

/// Insert many records with one statement per 500.
pub(crate) async fn insert_many(conn: &mut SqliteConnection, org: &OrgId, records: &[AuditRecord]) -> Result<()> {
    for chunk in records.chunks(500) {
        let mut q = SqlFrag::new(
            "INSERT INTO audit_log(org_id, at, resource_type, action, status, identifier, blueprint, entity, origin, user_id, diff, message) VALUES ",
        );
        for (i, r) in chunk.iter().enumerate() {
            q.push(if i == 0 { "(" } else { ", (" });
            let opt = |v: &Option<String>| v.clone().map_or(SqlParam::Null, SqlParam::Text);
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
                r.diff.as_ref().map_or(SqlParam::Null, |d| SqlParam::Text(d.to_string())),
                opt(&r.message),
            ];
            q.param_list(values).push(")");
        }
        super::entities::bind(sqlx::query(sqlx::AssertSqlSafe(q.sql)), &q.params).execute(&mut *conn).await?;
    }
    Ok(())
}

fn from_row(r: &SqliteRow) -> AuditRecord {
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

pub(crate) async fn list(pool: &SqlitePool, org: &OrgId, f: &AuditFilter) -> Result<Vec<AuditRecord>> {
    let mut q = SqlFrag::default();
    q.push("SELECT * FROM audit_log WHERE org_id = ");
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
            q.push(&format!(" AND {col} IN ("));
            for (i, v) in list.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                q.param(SqlParam::Text(v.clone()));
            }
            q.push(")");
        }
    }
    q.push(" ORDER BY id DESC LIMIT ");
    q.param(SqlParam::Int(i64::from(f.limit.clamp(1, 10_000))));
    let rows = super::entities::bind(sqlx::query::<Sqlite>(sqlx::AssertSqlSafe(q.sql.clone())), &q.params)
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().map(from_row).collect())
}
