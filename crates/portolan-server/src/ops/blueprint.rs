//! Blueprint writes: create, replace, patch, delete and the renames, each checked against
//! every other blueprint of the organization, refused writes recorded in the audit log.

use std::collections::HashMap;

use portolan_core::blueprint_check::{
    BlueprintLookup, check_blueprint, check_change, check_dependents, parse_blueprint,
};
use portolan_core::{Blueprint, FieldError, FieldErrors};
use portolan_store::{OrgId, Rename, StoredBlueprint};
use serde_json::{Map, Value, json};

use super::Actor;
use super::audit::{audit_ctx, failure_record, record_failures};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

mod rename;
pub use rename::{RenameKind, rename};

struct Lookup<'a> {
    all: &'a HashMap<String, Blueprint>,
}
impl BlueprintLookup for Lookup<'_> {
    fn blueprint(&self, id: &str) -> Option<&Blueprint> {
        self.all.get(id)
    }
}

/// Parse and check a blueprint body, compiling its calculation properties. With `old`, also
/// check that nothing immutable changed.
async fn checked(state: &AppState, org: &OrgId, body: &Value, old: Option<&Blueprint>) -> ApiResult<Blueprint> {
    let bp = parse_blueprint(body)?;
    let all = state.blueprints(org).await?;
    let mut all = (*all).clone();
    all.insert(bp.identifier.clone(), bp.clone());
    let mut errs = FieldErrors::default();
    if let Some(Err(e)) = old.map(|old| check_change(old, &bp)) {
        errs.0.extend(e.0);
    }
    if let Err(e) = check_blueprint(&bp, &Lookup { all: &all }) {
        errs.0.extend(e.0);
    }
    for (id, calc) in &bp.calculation_properties {
        let path = format!("calculationProperties.{id}.calculation");
        if let Err(e) = state.jq.compile(&calc.calculation) {
            errs.push(path, format!("is not a valid jq expression: {e}"));
        } else if let Some(msg) = trial_run(state, org, &bp, &calc.calculation).await {
            errs.push(path, msg);
        }
    }
    errs.into_result()?;
    Ok(bp)
}

/// Run a calculation on a sample entity of the blueprint; a filter that does not finish within
/// the jq time budget would stall every read of the blueprint's entities, so it is refused.
async fn trial_run(state: &AppState, org: &OrgId, bp: &Blueprint, filter: &str) -> Option<String> {
    let sample = json!({
        "identifier": "sample", "title": "Sample", "icon": null, "blueprint": bp.identifier, "team": [],
        "properties": {}, "relations": {}, "createdAt": "2024-01-01T00:00:00.000Z", "createdBy": "sample",
        "updatedAt": "2024-01-01T00:00:00.000Z", "updatedBy": "sample"
    });
    let (jq, filter, budget) = (state.jq.clone(), filter.to_string(), state.jq.budget_for(&org.0));
    match tokio::task::spawn_blocking(move || jq.first_in(&budget, &filter, &sample)).await {
        Ok(Err(portolan_jq::JqError::Limit(msg))) => {
            Some(format!("did not finish on a sample entity ({msg}); a calculation must finish within the time budget"))
        }
        _ => None,
    }
}

/// Record a refused write of blueprint `id` in the audit log.
async fn record_failure(state: &AppState, actor: &Actor, action: &str, id: &str, err: &ApiError) {
    let rec = failure_record(actor, "blueprint", action, id, Some(id), None, &err.message);
    record_failures(state, actor, &[rec]).await;
}

/// The audit action `action` of `result`'s failure, recorded; `result` passed on.
async fn recorded<T>(state: &AppState, actor: &Actor, action: &str, id: &str, result: ApiResult<T>) -> ApiResult<T> {
    if let Err(e) = &result {
        record_failure(state, actor, action, id, e).await;
    }
    result
}

