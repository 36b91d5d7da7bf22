//! Entity reads as Port returns them: stored properties plus mirror and calculation values,
//! projections and relation titles. Works on whole pages so related entities are fetched in
//! one query per hop, never one per entity.

use std::collections::{BTreeMap, HashMap};

use portolan_core::{Blueprint, Entity};
use portolan_store::OrgId;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};
use crate::ops::Actor;
use crate::state::AppState;

/// How entities are rendered (query parameters of Port's read routes).
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    pub exclude_calculated: bool,
    pub attach_title_to_relation: bool,
    /// Entity-JSON paths (`identifier`, `properties.readme`) or `$meta` / property ids.
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

/// The wire JSON of a stored entity (no computed values).
pub fn entity_json(e: &Entity) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("identifier".into(), json!(e.identifier));
    m.insert("title".into(), json!(e.title));
    m.insert("icon".into(), json!(e.icon));
    m.insert("blueprint".into(), json!(e.blueprint));
    m.insert("team".into(), json!(e.team));
    m.insert("properties".into(), Value::Object(e.properties.clone()));
    m.insert("relations".into(), Value::Object(e.relations.clone()));
    m.insert("createdAt".into(), json!(e.created_at));
    m.insert("createdBy".into(), json!(e.created_by));
    m.insert("updatedAt".into(), json!(e.updated_at));
    m.insert("updatedBy".into(), json!(e.updated_by));
    m
}

fn relation_ids(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => vec![],
    }
}

/// Value of a property or meta-property (`$title`) of an entity.
pub fn field(e: &Entity, name: &str) -> Value {
    match name {
        "$identifier" => json!(e.identifier),
        "$title" => json!(e.title),
        "$icon" => json!(e.icon),
        "$team" => json!(e.team),
        "$blueprint" => json!(e.blueprint),
        "$createdAt" => json!(e.created_at),
        "$updatedAt" => json!(e.updated_at),
        "$createdBy" => json!(e.created_by),
        "$updatedBy" => json!(e.updated_by),
        "$datasource" => json!(e.datasource),
        p => e.properties.get(p).or_else(|| e.relations.get(p)).cloned().unwrap_or(Value::Null),
    }
}

/// Render a page of entities of possibly several blueprints for `reader`: values taken from
/// related entities (mirror properties, relation titles) come only from entities it may read
/// ([`crate::access::Reader`]); the entities themselves were chosen by the caller's read
/// restriction.
pub async fn render(
    state: &AppState,
    reader: &Actor,
    entities: &[Entity],
    opts: &ReadOptions,
) -> ApiResult<Vec<Value>> {
    let scope = crate::access::reader(state, reader).await?;
    render_for(state, &reader.org, scope.as_ref(), entities, opts).await
}

/// [`render`] for a reader already read ([`crate::access::reader`]; `None`: an administrator).
pub async fn render_for(
    state: &AppState,
    org: &OrgId,
    scope: Option<&crate::access::Reader>,
    entities: &[Entity],
    opts: &ReadOptions,
) -> ApiResult<Vec<Value>> {
    let admits = |e: &Entity| scope.as_ref().is_none_or(|r| r.admits(e));
    let blueprints = state.blueprints(org).await?;
    let related = Related { blueprints: &blueprints, admits: &admits };
    let mut out: Vec<Map<String, Value>> = entities.iter().map(entity_json).collect();
    // Values of properties and relations removed from the blueprint are not shown.
    for (e, m) in entities.iter().zip(out.iter_mut()) {
        let Some(bp) = blueprints.get(&e.blueprint) else { continue };
        if let Some(Value::Object(p)) = m.get_mut("properties") {
            p.retain(|k, _| bp.schema.properties.contains_key(k));
        }
        if let Some(Value::Object(r)) = m.get_mut("relations") {
            r.retain(|k, _| bp.relations.contains_key(k));
        }
    }
    if !opts.exclude_calculated {
        add_aggregations(state, org, &blueprints, entities, scope, &mut out).await?;
        let mut by_bp: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, e) in entities.iter().enumerate() {
            by_bp.entry(e.blueprint.as_str()).or_default().push(i);
        }
        for (bp_id, idx) in by_bp {
            let Some(bp) = blueprints.get(bp_id) else { continue };
            add_mirrors(state, org, &related, bp, entities, &idx, &mut out).await?;
            add_calculations(state, org, bp, &idx, &mut out).await?;
        }
    }
    if opts.attach_title_to_relation {
        attach_titles(state, org, &related, entities, &mut out).await?;
    }
    let keys: Vec<(String, String)> = entities.iter().map(|e| (e.blueprint.clone(), e.identifier.clone())).collect();
    crate::ops::scorecard::attach_results(state, org, &keys, &mut out).await?;
    Ok(out.into_iter().map(|m| project(m, opts)).collect())
}

