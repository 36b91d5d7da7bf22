//! The audit log page (filtered, newest first, a page at a time) and the audit rows the
//! entity page's history shares.

use axum::extract::{RawQuery, State};
use minijinja::Value as Mj;
use portolan_core::export::cell_text;
use portolan_store::{AuditFilter, AuditRecord};
use serde::Serialize;
use serde_json::Value;

use super::form::query_form;
use super::respond::{chrome, now_secs, page};
use super::session::WebUser;
use super::{Chrome, WebResult, format, urlencode};
use crate::state::AppState;

/// One record as the audit log and an entity's history show it.
#[derive(Serialize)]
pub(super) struct AuditRow {
    /// Safe HTML (a `<time>`).
    at: Mj,
    resource: String,
    action: String,
    status: String,
    identifier: String,
    blueprint: Option<String>,
    entity: Option<String>,
    user: String,
    origin: String,
    message: Option<String>,
    changes: Vec<Change>,
}

/// A field an entity change changed.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(super) struct Change {
    field: String,
    before: String,
    after: String,
}

/// The audit log page.
#[derive(Serialize)]
struct AuditPage {
    chrome: Chrome,
    title: &'static str,
    records: Vec<AuditRow>,
    older: Option<String>,
    newest: Option<String>,
    f: Filter,
    resource_types: &'static [&'static str],
}

/// The filter form's values.
#[derive(Serialize)]
struct Filter {
    identifier: Option<String>,
    entity: Option<String>,
    blueprint: Option<String>,
    resources: Vec<String>,
    origin: Option<String>,
    action: Option<String>,
    status: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: u32,
}

use portolan_store::RESOURCE_TYPES;

/// The fields a diff changed, with their text before and after, for `properties.*`, `relations.*` and the
/// top-level fields.
fn diff_fields(diff: &Value) -> Vec<Change> {
    let before = &diff["before"];
    let after = &diff["after"];
    let mut out = Vec::new();
    let mut keys: Vec<String> = Vec::new();
    for side in [before, after] {
        if let Some(o) = side.as_object() {
            for (k, v) in o {
                if matches!(k.as_str(), "properties" | "relations") {
                    if let Some(inner) = v.as_object() {
                        for ik in inner.keys() {
                            let key = format!("{k}.{ik}");
                            if !keys.contains(&key) {
                                keys.push(key);
                            }
                        }
                    }
                } else if !matches!(k.as_str(), "updatedAt" | "updatedBy" | "createdAt" | "createdBy")
                    && !keys.contains(k)
                {
                    keys.push(k.clone());
                }
            }
        }
    }
    for k in keys {
        let get = |side: &Value| -> Value {
            match k.split_once('.') {
                Some((top, inner)) if matches!(top, "properties" | "relations") => side[top][inner].clone(),
                _ => side[&k].clone(),
            }
        };
        let (b, a) = (get(before), get(after));
        if b != a {
            out.push(Change { field: k, before: cell_text(&b), after: cell_text(&a) });
        }
    }
    out
}

pub(super) fn audit_rows(records: &[AuditRecord], now: i64) -> Vec<AuditRow> {
    records
        .iter()
        .map(|r| AuditRow {
            at: Mj::from_safe_string(format::date_time(&r.at, now)),
            resource: r.resource_type.clone(),
            action: r.action.clone(),
            status: r.status.clone(),
            identifier: r.identifier.clone(),
            blueprint: r.blueprint.clone(),
            entity: r.entity.clone(),
            user: r.user_id.clone(),
            origin: r.origin.clone(),
            message: r.message.clone(),
            changes: r.diff.as_ref().map(diff_fields).unwrap_or_default(),
        })
        .collect()
}

pub async fn audit(State(state): State<AppState>, user: WebUser, RawQuery(q): RawQuery) -> WebResult {
    let f = query_form(&q);
    // The API's rule (`access::audit_scope`): admins read the whole log, others one entity
    // they may read at a time (the entity page links here with it).
    let resources = crate::access::audit_scope(
        &state,
        &super::respond::caller(&user),
        f.get("blueprint"),
        f.get("entity"),
        f.all("resources"),
    )
    .await?;
    let pick = |k: &str, allowed: &[&str]| f.get(k).filter(|v| allowed.contains(v)).map(str::to_string);
    let time = |k: &str| {
        f.get(k).and_then(|s| {
            chrono::DateTime::parse_from_rfc3339(s)
                .ok()
                .or_else(|| chrono::DateTime::parse_from_rfc3339(&format!("{s}:00Z")).ok())
                .map(|d| d.with_timezone(&chrono::Utc).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        })
    };
    let filter = AuditFilter {
        identifier: f.get("identifier").map(str::to_string),
        entity: f.get("entity").map(str::to_string),
        blueprint: f.get("blueprint").map(str::to_string),
        resources,
        origin: f.all("origin"),
        action: pick("action", &["CREATE", "UPDATE", "DELETE"]),
        status: pick("status", &["SUCCESS", "FAILURE"]),
        from: time("from"),
        to: time("to"),
        // One page, newest first, below the `before` record (`aud_<n>`); a record more than the
        // page tells whether there are older ones.
        before: f.get("before").and_then(|b| b.strip_prefix("aud_")?.parse().ok()),
        limit: f.get("limit").and_then(|l| l.parse().ok()).filter(|l| (1..=500).contains(l)).unwrap_or(100),
    };
    let page_size = filter.limit as usize;
    let mut records =
        state.store.list_audit(&user.org, &AuditFilter { limit: filter.limit + 1, ..filter.clone() }).await?;
    let link = |before: Option<&str>| {
        let mut qs: Vec<String> =
            f.0.iter()
                .filter(|(k, v)| k != "before" && !v.is_empty())
                .map(|(k, v)| format!("{k}={}", urlencode(v)))
                .collect();
        qs.extend(before.map(|b| format!("before={}", urlencode(b))));
        format!("/ui/audit?{}", qs.join("&"))
    };
    let older = (records.len() > page_size).then(|| {
        records.truncate(page_size);
        link(records.last().map(|r| r.id.as_str()))
    });
    let now = now_secs(&state);
    let owned = |k: &str| f.get(k).map(str::to_string);
    let ctx = AuditPage {
        chrome: chrome(&state, &user),
        title: "Audit log",
        records: audit_rows(&records, now),
        older,
        newest: filter.before.is_some().then(|| link(None)),
        f: Filter {
            identifier: owned("identifier"),
            entity: owned("entity"),
            blueprint: owned("blueprint"),
            resources: f.all("resources"),
            origin: owned("origin"),
            action: owned("action"),
            status: owned("status"),
            from: owned("from"),
            to: owned("to"),
            limit: filter.limit,
        },
        resource_types: RESOURCE_TYPES,
    };
    page(&state, "audit.html", ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_diff_lists_the_fields_it_changed() {
        let diff = json!({
            "before": {"title": "A", "properties": {"lang": "go", "size": 1}, "updatedAt": "t1"},
            "after": {"title": "A", "properties": {"lang": "rust", "size": 1}, "relations": {"owner": "x"},
                      "updatedAt": "t2"}
        });
        let change = |f: &str, b: &str, a: &str| Change { field: f.into(), before: b.into(), after: a.into() };
        assert_eq!(diff_fields(&diff), [change("properties.lang", "go", "rust"), change("relations.owner", "", "x")]);
    }
}