/// Create a blueprint from its wire JSON.
pub async fn create(state: &AppState, actor: &Actor, body: &Value) -> ApiResult<StoredBlueprint> {
    let id = body.get("identifier").and_then(Value::as_str).unwrap_or_default().to_string();
    let result = async {
        let bp = checked(state, &actor.org, body, None).await?;
        let stored = state.store.create_blueprint(&actor.org, &bp, &audit_ctx(actor)).await?;
        state.blueprints_changed(&actor.org);
        Ok(stored)
    }
    .await;
    recorded(state, actor, "CREATE", id.as_str(), result).await
}

/// The stored blueprint `id`, or 404.
async fn stored(state: &AppState, org: &OrgId, id: &str) -> ApiResult<StoredBlueprint> {
    state
        .store
        .get_blueprint(org, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("blueprint {id:?} was not found")))
}

/// Replace blueprint `id` with `body`. `renames`: the rename routes change keys on purpose
/// (entity data follows them) and rewrite dependent mirror paths themselves, so the
/// immutability and dependents checks are skipped.
async fn replace(
    state: &AppState,
    actor: &Actor,
    id: &str,
    body: Value,
    renames: Option<&[Rename]>,
) -> ApiResult<StoredBlueprint> {
    let result = async {
        let old = stored(state, &actor.org, id).await?;
        let mut body = body;
        if let Some(m) = body.as_object_mut() {
            m.entry("identifier").or_insert_with(|| json!(id));
        }
        let bp = checked(state, &actor.org, &body, renames.is_none().then_some(&old.blueprint)).await?;
        // `_user` and `_team` may be extended, not changed (renames included).
        portolan_core::system::check_change(&bp)?;
        if renames.is_none() {
            let before = state.blueprints(&actor.org).await?;
            let mut after = (*before).clone();
            after.insert(bp.identifier.clone(), bp.clone());
            let dependents = before.values().filter(|b| b.identifier != id);
            check_dependents(dependents, &Lookup { all: &before }, &Lookup { all: &after })?;
        }
        let renames = renames.unwrap_or_default();
        let stored = state.store.update_blueprint(&actor.org, id, &bp, renames, &audit_ctx(actor)).await?;
        state.blueprints_changed(&actor.org);
        Ok(stored)
    }
    .await;
    recorded(state, actor, "UPDATE", id, result).await
}

/// Replace blueprint `id` with the wire JSON `body` (its identifier defaults to `id`).
pub async fn put(state: &AppState, actor: &Actor, id: &str, body: Value) -> ApiResult<StoredBlueprint> {
    replace(state, actor, id, body, None).await
}

/// Change some fields of blueprint `id`: top-level fields replace; the keyed maps (properties,
/// relations, mirror, calculation and aggregation properties) merge key by key, `null`
/// removing a key.
pub async fn patch(state: &AppState, actor: &Actor, id: &str, patch: &Value) -> ApiResult<StoredBlueprint> {
    let merged = recorded(state, actor, "UPDATE", id, patched(state, &actor.org, id, patch).await).await?;
    replace(state, actor, id, merged, None).await
}