/// Aggregation properties: the values the upkeep jobs computed (`Aggregations`, one query per
/// page); `null` until computed, and when the function has no value for an empty set. The
/// stored values count every related entity, so for a reader who may not read all of an
/// aggregation's target blueprint, the page's values of that blueprint are computed now over
/// the targets it reads (`Aggregations::aggregation_values_visible`: one statement per entity
/// and property) rather than shown from entities it may not see.
async fn add_aggregations(
    state: &AppState,
    org: &OrgId,
    blueprints: &HashMap<String, Blueprint>,
    entities: &[Entity],
    scope: Option<&crate::access::Reader>,
    out: &mut [Map<String, Value>],
) -> ApiResult<()> {
    let has = |e: &Entity| blueprints.get(&e.blueprint).is_some_and(|b| !b.aggregation_properties.is_empty());
    let keys: Vec<(String, String)> =
        entities.iter().filter(|e| has(e)).map(|e| (e.blueprint.clone(), e.identifier.clone())).collect();
    if keys.is_empty() {
        return Ok(());
    }
    let reads_all = |target: &Value| target.as_str().is_some_and(|t| scope.is_none_or(|r| r.reads_all(t)));
    let mut values: HashMap<(String, String, String), Option<f64>> = HashMap::new();
    for v in state.store.aggregation_values(org, &keys).await? {
        values.insert((v.blueprint, v.entity, v.property), v.value);
    }
    // The blueprints with an aggregation whose targets this reader reads only in part.
    let mut partial: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (b, id) in &keys {
        if blueprints.get(b).is_some_and(|bp| bp.aggregation_properties.values().any(|d| !reads_all(&d["target"]))) {
            partial.entry(b.as_str()).or_default().push(id.clone());
        }
    }
    let mut live: HashMap<(String, String, String), Option<f64>> = HashMap::new();
    if let (Some(r), false) = (scope, partial.is_empty())
        && let Some(visible) = r.restriction()?
    {
        let now = chrono::Utc::now();
        for (b, ids) in partial {
            for v in state.store.aggregation_values_visible(org, b, &ids, blueprints, now, &visible).await? {
                live.insert((v.blueprint, v.entity, v.property), v.value);
            }
        }
    }
    for (e, m) in entities.iter().zip(out.iter_mut()) {
        let Some(bp) = blueprints.get(&e.blueprint) else { continue };
        let Some(Value::Object(p)) = m.get_mut("properties") else { continue };
        for (id, def) in &bp.aggregation_properties {
            let key = (e.blueprint.clone(), e.identifier.clone(), id.clone());
            let from = if reads_all(&def["target"]) { &values } else { &live };
            let value = from.get(&key).copied().flatten();
            p.insert(id.clone(), value.map_or(Value::Null, number));
        }
    }
    Ok(())
}

/// A computed number as JSON: an integer when it is one (counts), else a float.
fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9_007_199_254_740_992.0 { json!(x as i64) } else { json!(x) }
}

/// What values from related entities are read through: the organization's blueprints, and
/// which entities the reader may read.
struct Related<'a> {
    blueprints: &'a HashMap<String, Blueprint>,
    admits: &'a (dyn Fn(&Entity) -> bool + Sync),
}

