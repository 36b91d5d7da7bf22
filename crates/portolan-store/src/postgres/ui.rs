//! Web UI on PostgreSQL: the same as `sqlite/ui.rs`.

use serde_json::Value;
use sqlx::{PgPool, Row};

use super::pgq;
use crate::{ConfigVersion, InitialFilter, OrgId, Result, StoreError};

fn parse_json(what: &str, s: &str) -> Result<Value> {
    serde_json::from_str(s).map_err(|e| StoreError::Db(format!("stored {what} is not JSON: {e}")))
}

/// PostgreSQL text cannot hold NUL: such a blueprint has no saved filter.
fn has_nul(s: &str) -> bool {
    s.contains('\0')
}

pub(crate) async fn initial_filter(pool: &PgPool, org: &OrgId, bp: &str) -> Result<Option<InitialFilter>> {
    if has_nul(bp) {
        return Ok(None);
    }
    let row = pgq("SELECT filter, updated_at, updated_by FROM ui_initial_filters WHERE org_id = ? AND blueprint = ?")
        .bind(&org.0)
        .bind(bp)
        .fetch_optional(pool)
        .await?;
    row.map(|r| {
        Ok(InitialFilter {
            filter: parse_json("initial filter", &r.get::<String, _>(0))?,
            updated_at: r.get(1),
            updated_by: r.get(2),
        })
    })
    .transpose()
}

pub(crate) async fn set_initial_filter(pool: &PgPool, org: &OrgId, bp: &str, f: Option<&InitialFilter>) -> Result<()> {
    if has_nul(bp) {
        return Err(StoreError::Invalid(portolan_core::FieldError::new("blueprint", "cannot contain NUL")));
    }
    match f {
        Some(f) => {
            // JSON text escapes NUL as \u0000, so the filter itself is storable.
            pgq("INSERT INTO ui_initial_filters(org_id, blueprint, filter, updated_at, updated_by) \
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT (org_id, blueprint) DO UPDATE SET \
                 filter = excluded.filter, updated_at = excluded.updated_at, updated_by = excluded.updated_by")
            .bind(&org.0)
            .bind(bp)
            .bind(f.filter.to_string())
            .bind(f.updated_at.replace('\0', "\u{fffd}"))
            .bind(f.updated_by.replace('\0', "\u{fffd}"))
            .execute(pool)
            .await?;
        }
        None => {
            pgq("DELETE FROM ui_initial_filters WHERE org_id = ? AND blueprint = ?")
                .bind(&org.0)
                .bind(bp)
                .execute(pool)
                .await?;
        }
    }
    Ok(())
}

pub(crate) async fn recent_config_versions(
    pool: &PgPool,
    org: &OrgId,
    id: &str,
    limit: u32,
) -> Result<Vec<ConfigVersion>> {
    if has_nul(id) {
        return Ok(Vec::new());
    }
    let rows = pgq("SELECT version, config::text, created_at, created_by FROM integration_config_versions \
         WHERE org_id = ? AND integration = ? ORDER BY version DESC LIMIT ?")
    .bind(&org.0)
    .bind(id)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ConfigVersion {
                version: r.get(0),
                config: parse_json("config", &r.get::<String, _>(1))?,
                created_at: r.get(2),
                created_by: r.get(3),
            })
        })
        .collect()
}
