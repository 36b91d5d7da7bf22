//! Web UI: saved page settings (the initial filter of a catalog page) and the paged reads the
//! pages need.

use serde_json::Value;
use sqlx::{Row, SqlitePool};

use crate::{ConfigVersion, InitialFilter, OrgId, Result, StoreError};

fn parse_json(what: &str, s: &str) -> Result<Value> {
    serde_json::from_str(s).map_err(|e| StoreError::Db(format!("stored {what} is not JSON: {e}")))
}

pub(crate) async fn initial_filter(pool: &SqlitePool, org: &OrgId, bp: &str) -> Result<Option<InitialFilter>> {
    let row =
        sqlx::query("SELECT filter, updated_at, updated_by FROM ui_initial_filters WHERE org_id = ? AND blueprint = ?")
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

pub(crate) async fn set_initial_filter(
    pool: &SqlitePool,
    org: &OrgId,
    bp: &str,
    f: Option<&InitialFilter>,
) -> Result<()> {
    match f {
        Some(f) => {
            sqlx::query(
                "INSERT INTO ui_initial_filters(org_id, blueprint, filter, updated_at, updated_by) \
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT (org_id, blueprint) DO UPDATE SET \
                 filter = excluded.filter, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
            )
            .bind(&org.0)
            .bind(bp)
            .bind(f.filter.to_string())
            .bind(&f.updated_at)
            .bind(&f.updated_by)
            .execute(pool)
            .await?;
        }
        None => {
            sqlx::query("DELETE FROM ui_initial_filters WHERE org_id = ? AND blueprint = ?")
                .bind(&org.0)
                .bind(bp)
                .execute(pool)
                .await?;
        }
    }
    Ok(())
}

pub(crate) async fn recent_config_versions(
    pool: &SqlitePool,
    org: &OrgId,
    id: &str,
    limit: u32,
) -> Result<Vec<ConfigVersion>> {
    let rows = sqlx::query(
        "SELECT version, config, created_at, created_by FROM integration_config_versions \
         WHERE org_id = ? AND integration = ? ORDER BY version DESC LIMIT ?",
    )
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
