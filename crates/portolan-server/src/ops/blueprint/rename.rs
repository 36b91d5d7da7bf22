//! Renames of a blueprint's keys (properties, mirror properties, relations). Entity values follow a
//! renamed property or relation (in the store), and mirror paths that go through the renamed key
//! (on any blueprint) are rewritten; a renamed property's or relation's own update grant in the
//! blueprint's permissions follows it.

use std::collections::HashMap;

use indexmap::IndexMap;
use portolan_core::{Blueprint, FieldError};
use portolan_store::{Rename, StoredBlueprint};

use super::{record_failure, replace};
use crate::error::{ApiError, ApiResult};
use crate::ops::Actor;
use crate::state::AppState;

/// Which map a rename touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenameKind {
    Property,
    Mirror,
    Relation,
}

impl RenameKind {
    /// The body field of the rename route holding the new name.
    pub fn field(self) -> &'static str {
        match self {
            RenameKind::Property => "newPropertyName",
            RenameKind::Mirror => "newMirrorName",
            RenameKind::Relation => "newRelationIdentifier",
        }
    }
}

/// Every key of a blueprint: properties, relations, mirror, calculation and aggregation
/// properties share one namespace.
fn key_in_use(bp: &Blueprint, key: &str) -> bool {
    bp.schema.properties.contains_key(key)
        || bp.relations.contains_key(key)
        || bp.mirror_properties.contains_key(key)
        || bp.calculation_properties.contains_key(key)
        || bp.aggregation_properties.contains_key(key)
}

/// Rename key `from` to `to` in place, keeping its position.
fn rename_key<V>(m: &mut IndexMap<String, V>, from: &str, to: &str) {
    if let Some(idx) = m.get_index_of(from)
        && let Some((_, v)) = m.shift_remove_index(idx)
    {
        m.shift_insert(idx, to.to_string(), v);
    }
}

/// `path` (a mirror path starting at blueprint `start`) with every segment that names key
/// `from` of blueprint `renamed` replaced by `to`; `None` when nothing changes. The walk uses
/// the blueprints as they were before the rename.
fn rewrite_path(
    path: &str,
    start: &str,
    all: &HashMap<String, Blueprint>,
    renamed: &str,
    from: &str,
    to: &str,
) -> Option<String> {
    let mut cur = Some(start.to_string());
    let mut changed = false;
    let mut out = Vec::new();
    for seg in path.split('.') {
        let here = cur.take();
        if here.as_deref() == Some(renamed) && seg == from {
            out.push(to);
            changed = true;
        } else {
            out.push(seg);
        }
        cur = here.and_then(|b| all.get(&b)).and_then(|b| b.relations.get(seg)).map(|r| r.target.clone());
    }
    changed.then(|| out.join("."))
}

/// Rewrite the mirror paths of `bp` (whose old definition is in `all`); true if any changed.
fn rewrite_mirrors(bp: &mut Blueprint, all: &HashMap<String, Blueprint>, renamed: &str, from: &str, to: &str) -> bool {
    let start = bp.identifier.clone();
    let mut changed = false;
    for m in bp.mirror_properties.values_mut() {
        if let Some(p) = rewrite_path(&m.path, &start, all, renamed, from, to) {
            m.path = p;
            changed = true;
        }
    }
    changed
}

