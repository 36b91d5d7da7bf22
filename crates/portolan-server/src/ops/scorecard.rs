//! Scorecards (port-api.md §6): checking and saving definitions (each save enqueues the full
//! recomputation, `jobs/scorecard.rs`, in the same store transaction), rendering them in Port's
//! shape, and the `scorecards` map of entity answers.

use std::collections::HashMap;

use portolan_core::scorecard::{self as core_sc, Scorecard, check_scorecard};
use portolan_core::{FieldError, FieldErrors};
use portolan_store::query::{CompileCtx, compile_where_in};
use portolan_store::{NewJob, OrgId, SaveMode, ScorecardResult, ScorecardWrite, StoredScorecard};
use serde_json::{Map, Value, json};

use crate::auth::random_bytes;
use crate::error::{ApiError, ApiResult};
use crate::jobs::scorecard::{RECOMPUTE_KIND, RecomputePayload};
use crate::ops::Actor;
use crate::ops::audit::audit_ctx;
use crate::state::AppState;

fn random_id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let s: String = random_bytes::<16>().iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect();
    format!("{prefix}{s}")
}

/// A stored scorecard as Port returns it.
pub fn render_scorecard(s: &StoredScorecard) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(s.id));
    out.insert("identifier".into(), json!(s.identifier));
    out.insert("blueprint".into(), json!(s.blueprint));
    for (k, v) in s.data.as_object().into_iter().flatten() {
        if k != "identifier" && k != "blueprint" {
            out.insert(k.clone(), v.clone());
        }
    }
    out.insert("createdAt".into(), json!(s.created_at));
    out.insert("createdBy".into(), json!(s.created_by));
    out.insert("updatedAt".into(), json!(s.updated_at));
    out.insert("updatedBy".into(), json!(s.updated_by));
    Value::Object(out)
}

pub async fn load_scorecard(state: &AppState, org: &OrgId, bp: &str, id: &str) -> ApiResult<StoredScorecard> {
    state
        .store
        .get_scorecard(org, bp, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("scorecard {id:?} of blueprint {bp:?} was not found")))
}

/// A stored definition, checked again (it was when saved; the blueprint may have changed).
pub fn parse_stored(s: &StoredScorecard) -> Result<Scorecard, FieldErrors> {
    let mut data = s.data.as_object().cloned().unwrap_or_default();
    data.insert("identifier".into(), json!(s.identifier));
    check_scorecard(&s.blueprint, &mut data)
}

/// Check a scorecard body for blueprint `bp` (which must exist), every error at its path;
/// rule queries and the filter are compiled by the store's search compiler against the
/// organization's blueprints, so a rule the compiler cannot evaluate is refused here.
/// Saves it (audited) with its full recomputation job.
pub async fn save_scorecard(
    state: &AppState,
    actor: &Actor,
    bp: &str,
    body: &Value,
    path_id: Option<&str>,
    mode: SaveMode,
) -> ApiResult<StoredScorecard> {
    let blueprints = state.blueprints(&actor.org).await?;
    if !blueprints.contains_key(bp) {
        return Err(ApiError::not_found(format!("blueprint {bp:?} was not found")));
    }
    let Some(obj) = body.as_object() else {
        return Err(FieldError::new("", "the body must be a JSON object (a scorecard)").into());
    };
    let mut data: Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| !core_sc::SERVER_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(id) = path_id {
        match data.get("identifier") {
            None => {
                data.insert("identifier".into(), json!(id));
            }
            Some(Value::String(given)) if given == id => {}
            Some(_) => {
                let msg = format!("must be {id:?}, the identifier in the URL (a scorecard cannot be renamed)");
                return Err(FieldError::new("identifier", msg).into());
            }
        }
    }
    let sc = check_scorecard(bp, &mut data).map_err(|e| ApiError::invalid(&e))?;
    let mut errs = FieldErrors::default();
    let cctx = CompileCtx {
        org_id: &actor.org.0,
        now: chrono::Utc::now(),
        blueprints: &blueprints,
        dialect: Default::default(),
    };
    let queries = sc
        .filter
        .iter()
        .map(|f| (f, "filter".to_string()))
        .chain(sc.rules.iter().enumerate().map(|(i, r)| (&r.query, format!("rules[{i}].query"))));
    for (q, path) in queries {
        if let Err(e) = compile_where_in(q, &cctx, Some(bp)) {
            errs.push(portolan_core::error::join_path(&path, &core_sc::rules_to_conditions(&e.path)), e.message);
        }
    }
    if !errs.is_empty() {
        return Err(ApiError::invalid(&errs));
    }
    let w = ScorecardWrite {
        blueprint: bp.to_string(),
        identifier: sc.identifier.clone(),
        id: random_id("scorecard_"),
        data: Value::Object(data),
    };
    let payload = RecomputePayload { blueprint: bp.to_string(), scorecard: sc.identifier.clone() };
    let job = NewJob { kind: RECOMPUTE_KIND.into(), payload: json!(payload), max_attempts: 5 };
    let (saved, _) = state.store.save_scorecard(&actor.org, &w, mode, &audit_ctx(actor), Some(&job)).await?;
    crate::jobs::wake_workers(state);
    Ok(saved)
}

pub async fn delete_scorecard(state: &AppState, actor: &Actor, bp: &str, id: &str) -> ApiResult<()> {
    state.store.delete_scorecard(&actor.org, bp, id, &audit_ctx(actor)).await?;
    Ok(())
}

/// Add `scorecards: {<id>: {level, rules}}` to the rendered entities that have results, loaded
/// for the whole page in one query.
pub async fn attach_results(
    state: &AppState,
    org: &OrgId,
    keys: &[(String, String)],
    out: &mut [Map<String, Value>],
) -> ApiResult<()> {
    let results = state.store.scorecard_results(org, keys).await?;
    if results.is_empty() {
        return Ok(());
    }
    let mut by_entity: HashMap<(&str, &str), Map<String, Value>> = HashMap::new();
    for ScorecardResult { blueprint, entity, scorecard, level, rules, .. } in &results {
        by_entity
            .entry((blueprint.as_str(), entity.as_str()))
            .or_default()
            .insert(scorecard.clone(), json!({"level": level, "rules": rules}));
    }
    for ((bp, id), m) in keys.iter().zip(out.iter_mut()) {
        if let Some(cards) = by_entity.get(&(bp.as_str(), id.as_str())) {
            m.insert("scorecards".into(), Value::Object(cards.clone()));
        }
    }
    Ok(())
}