async fn add_mirrors(
    state: &AppState,
    org: &OrgId,
    related: &Related<'_>,
    bp: &Blueprint,
    entities: &[Entity],
    idx: &[usize],
    out: &mut [Map<String, Value>],
) -> ApiResult<()> {
    let (blueprints, admits) = (related.blueprints, related.admits);
    for (mid, mirror) in &bp.mirror_properties {
        let (hops, last) = mirror.hops();
        // frontier[i] = entities reached from entities[idx[i]] so far.
        let mut frontier: Vec<Vec<Entity>> = idx.iter().map(|&i| vec![entities[i].clone()]).collect();
        let mut many = false;
        let mut cur_bp = bp;
        for hop in &hops {
            let Some(rel) = cur_bp.relations.get(*hop) else {
                // A path that no longer resolves mirrors nothing (never the entity's own value).
                frontier.iter_mut().for_each(Vec::clear);
                break;
            };
            many |= rel.many;
            let mut wanted: Vec<String> =
                frontier.iter().flatten().flat_map(|e| relation_ids(e.relations.get(*hop))).collect();
            wanted.sort();
            wanted.dedup();
            let found = state.store.get_entities(org, &rel.target, &wanted).await?;
            // An entity the reader may not read is as if it were not there (nor what lies
            // beyond it).
            let by_id: HashMap<&str, &Entity> =
                found.iter().filter(|e| admits(e)).map(|e| (e.identifier.as_str(), e)).collect();
            frontier = frontier
                .iter()
                .map(|es| {
                    es.iter()
                        .flat_map(|e| relation_ids(e.relations.get(*hop)))
                        .filter_map(|id| by_id.get(id.as_str()).map(|e| (*e).clone()))
                        .collect()
                })
                .collect();
            match blueprints.get(&rel.target) {
                Some(next) => cur_bp = next,
                None => {
                    frontier.iter_mut().for_each(Vec::clear);
                    break;
                }
            }
        }
        for (k, reached) in frontier.iter().enumerate() {
            let v = if many {
                Value::Array(reached.iter().map(|e| field(e, last)).collect())
            } else {
                reached.first().map(|e| field(e, last)).unwrap_or(Value::Null)
            };
            if let Some(Value::Object(p)) = out[idx[k]].get_mut("properties") {
                p.insert(mid.clone(), v);
            }
        }
    }
    Ok(())
}