/// The stored blueprint `id` with `patch` applied.
async fn patched(state: &AppState, org: &OrgId, id: &str, patch: &Value) -> ApiResult<Value> {
    let Some(patch) = patch.as_object() else {
        return Err(ApiError::from(FieldError::new("", "the body must be a JSON object")));
    };
    let old = stored(state, org, id).await?;
    let mut merged = serde_json::to_value(&old.blueprint).map_err(|e| ApiError::internal("serialize", e))?;
    let Some(m) = merged.as_object_mut() else { return Err(ApiError::internal("patch", "blueprint is not an object")) };
    for (k, v) in patch {
        match (k.as_str(), v) {
            ("schema", Value::Object(s)) => {
                let schema = m.entry("schema").or_insert_with(|| json!({}));
                for (sk, sv) in s {
                    if let (Some(Value::Object(cur)), "properties", Value::Object(new)) =
                        (schema.get_mut(sk), sk.as_str(), sv)
                    {
                        merge_keys(cur, new);
                    } else {
                        schema[sk] = sv.clone();
                    }
                }
            }
            (
                "relations" | "mirrorProperties" | "calculationProperties" | "aggregationProperties",
                Value::Object(new),
            ) => match m.get_mut(k) {
                Some(Value::Object(cur)) => merge_keys(cur, new),
                _ => {
                    m.insert(k.clone(), v.clone());
                }
            },
            _ => {
                m.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(merged)
}

fn merge_keys(cur: &mut Map<String, Value>, new: &Map<String, Value>) {
    for (k, v) in new {
        if v.is_null() {
            cur.remove(k);
        } else {
            cur.insert(k.clone(), v.clone());
        }
    }
}

/// Delete blueprint `id` (it must have no entities and nothing may point at it).
pub async fn delete(state: &AppState, actor: &Actor, id: &str) -> ApiResult<()> {
    let result = match super::system_entity::protected(id, "deleting the blueprint") {
        Ok(()) => state.store.delete_blueprint(&actor.org, id, &audit_ctx(actor)).await.map_err(ApiError::from),
        Err(e) => Err(e),
    };
    recorded(state, actor, "DELETE", id, result).await?;
    state.blueprints_changed(&actor.org);
    Ok(())
}

/// Apply a permissions `PATCH` to blueprint `bp` (audited): the grants' teams must exist, the
/// moderator roles must name blueprints. Returns the permissions now in force.
pub async fn patch_permissions(
    state: &AppState,
    actor: &Actor,
    bp: &str,
    body: &Value,
) -> ApiResult<portolan_core::permissions::BlueprintPermissions> {
    super::entity::blueprint(state, &actor.org, bp).await?;
    let blueprints = state.blueprints(&actor.org).await?;
    let mut current = crate::access::permissions(state, &actor.org, bp).await?;
    // Grants of properties and relations the blueprint no longer has (deleted or renamed since)
    // go: kept, they would make every later change of the permissions fail on their keys.
    if let Some(b) = blueprints.get(bp) {
        current.update_properties.retain(|k, _| b.schema.properties.contains_key(k));
        current.update_relations.retain(|k, _| b.relations.contains_key(k));
    }
    let next = current.patched(body).map_err(ApiError::from)?;
    let mut errs = FieldErrors::default();
    let mut grants: Vec<(String, &portolan_core::permissions::Grant)> = ["read", "register", "update", "unregister"]
        .into_iter()
        .zip([&next.read, &next.register, &next.update, &next.unregister])
        .map(|(k, g)| (format!("entities.{k}"), g))
        .collect();
    grants.extend(next.update_properties.iter().map(|(k, g)| (format!("entities.updateProperties.{k}"), g)));
    grants.extend(next.update_relations.iter().map(|(k, g)| (format!("entities.updateRelations.{k}"), g)));
    for (path, g) in &grants {
        for (i, r) in g.roles.iter().enumerate() {
            if let Some(b) = r.strip_suffix("-moderator")
                && !blueprints.contains_key(b)
            {
                errs.push(
                    format!("{path}.roles[{i}]"),
                    format!("{r:?} names no blueprint: there is no blueprint {b:?}"),
                );
            }
        }
        let missing = state.store.missing_teams(&actor.org, &g.teams).await?;
        for (i, t) in g.teams.iter().enumerate().filter(|(_, t)| missing.contains(t)) {
            errs.push(
                format!("{path}.teams[{i}]"),
                format!("there is no team {t:?}; create it first (POST /v1/teams)"),
            );
        }
    }
    let schema = blueprints.get(bp);
    for k in next.update_properties.keys() {
        if schema.is_some_and(|b| !b.schema.properties.contains_key(k)) {
            errs.push(format!("entities.updateProperties.{k}"), format!("blueprint {bp:?} has no property {k:?}"));
        }
    }
    for k in next.update_relations.keys() {
        if schema.is_some_and(|b| !b.relations.contains_key(k)) {
            errs.push(format!("entities.updateRelations.{k}"), format!("blueprint {bp:?} has no relation {k:?}"));
        }
    }
    errs.into_result()?;
    state.store.set_blueprint_permissions(&actor.org, bp, &next.to_json(), &audit_ctx(actor)).await?;
    state.blueprints_changed(&actor.org);
    Ok(next)
}
