//! Web UI page settings.

use async_trait::async_trait;
use serde_json::Value;

use crate::{OrgId, Result, SqlStore, StoreError};

/// The saved initial filter of a catalog page: `filter` is the web UI's own JSON
/// (`{"q": …, "rules": [[property, operator, value], …]}`), opaque to the store.
#[derive(Debug, Clone, PartialEq)]
pub struct InitialFilter {
    pub filter: Value,
    pub updated_at: String,
    pub updated_by: String,
}

#[async_trait]
pub trait Ui: Send + Sync {
    /// The saved initial filter of blueprint `blueprint`'s catalog page.
    async fn initial_filter(&self, org: &OrgId, blueprint: &str) -> Result<Option<InitialFilter>>;
    /// Save (`Some`, replacing any) or remove (`None`) that initial filter.
    async fn set_initial_filter(&self, org: &OrgId, blueprint: &str, filter: Option<&InitialFilter>) -> Result<()>;
}

#[async_trait]
impl Ui for SqlStore {
    async fn initial_filter(&self, org: &OrgId, blueprint: &str) -> Result<Option<InitialFilter>> {
        let db = &self.db;
        if db.refuses(blueprint) {
            return Ok(None);
        }
        let row = db
            .q("SELECT filter, updated_at, updated_by FROM ui_initial_filters WHERE org_id = ? AND blueprint = ?")
            .bind(&org.0)
            .bind(blueprint)
            .fetch_optional(db.read())
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

    async fn set_initial_filter(&self, org: &OrgId, blueprint: &str, filter: Option<&InitialFilter>) -> Result<()> {
        let db = &self.db;
        if db.refuses(blueprint) {
            return Err(StoreError::Invalid(portolan_core::FieldError::new("blueprint", "cannot contain NUL")));
        }
        match filter {
            // JSON text escapes NUL as \u0000, so the filter itself is storable.
            Some(f) => {
                db.q("INSERT INTO ui_initial_filters(org_id, blueprint, filter, updated_at, updated_by) \
                      VALUES (?, ?, ?, ?, ?) ON CONFLICT (org_id, blueprint) DO UPDATE SET \
                      filter = excluded.filter, updated_at = excluded.updated_at, updated_by = excluded.updated_by")
                    .bind(&org.0)
                    .bind(blueprint)
                    .bind(f.filter.to_string())
                    .bind(db.storable(&f.updated_at))
                    .bind(db.storable(&f.updated_by))
                    .execute(db.write())
                    .await?;
            }
            None => {
                db.q("DELETE FROM ui_initial_filters WHERE org_id = ? AND blueprint = ?")
                    .bind(&org.0)
                    .bind(blueprint)
                    .execute(db.write())
                    .await?;
            }
        }
        Ok(())
    }
}

pub(crate) fn parse_json(what: &str, s: &str) -> Result<Value> {
    serde_json::from_str(s).map_err(|e| StoreError::Db(format!("stored {what} is not JSON: {e}").into()))
}