/// Evaluate the blueprint's calculation properties for the rows `idx` of `out`. jq runs on the
/// blocking pool; a calculation that exceeds its time budget is skipped (null) for the rest of
/// the page, so one slow filter costs one budget per page, not one per entity.
async fn add_calculations(
    state: &AppState,
    org: &OrgId,
    bp: &Blueprint,
    idx: &[usize],
    out: &mut [Map<String, Value>],
) -> ApiResult<()> {
    if bp.calculation_properties.is_empty() {
        return Ok(());
    }
    let calcs: Vec<(String, String)> =
        bp.calculation_properties.iter().map(|(id, c)| (id.clone(), c.calculation.clone())).collect();
    let inputs: Vec<Value> = idx.iter().map(|&i| Value::Object(out[i].clone())).collect();
    let jq = state.jq.clone();
    let bp_id = bp.identifier.clone();
    // One budget for the whole page: calculations of many entities cannot add up past it.
    let budget = state.jq.budget_for(&org.0);
    let values = tokio::task::spawn_blocking(move || {
        let mut poisoned = vec![false; calcs.len()];
        inputs
            .iter()
            .map(|input| {
                calcs
                    .iter()
                    .enumerate()
                    .map(|(k, (cid, filter))| {
                        if poisoned[k] {
                            return (cid.clone(), Value::Null);
                        }
                        let v = match jq.first_in(&budget, filter, input) {
                            Ok(v) => v,
                            Err(portolan_jq::JqError::Limit(msg)) => {
                                poisoned[k] = true;
                                tracing::warn!(blueprint.id = %bp_id, calculation = %cid, "calculation property exceeded its budget ({msg}); null for the rest of this page");
                                Value::Null
                            }
                            Err(_) => Value::Null,
                        };
                        (cid.clone(), v)
                    })
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| ApiError::internal("calculation properties", e))?;
    for (&i, row) in idx.iter().zip(values) {
        if let Some(Value::Object(p)) = out[i].get_mut("properties") {
            for (cid, v) in row {
                p.insert(cid, v);
            }
        }
    }
    Ok(())
}

async fn attach_titles(
    state: &AppState,
    org: &OrgId,
    related: &Related<'_>,
    entities: &[Entity],
    out: &mut [Map<String, Value>],
) -> ApiResult<()> {
    let (blueprints, admits) = (related.blueprints, related.admits);
    let mut wanted: HashMap<String, Vec<String>> = HashMap::new();
    for e in entities {
        let Some(bp) = blueprints.get(&e.blueprint) else { continue };
        for (rid, v) in &e.relations {
            if let Some(rel) = bp.relations.get(rid) {
                wanted.entry(rel.target.clone()).or_default().extend(relation_ids(Some(v)));
            }
        }
    }
    let mut titles: HashMap<(String, String), Option<String>> = HashMap::new();
    for (target, mut ids) in wanted {
        ids.sort();
        ids.dedup();
        for e in state.store.get_entities(org, &target, &ids).await?.into_iter().filter(|e| admits(e)) {
            titles.insert((target.clone(), e.identifier.clone()), e.title.clone());
        }
    }
    for (e, m) in entities.iter().zip(out.iter_mut()) {
        let Some(bp) = blueprints.get(&e.blueprint) else { continue };
        let Some(Value::Object(rels)) = m.get_mut("relations") else { continue };
        for (rid, v) in rels.iter_mut() {
            let Some(rel) = bp.relations.get(rid) else { continue };
            let with_title = |id: &str| {
                let title = titles.get(&(rel.target.clone(), id.to_string())).cloned().flatten();
                json!({"identifier": id, "title": title})
            };
            let new = match &*v {
                Value::String(s) => with_title(s),
                Value::Array(a) => Value::Array(a.iter().filter_map(Value::as_str).map(with_title).collect()),
                other => other.clone(),
            };
            *v = new;
        }
    }
    Ok(())
}

/// Map `$identifier` → `identifier`, a bare property id → `properties.<id>` (or relation).
fn normalize_path(p: &str, m: &Map<String, Value>) -> String {
    if let Some(meta) = p.strip_prefix('$') {
        return meta.to_string();
    }
    if p.contains('.') || m.contains_key(p) {
        return p.to_string();
    }
    if m.get("relations").and_then(|r| r.get(p)).is_some() {
        return format!("relations.{p}");
    }
    format!("properties.{p}")
}

fn project(m: Map<String, Value>, opts: &ReadOptions) -> Value {
    let mut m = m;
    if !opts.include.is_empty() {
        let mut kept = Map::new();
        for p in &opts.include {
            let path = normalize_path(p, &m);
            match path.split_once('.') {
                None => {
                    if let Some(v) = m.get(&path) {
                        kept.insert(path.clone(), v.clone());
                    }
                }
                Some((top, key)) => {
                    if let Some(v) = m.get(top).and_then(|o| o.get(key)) {
                        let slot = kept.entry(top.to_string()).or_insert_with(|| json!({}));
                        if let Some(o) = slot.as_object_mut() {
                            o.insert(key.to_string(), v.clone());
                        }
                    }
                }
            }
        }
        m = kept;
    }
    for p in &opts.exclude {
        let path = normalize_path(p, &m);
        match path.split_once('.') {
            None => {
                m.shift_remove(&path);
            }
            Some((top, key)) => {
                if let Some(Value::Object(o)) = m.get_mut(top) {
                    o.shift_remove(key);
                }
            }
        }
    }
    Value::Object(m)
}
