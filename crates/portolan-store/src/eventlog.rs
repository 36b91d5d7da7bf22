//! The event log shared by integrations (`il_<n>` lines) and webhooks (`wl_<n>` lines).

use serde_json::Value;

use crate::db::Db;
use crate::sql::{SqlFrag, SqlParam};
use crate::ui::parse_json;
use crate::{OrgId, Result, prefixed_rowid};

/// One line of an integration's event log.
#[derive(Debug, Clone, PartialEq)]
pub struct IntegrationLog {
    /// Assigned by the store (`il_<n>`, increasing); ignored on append.
    pub id: String,
    pub at: String,
    /// DEBUG, INFO, WARNING, ERROR, FATAL.
    pub level: String,
    /// `ocean` (shipped by the integration) or `server` (what the server saw).
    pub source: String,
    /// `log` for shipped lines; the server's: `resync_started`, `resync_finished`,
    /// `entity_rejected`, `entity_deleted`, `deletion_refused`, `deletion_confirmed`, `config_changed`.
    pub event: String,
    /// The resync the line belongs to (`rs_<n>`), if any.
    pub resync_id: Option<String>,
    pub message: String,
    pub extra: Value,
}

/// Filters of `GET /v1/integration/{id}/logs`, AND-ed.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub levels: Vec<String>,
    pub events: Vec<String>,
    pub source: Option<String>,
    pub resync_id: Option<String>,
    /// Lines with an id below (`Some(false)`: above) this one.
    pub cursor: Option<(i64, bool)>,
    /// Lines at or after / before these times.
    pub from: Option<String>,
    pub to: Option<String>,
    /// Oldest first (otherwise newest first).
    pub ascending: bool,
    pub limit: u32,
}

/// One event-log table: integrations' (`il_<n>` lines grouped by resync `rs_<n>`) or webhooks'
/// (`wl_<n>` lines grouped by delivery job `job_<n>`).
pub(crate) struct LogTable {
    table: &'static str,
    /// The column naming the integration or webhook.
    owner: &'static str,
    /// The column of the group (resync or delivery) row id.
    group: &'static str,
    line_prefix: &'static str,
    group_prefix: &'static str,
}

pub(crate) const INTEGRATION_LOG: LogTable = LogTable {
    table: "integration_logs",
    owner: "integration",
    group: "resync_id",
    line_prefix: "il_",
    group_prefix: "rs_",
};

pub(crate) const WEBHOOK_LOG: LogTable =
    LogTable { table: "webhook_logs", owner: "webhook", group: "delivery", line_prefix: "wl_", group_prefix: "job_" };

impl LogTable {
    /// Append `lines` of `owner`, one statement per 500 (on PostgreSQL a NUL becomes U+FFFD).
    pub(crate) async fn append(&self, db: &Db, org: &OrgId, owner: &str, lines: &[IntegrationLog]) -> Result<()> {
        let json = db.dialect().json_cast();
        let text = |s: &str| SqlParam::Text(db.storable(s).into_owned());
        for chunk in lines.chunks(500) {
            let (table, owner_col, group) = (self.table, self.owner, self.group);
            let mut q = SqlFrag::new(&format!(
                "INSERT INTO {table}(org_id, {owner_col}, {group}, at, level, source, event, message, extra) VALUES "
            ));
            for (i, l) in chunk.iter().enumerate() {
                q.push(if i == 0 { "(" } else { ", (" });
                let group = l.resync_id.as_deref().and_then(|r| prefixed_rowid(r, self.group_prefix));
                q.param_list([SqlParam::Text(org.0.clone()), text(owner)]).push(", ");
                // A NULL is bound as text: cast it to the column's type.
                q.push("CAST(").param(group.map_or(SqlParam::Null, SqlParam::Int)).push(" AS BIGINT), ");
                q.param_list([text(&l.at), text(&l.level), text(&l.source), text(&l.event), text(&l.message)]);
                q.push(", ").param(SqlParam::Text(l.extra.to_string())).push(json).push(")");
            }
            db.frag(&q).execute(db.write()).await?;
        }
        Ok(())
    }

    /// Lines of `owner` that `f` selects.
    pub(crate) async fn list(&self, db: &Db, org: &OrgId, owner: &str, f: &LogFilter) -> Result<Vec<IntegrationLog>> {
        let (table, owner_col, group) = (self.table, self.owner, self.group);
        let mut q = SqlFrag::new(&format!(
            "SELECT id, {group}, at, level, source, event, message, CAST(extra AS TEXT) FROM {table} WHERE org_id = "
        ));
        q.param(SqlParam::Text(org.0.clone()));
        q.push(&format!(" AND {owner_col} = ")).param(SqlParam::Text(owner.to_string()));
        for (col, list) in [("level", &f.levels), ("event", &f.events)] {
            if !list.is_empty() {
                q.push(&format!(" AND {col}")).in_texts(db.dialect(), list.iter().map(String::as_str), false);
            }
        }
        if let Some(s) = &f.source {
            q.push(" AND source = ").param(SqlParam::Text(s.clone()));
        }
        if let Some(g) = &f.resync_id {
            q.push(&format!(" AND {group} = "))
                .param(SqlParam::Int(prefixed_rowid(g, self.group_prefix).unwrap_or(-1)));
        }
        if let Some((cursor, below)) = f.cursor {
            q.push(if below { " AND id < " } else { " AND id > " }).param(SqlParam::Int(cursor));
        }
        if let Some(from) = &f.from {
            q.push(" AND at >= ").param(SqlParam::Text(from.clone()));
        }
        if let Some(to) = &f.to {
            q.push(" AND at <= ").param(SqlParam::Text(to.clone()));
        }
        q.push(if f.ascending { " ORDER BY id ASC LIMIT " } else { " ORDER BY id DESC LIMIT " });
        q.param(SqlParam::Int(i64::from(f.limit.clamp(1, 10_000))));
        // A filter with a NUL character (which PostgreSQL text cannot hold) matches no line.
        if q.texts().any(|t| db.refuses(t)) {
            return Ok(Vec::new());
        }
        let rows = db.frag(&q).fetch_all(db.read()).await?;
        rows.iter()
            .map(|r| {
                Ok(IntegrationLog {
                    id: format!("{}{}", self.line_prefix, r.get::<i64, _>(0)),
                    resync_id: r.get::<Option<i64>, _>(1).map(|n| format!("{}{n}", self.group_prefix)),
                    at: r.get(2),
                    level: r.get(3),
                    source: r.get(4),
                    event: r.get(5),
                    message: r.get(6),
                    extra: parse_json("log extra", &r.get::<String, _>(7))?,
                })
            })
            .collect()
    }
}
