//! Scorecards (port-api.md §6): checking and saving definitions (each save enqueues the full
//! recomputation, `jobs/scorecard.rs`, in the same store transaction), rendering them in Port's
//! shape, and the `scorecards` map of entity answers.

use std::collections::HashMap;

use portolan_core::scorecard::{self as core_sc, Scorecard, check_scorecard};
use portolan_core::{Blueprint, FieldError, FieldErrors};
use portolan_store::query::{CompileCtx, compile_where_in};
use portolan_store::{NewJob, OrgId, SaveMode, ScorecardResult, ScorecardWrite, StoredScorecard};
use serde_json::{Map, Value, json};

use crate::auth::random_bytes;
use crate::error::{ApiError, ApiResult};
use crate::jobs::scorecard::{RECOMPUTE_KIND, RecomputePayload};
use crate::ops::Actor;
use crate::ops::audit::audit_ctx;
use crate::state::{AppState, Blueprints};

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
    let blueprints = known_blueprint(state, actor, bp).await?;
    let (w, job) = checked_write(&blueprints, actor, bp, body, path_id)?;
    let (saved, _) = state.store.save_scorecard(&actor.org, &w, mode, &audit_ctx(actor), Some(&job)).await?;
    crate::jobs::wake_workers(state);
    Ok(saved)
}

/// Most scorecards one `PUT /v1/blueprints/{bp}/scorecards` may hold.
pub const MAX_SCORECARDS_PER_BLUEPRINT: usize = 100;

/// `PUT /v1/blueprints/{bp}/scorecards`: `body`, an array of scorecards, becomes the
/// blueprint's scorecards (others deleted), all or nothing; errors at `[i]…` paths.
pub async fn replace_scorecards(
    state: &AppState,
    actor: &Actor,
    bp: &str,
    body: &Value,
) -> ApiResult<Vec<StoredScorecard>> {
    let blueprints = known_blueprint(state, actor, bp).await?;
    let Some(items) = body.as_array() else {
        return Err(FieldError::new("", "the body must be a JSON array of scorecards (all of the blueprint's)").into());
    };
    if items.len() > MAX_SCORECARDS_PER_BLUEPRINT {
        let msg = format!("must hold at most {MAX_SCORECARDS_PER_BLUEPRINT} scorecards (it holds {})", items.len());
        return Err(FieldError::new("", msg).into());
    }
    let mut errs = FieldErrors::default();
    let mut writes: Vec<(ScorecardWrite, NewJob)> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("[{i}]");
        match checked_write(&blueprints, actor, bp, item, None) {
            Ok((w, job)) => {
                if let Some(j) = writes.iter().position(|(o, _)| o.identifier == w.identifier) {
                    let msg = format!("{:?} is also the identifier of [{j}]", w.identifier);
                    errs.push(portolan_core::error::join_path(&at, "identifier"), msg);
                }
                writes.push((w, job));
            }
            Err(e) => e.0.into_iter().for_each(|e| errs.0.push(e.under(&at))),
        }
    }
    if !errs.is_empty() {
        return Err(ApiError::invalid(&errs));
    }
    let saved = state.store.replace_scorecards(&actor.org, bp, &writes, &audit_ctx(actor)).await?;
    crate::jobs::wake_workers(state);
    Ok(saved)
}

/// The organization's blueprints, once `bp` is known to be one of them.
async fn known_blueprint(state: &AppState, actor: &Actor, bp: &str) -> ApiResult<Blueprints> {
    let blueprints = state.blueprints(&actor.org).await?;
    if !blueprints.contains_key(bp) {
        return Err(ApiError::not_found(format!("blueprint {bp:?} was not found")));
    }
    Ok(blueprints)
}

/// One scorecard body checked for blueprint `bp` (the URL's identifier, when given, must
/// match the body's), with the recomputation job its save enqueues.
fn checked_write(
    blueprints: &HashMap<String, Blueprint>,
    actor: &Actor,
    bp: &str,
    body: &Value,
    path_id: Option<&str>,
) -> Result<(ScorecardWrite, NewJob), FieldErrors> {
    let Some(obj) = body.as_object() else {
        return Err(FieldError::new("", "must be a JSON object (a scorecard)").into());
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
    let sc = check_scorecard(bp, &mut data)?;
    let mut errs = FieldErrors::default();
    let cctx = CompileCtx::internal(&actor.org.0, chrono::Utc::now(), blueprints, Default::default());
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
    errs.into_result()?;
    let w = ScorecardWrite {
        blueprint: bp.to_string(),
        identifier: sc.identifier.clone(),
        id: random_id("scorecard_"),
        data: Value::Object(data),
    };
    let payload = RecomputePayload { blueprint: bp.to_string(), scorecard: sc.identifier.clone() };
    let job = NewJob { kind: RECOMPUTE_KIND.into(), payload: json!(payload), max_attempts: 5 };
    Ok((w, job))
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
