//! An entity's page: its properties (stored, mirror, calculation), what its relations point at
//! (upstream), what points at it (downstream, a bounded page per relation) and its history.

use axum::extract::{Path, State};
use minijinja::Value as Mj;
use portolan_core::search::parse_query;
use portolan_store::{AuditFilter, SearchRequest};
use serde::Serialize;
use serde_json::{Value, json};

use super::audit::{AuditRow, audit_rows};
use super::catalog::BlueprintRef;
use super::respond::{chrome, now_secs, page};
use super::session::WebUser;
use super::{Chrome, WebError, WebResult, format};
use crate::computed::{ReadOptions, render_for};
use crate::state::AppState;

#[derive(Serialize)]
struct EntityPage<'a> {
    chrome: Chrome,
    title: String,
    bp: BlueprintRef<'a>,
    entity: EntityMeta<'a>,
    /// Safe HTML (a `<time>`).
    updated: Mj,
    props: Vec<PropRow>,
    upstream: Vec<Related>,
    downstream: Vec<Related>,
    history: Vec<AuditRow>,
    /// The DAY-2 / DELETE actions whose condition this entity matches.
    actions: Vec<super::actions::ActionRef>,
    runs: Vec<super::actions::runs::RunRow>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EntityMeta<'a> {
    identifier: &'a str,
    title: Option<&'a str>,
    team: &'a [String],
    created_at: &'a str,
    updated_at: &'a str,
    created_by: &'a str,
    updated_by: &'a str,
}

/// A property with its value as safe HTML; `computed` says how a computed one is computed.
#[derive(Serialize)]
struct PropRow {
    id: String,
    title: String,
    value: Mj,
    format: String,
    computed: Option<String>,
}

/// An entity at the other end of a relation.
#[derive(Serialize)]
struct Related {
    relation: String,
    blueprint: String,
    identifier: String,
    title: Option<String>,
}

pub async fn entity(
    State(state): State<AppState>,
    user: WebUser,
    Path((bp_id, id)): Path<(String, String)>,
) -> WebResult {
    let bps = state.blueprints(&user.org).await?;
    let bp = bps.get(&bp_id).ok_or_else(|| WebError::NotFound(format!("There is no blueprint \"{bp_id}\".")))?;
    let stored = super::respond::readable_entity(&state, &user, &bp_id, &id).await?;
    let actor = super::respond::caller(&user);
    // One read of the permission documents for the restriction and the rendering.
    let (scope, visible) = crate::access::reader_and_restriction(&state, &actor).await?;
    let rendered =
        render_for(&state, &user.org, scope.as_ref(), std::slice::from_ref(&stored), &ReadOptions::default())
            .await?
            .pop()
            .unwrap_or(Value::Null);
    let now = now_secs(&state);
    let mut props: Vec<PropRow> = Vec::new();
    for (pid, p) in &bp.schema.properties {
        let v = rendered["properties"].get(pid).cloned().unwrap_or(Value::Null);
        props.push(PropRow {
            id: pid.clone(),
            title: p.title.clone().unwrap_or_else(|| pid.clone()),
            value: Mj::from_safe_string(format::value_html(&v, Some(p), now)),
            format: p.format.clone().unwrap_or_else(|| p.ty.as_str().to_string()),
            computed: None,
        });
    }
    for (mid, m) in &bp.mirror_properties {
        let v = rendered["properties"].get(mid).cloned().unwrap_or(Value::Null);
        props.push(PropRow {
            id: mid.clone(),
            title: m.title.clone().unwrap_or_else(|| mid.clone()),
            value: Mj::from_safe_string(format::value_html(&v, None, now)),
            format: "mirror".into(),
            computed: Some(format!("mirror of {}", m.path)),
        });
    }
    for (cid, c) in &bp.calculation_properties {
        let v = rendered["properties"].get(cid).cloned().unwrap_or(Value::Null);
        let as_prop: Option<portolan_core::Property> =
            serde_json::from_value(json!({"type": c.ty.as_str(), "format": c.format})).ok();
        props.push(PropRow {
            id: cid.clone(),
            title: c.title.clone().unwrap_or_else(|| cid.clone()),
            value: Mj::from_safe_string(format::value_html(&v, as_prop.as_ref(), now)),
            format: "calculation".into(),
            computed: Some("calculation".into()),
        });
    }
    // Upstream: what this entity's relations point at.
    let mut upstream: Vec<Related> = Vec::new();
    for (rid, rel) in &bp.relations {
        let ids: Vec<String> = match stored.relations.get(rid) {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            _ => vec![],
        };
        let mut found = state.store.get_entities(&user.org, &rel.target, &ids).await?;
        if visible.is_some() {
            let mut readable = Vec::with_capacity(found.len());
            for e in found {
                if crate::access::may_read(&state, &actor, &e).await? {
                    readable.push(e);
                }
            }
            found = readable;
        }
        // Related entities the user may not read are not named.
        let ids: Vec<String> = if visible.is_some() {
            ids.into_iter().filter(|i| found.iter().any(|e| &e.identifier == i)).collect()
        } else {
            ids
        };
        for i in ids {
            let title = found.iter().find(|e| e.identifier == i).and_then(|e| e.title.clone());
            let relation = rel.title.clone().unwrap_or_else(|| rid.clone());
            upstream.push(Related { relation, blueprint: rel.target.clone(), identifier: i, title });
        }
    }
    // Downstream: entities whose relations point at this one (a bounded page per relation).
    let mut downstream: Vec<Related> = Vec::new();
    let all = state.blueprints(&user.org).await?;
    let mut sources: Vec<(&String, &String, &portolan_core::Relation)> = Vec::new();
    for (b_id, b) in all.iter() {
        for (rid, rel) in &b.relations {
            if rel.target == bp_id {
                sources.push((b_id, rid, rel));
            }
        }
    }
    sources.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    for (b_id, rid, rel) in sources {
        let q = parse_query(&json!({"combinator": "and", "rules": [{"relation": rid, "operator": "=", "value": id}]}));
        let Ok(q) = q else { continue };
        let req = SearchRequest { visible: visible.as_ref(), ..SearchRequest::new(&all, Some(b_id), Some(&q), 50) };
        let page = state.store.search(&user.org, &req).await?;
        for e in page.entities {
            let relation = rel.title.clone().unwrap_or_else(|| rid.clone());
            downstream.push(Related { relation, blueprint: b_id.clone(), identifier: e.identifier, title: e.title });
        }
    }
    let history = state
        .store
        .list_audit(
            &user.org,
            &AuditFilter {
                entity: Some(id.clone()),
                blueprint: Some(bp_id.clone()),
                limit: 50,
                ..AuditFilter::default()
            },
        )
        .await?;
    let ctx = EntityPage {
        chrome: chrome(&state, &user),
        title: stored.title.clone().unwrap_or_else(|| stored.identifier.clone()),
        bp: BlueprintRef::of(bp),
        entity: EntityMeta {
            identifier: &stored.identifier,
            title: stored.title.as_deref(),
            team: &stored.team,
            created_at: &stored.created_at,
            updated_at: &stored.updated_at,
            created_by: &stored.created_by,
            updated_by: &stored.updated_by,
        },
        updated: Mj::from_safe_string(format::date_time(&stored.updated_at, now)),
        props,
        upstream,
        downstream,
        history: audit_rows(&history, now),
        actions: super::actions::entity_actions(&state, &user.org, &user.principal, &stored).await?,
        runs: super::actions::runs::entity_runs(&state, &user.org, &bp_id, &id).await?,
    };
    page(&state, "entity.html", ctx)
}