/// The renamed blueprint and the entity-data rename it implies, or why it cannot be done.
fn renamed(
    all: &HashMap<String, Blueprint>,
    bp_id: &str,
    key: &str,
    new: Option<&str>,
    kind: RenameKind,
) -> ApiResult<(Blueprint, String, Option<Rename>)> {
    let field = kind.field();
    let Some(new) = new.map(str::to_string) else {
        return Err(FieldError::new(field, "is required (a string)").into());
    };
    let Some(mut bp) = all.get(bp_id).cloned() else {
        return Err(ApiError::not_found(format!("blueprint {bp_id:?} was not found")));
    };
    let found = match kind {
        RenameKind::Property => bp.schema.properties.contains_key(key),
        RenameKind::Mirror => bp.mirror_properties.contains_key(key),
        RenameKind::Relation => bp.relations.contains_key(key),
    };
    if !found {
        return Err(ApiError::not_found(format!("{key:?} was not found on blueprint {bp_id:?}")));
    }
    if new != key && key_in_use(&bp, &new) {
        return Err(FieldError::new(
            field,
            format!(
                "{new:?} is already used by another property, relation or computed property of blueprint {bp_id:?}"
            ),
        )
        .into());
    }
    let rename = match kind {
        RenameKind::Property => {
            rename_key(&mut bp.schema.properties, key, &new);
            for req in &mut bp.schema.required {
                if req == key {
                    *req = new.clone();
                }
            }
            Some(Rename::Property { from: key.to_string(), to: new.clone() })
        }
        RenameKind::Mirror => {
            rename_key(&mut bp.mirror_properties, key, &new);
            None
        }
        RenameKind::Relation => {
            rename_key(&mut bp.relations, key, &new);
            Some(Rename::Relation { from: key.to_string(), to: new.clone() })
        }
    };
    rewrite_mirrors(&mut bp, all, bp_id, key, &new);
    Ok((bp, new, rename))
}

/// Rename key `key` of blueprint `bp_id` to `new` (`None`: the route's body had no new name,
/// refused and recorded as such). Entity values follow a renamed property or relation, and
/// mirror paths through the key are rewritten on every blueprint. Returns the renamed
/// blueprint as stored.
pub async fn rename(
    state: &AppState,
    actor: &Actor,
    bp_id: &str,
    key: &str,
    kind: RenameKind,
    new: Option<&str>,
) -> ApiResult<StoredBlueprint> {
    let all = state.blueprints(&actor.org).await?;
    let (bp, new, rename) = match renamed(&all, bp_id, key, new, kind) {
        Ok(x) => x,
        Err(e) => {
            record_failure(state, actor, "UPDATE", bp_id, &e).await;
            return Err(e);
        }
    };
    let own = serde_json::to_value(&bp).map_err(|e| ApiError::internal("serialize", e))?;
    let res = replace(state, actor, bp_id, own, Some(rename.as_slice())).await?;
    follow_in_permissions(state, actor, bp_id, key, &new, kind).await?;
    // Other blueprints whose mirror paths reach the renamed key follow it (one update each).
    for other in all.values().filter(|b| b.identifier != bp_id) {
        let mut o = other.clone();
        if rewrite_mirrors(&mut o, &all, bp_id, key, &new) {
            let body = serde_json::to_value(&o).map_err(|e| ApiError::internal("serialize", e))?;
            replace(state, actor, &o.identifier, body, Some(&[])).await?;
        }
    }
    Ok(res)
}

/// A renamed property's or relation's own update grant (`updateProperties` /
/// `updateRelations` of the blueprint's permissions) follows it to its new name (audited as a
/// change of the permissions).
async fn follow_in_permissions(
    state: &AppState,
    actor: &Actor,
    bp_id: &str,
    from: &str,
    to: &str,
    kind: RenameKind,
) -> ApiResult<()> {
    let map = match kind {
        RenameKind::Property => "updateProperties",
        RenameKind::Relation => "updateRelations",
        RenameKind::Mirror => return Ok(()),
    };
    let Some(mut doc) = state.store.blueprint_permissions(&actor.org, bp_id).await? else { return Ok(()) };
    let Some(grants) = doc.get_mut("entities").and_then(|e| e.get_mut(map)).and_then(|m| m.as_object_mut()) else {
        return Ok(());
    };
    let Some(g) = grants.remove(from) else { return Ok(()) };
    grants.insert(to.to_string(), g);
    state.store.set_blueprint_permissions(&actor.org, bp_id, &doc, &crate::ops::audit::audit_ctx(actor)).await?;
    state.blueprints_changed(&actor.org);
    Ok(())
}
