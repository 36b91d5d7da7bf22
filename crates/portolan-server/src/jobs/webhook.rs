//! `webhook_delivery`: one accepted delivery of a custom webhook, processed from the durable job
//! table. The ingest handler (`handlers/webhook/ingest.rs`) answers 202 only once this job (and,
//! with a request identifier, the delivery row that de-duplicates it) is committed, so a crash
//! after the 202 loses nothing: the job is claimed again on restart or after its lease expires.
//!
//! Processing, per mapping of the webhook (its mapping as stored when the job runs):
//! `filter` (jq over `{body, headers, queryParams}`, must be `true`), `itemsToParse` (jq to an
//! array, each element bound as `.item`; more than [`MAX_ITEMS`] fails the whole delivery before
//! anything is written), then the entity mapping (identifier, title, team, icon, properties,
//! relations — jq each, errors as `null`) and the operation: `create` upserts through the entity
//! write path (same validation, audit and `$datasource` = `webhook:<identifier>`, missing
//! related entities created), `delete` deletes (dependents too unless `deleteDependents: false`).
//! Everything that went wrong goes to the webhook's event log with Port's messages.
//! The mapping is compiled and evaluated by `portolan_jq::mapping` (once per mapping per delivery,
//! [`ITEMS_PER_HANDOFF`] items per jq hand-off), the engine the playground and the save-time
//! checks share. Every mapping's filter and `itemsToParse` are evaluated before anything is
//! mapped or written; an upsert of more than one chunk writes each chunk while the next is
//! mapped (`map_and_upsert`), in the same order, with the same counts and log lines.
//!
//! The job is idempotent: run twice (a node died after writing), it upserts and deletes the same
//! entities again.

use std::sync::Arc;

use portolan_core::{Blueprint, WriteMeta};
use portolan_jq::mapping::{self, kind};
use portolan_jq::{CompiledMapping, EvalError, JqBudget, JqEngine, JqScope};
use portolan_store::{Delivery, IntegrationLog, NewJob, OrgId, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{JobCtx, JobError};
use crate::error::{ApiError, ApiResult};
use crate::ops::Actor as Caller;
use crate::ops::audit::{audit_ctx, failure_record, now_iso};
use crate::ops::entity::{Op, prepare, rejection_error};
use crate::state::AppState;

pub const KIND: &str = "webhook_delivery";
/// Most items `itemsToParse` may yield per mapping of one delivery (Port: 500).
pub const MAX_ITEMS: usize = 500;

/// The job's payload: what the request carried (headers lower-cased, credentials redacted).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    pub webhook: String,
    pub body: Value,
    pub headers: Map<String, Value>,
    pub query_params: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    pub received_at: String,
}

/// Durably accept a delivery (job + de-duplication row in one transaction) and wake a worker.
pub async fn enqueue(state: &AppState, org: &OrgId, p: &Payload) -> ApiResult<Delivery> {
    let payload = serde_json::to_value(p).map_err(|e| ApiError::internal("webhook job payload", e))?;
    let job = NewJob { kind: KIND.to_string(), payload, max_attempts: 5 };
    let d =
        state.store.enqueue_webhook_delivery(org, &p.webhook, p.request_id.as_deref(), &job, &p.received_at).await?;
    if matches!(d, Delivery::Enqueued(_)) {
        state.jobs.wake.notify_one();
    }
    Ok(d)
}

/// A line of a webhook's event log from the server.
pub fn line(level: &str, event: &str, delivery: Option<&str>, message: String, extra: Value) -> IntegrationLog {
    IntegrationLog {
        id: String::new(),
        at: now_iso(),
        level: level.into(),
        source: "server".into(),
        event: event.into(),
        resync_id: delivery.map(str::to_string),
        message,
        extra,
    }
}

/// Append to a webhook's event log (best effort: a failure is logged, never fails the caller).
pub async fn log(state: &AppState, org: &OrgId, webhook: &str, lines: &[IntegrationLog]) {
    if lines.is_empty() {
        return;
    }
    if let Err(e) = state.store.append_webhook_logs(org, webhook, lines).await {
        tracing::warn!(error = %e, webhook, "could not append to the webhook's event log");
    }
}

/// What one mapping produced from a delivery.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    index: usize,
    blueprint: String,
    /// `Some(deleteDependents)` for a delete mapping.
    delete: Option<bool>,
    /// The filter evaluated to `false`: the mapping does not apply.
    skipped: bool,
    /// Why the mapping could not run at all (error-level).
    problem: Option<String>,
    /// Why the filter produced nothing usable (warning-level "Unable to find valid data").
    no_data: Option<String>,
    /// `itemsToParse` yielded more than [`MAX_ITEMS`].
    too_many: Option<usize>,
    pub(crate) items: usize,
    /// Entity bodies (create) or `{identifier}` (delete).
    pub(crate) entities: Vec<Value>,
    /// Items whose identifier was empty, null or missing.
    pub(crate) failed: usize,
    /// The first jq error met while mapping (for the log).
    first_error: Option<String>,
}

/// Items of one mapping evaluated per jq hand-off.
const ITEMS_PER_HANDOFF: usize = 256;

/// Evaluate every mapping over the delivery (CPU work: runs on a blocking thread).
/// One budget covers every evaluation of the delivery: when it runs out, the items not mapped yet
/// are counted as failed and the log says why. Each mapping is compiled once per delivery.
pub(crate) fn evaluate(jq: &JqEngine, budget: &JqBudget, mappings: &[Value], input: &Value) -> Vec<Plan> {
    let scope = jq.scope(budget.clone());
    mappings
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let (mut plan, ready) = prepare_mapping(jq, &scope, i, m, input);
            if let Some(ready) = ready {
                map_items(&scope, &ready, input, 0..plan.items, &mut plan);
            }
            plan
        })
        .collect()
}

/// A mapping that applies, compiled, with its items: what is left to map.
pub(crate) struct Ready {
    mapping: CompiledMapping,
    /// `None`: the delivery itself is the one item.
    items: Option<Vec<Value>>,
}

/// Everything before mapping the items: the filter, `itemsToParse` (counted, the limit
/// checked), the entity mapping's compile errors. `None` when there is nothing to map.
fn prepare_mapping(
    jq: &JqEngine,
    scope: &JqScope<'_>,
    index: usize,
    m: &Value,
    input: &Value,
) -> (Plan, Option<Ready>) {
    let mut plan = Plan { index, ..Plan::default() };
    plan.blueprint = m.get("blueprint").and_then(Value::as_str).unwrap_or_default().to_string();
    plan.delete = match m.get("operation") {
        Some(Value::String(s)) if s == "delete" => Some(true),
        Some(Value::Object(o)) if o.get("type").and_then(Value::as_str) == Some("delete") => {
            Some(o.get("deleteDependents").and_then(Value::as_bool).unwrap_or(true))
        }
        _ => None,
    };
    let mapping = CompiledMapping::webhook(jq, m);
    match mapping.select(scope, input) {
        None | Some(Ok(Value::Bool(true))) => {}
        Some(Ok(Value::Bool(false))) => {
            plan.skipped = true;
            return (plan, None);
        }
        Some(Ok(other)) => {
            plan.no_data = Some(format!("mappings[{index}].filter evaluated to {}, not true or false", kind(&other)));
            return (plan, None);
        }
        Some(Err(e)) => {
            plan.no_data = Some(format!("mappings[{index}].filter failed: {e}"));
            return (plan, None);
        }
    }
    // `None`: the delivery itself is the one item; otherwise each item's input is the delivery
    // with `.item` set, built inside the jq hand-off (the body is never copied per item).
    let items: Option<Vec<Value>> = match mapping.items(scope, input) {
        None => None,
        Some(Ok(items)) => {
            if items.len() > MAX_ITEMS {
                plan.too_many = Some(items.len());
                return (plan, None);
            }
            Some(items)
        }
        Some(Err(EvalError::NotArray(k))) => {
            plan.no_data = Some(format!("mappings[{index}].itemsToParse evaluated to {k}, not an array"));
            return (plan, None);
        }
        Some(Err(e)) => {
            plan.no_data = Some(format!("mappings[{index}].itemsToParse failed: {e}"));
            return (plan, None);
        }
    };
    plan.items = items.as_ref().map_or(1, Vec::len);
    let Some(entity) = mapping.entities().first() else {
        plan.problem = Some(format!("mappings[{index}].entity is missing"));
        return (plan, None);
    };
    if let Some((field, e)) = entity.first_compile_error() {
        plan.problem = Some(format!("mappings[{index}].{}: {e}", field.path()));
        return (plan, None);
    }
    (plan, Some(Ready { mapping, items }))
}

/// Map the items in `range` (of `plan.items`) into `plan.entities`, a chunk per jq hand-off.
fn map_items(scope: &JqScope<'_>, ready: &Ready, input: &Value, range: std::ops::Range<usize>, plan: &mut Plan) {
    let Some(entity) = ready.mapping.entities().first() else { return };
    let (total, end) = (plan.items, range.end.min(plan.items));
    let mut done = range.start;
    while done < end {
        if scope.budget().is_spent() {
            plan.failed += end - done;
            plan.first_error.get_or_insert_with(|| {
                format!(
                    "the delivery's jq time budget ran out after {done} of {total} items; the other {} were not mapped",
                    total - done
                )
            });
            break;
        }
        // A chunk of items per worker hand-off: one crossing per chunk, not per field or item,
        // while a budget that runs out mid-delivery still leaves the earlier chunks mapped.
        let n = match &ready.items {
            None => 1,
            Some(_) => ITEMS_PER_HANDOFF.min(end - done),
        };
        let evaluated = match &ready.items {
            None => entity.eval(scope, input).map(|v| vec![v]),
            Some(items) => entity.eval_items(scope, input, "item", &items[done..done + n]),
        };
        done += n;
        let per_item = match evaluated {
            Ok(v) => v,
            Err(e) => {
                plan.first_error.get_or_insert_with(|| e.to_string());
                plan.failed += n;
                continue;
            }
        };
        for values in per_item {
            if let Some(f) = values.iter().find(|f| f.result.is_err())
                && let Err(e) = &f.result
            {
                plan.first_error.get_or_insert_with(|| format!("{}: {e}", f.path));
            }
            let Ok(body) = mapping::assemble(&values) else {
                plan.failed += 1;
                continue;
            };
            if plan.delete.is_some() {
                plan.entities.push(json!({"identifier": body.get("identifier")}));
                continue;
            }
            plan.entities.push(Value::Object(body));
        }
    }
}

/// Counts of one delivery.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Counts {
    mappings_matched: usize,
    upserted: usize,
    deleted: usize,
    rejected: usize,
    failed_transformations: usize,
}

pub async fn run(ctx: JobCtx) -> Result<Value, JobError> {
    let p: Payload = serde_json::from_value(ctx.job.payload.clone()).map_err(|e| JobError::Fail {
        status: 500,
        code: crate::error::ErrorCode::Internal,
        message: format!("bad payload: {e}"),
    })?;
    let (state, org, delivery) = (&ctx.state, &ctx.job.org, ctx.job.id.as_str());
    let Some(hook) = state.store.get_webhook(org, &p.webhook).await? else {
        return Ok(json!({"skipped": format!("webhook {:?} was deleted", p.webhook)}));
    };
    let mappings = hook.data.get("mappings").and_then(Value::as_array).cloned().unwrap_or_default();
    let input = json!({"body": p.body, "headers": p.headers, "queryParams": p.query_params});
    let jq = state.jq.clone();
    let budget = JqBudget::new(&org.0, state.config.jq_delivery_budget);
    let input = Arc::new(input);
    // First every mapping's filter and items (nothing is written when one has too many), then
    // each mapping's items are mapped and written in turn.
    let prepared = {
        let (jq, budget, input) = (jq.clone(), budget.clone(), Arc::clone(&input));
        tokio::task::spawn_blocking(move || {
            let scope = jq.scope(budget);
            mappings.iter().enumerate().map(|(i, m)| prepare_mapping(&jq, &scope, i, m, &input)).collect::<Vec<_>>()
        })
        .await
        .map_err(|e| JobError::Retry(format!("mapping evaluation did not finish: {e}")))?
    };
    let id = hook.identifier.as_str();
    let metrics = &state.metrics;
    crate::metrics::Metrics::add(&metrics.webhook_deliveries, 1);
    let mut lines = Vec::new();
    if let Some((plan, _)) = prepared.iter().find(|(p, _)| p.too_many.is_some()) {
        let n = plan.too_many.unwrap_or_default();
        let message = format!(
            "delivery {delivery} failed: mappings[{}].itemsToParse produced {n} items for blueprint {:?}; at most {MAX_ITEMS} items per request are processed, so nothing was written",
            plan.index, plan.blueprint
        );
        lines.push(line(
            "ERROR",
            "delivery_failed",
            Some(delivery),
            message.clone(),
            json!({"mapping": plan.index, "blueprint": plan.blueprint, "items": n, "maxItems": MAX_ITEMS}),
        ));
        log(state, org, id, &lines).await;
        let failures =
            prepared.iter().filter(|(p, _)| !p.skipped && (p.no_data.is_some() || p.problem.is_some())).count();
        crate::metrics::Metrics::add(&metrics.webhook_mapping_failures, failures as u64);
        return Err(JobError::Fail { status: 413, code: crate::error::ErrorCode::TooManyItems, message });
    }
    let caller = Caller {
        client_id: format!("webhook:{id}"),
        org: org.clone(),
        user_agent: Some(format!("webhook:{id}")),
        principal: portolan_core::permissions::Principal::Machine,
        depth: 0,
        blueprints_version: None,
    };
    let mut counts = Counts::default();
    let (n_mappings, mut failures) = (prepared.len(), 0);
    for (mut plan, ready) in prepared {
        // Entities already written while the items were mapped (large upserts), and how many
        // the mapping produced.
        let mut written: Option<(Outcome, usize)> = None;
        if let Some(ready) = ready {
            let ready = Arc::new(ready);
            if pipelined(state, org, &plan, &ready).await? {
                written =
                    Some(map_and_upsert(state, &caller, (&jq, &budget), &ready, &input, &mut plan, delivery).await?);
            } else {
                let (jq, budget, input) = (jq.clone(), budget.clone(), Arc::clone(&input));
                plan = tokio::task::spawn_blocking(move || {
                    let scope = jq.scope(budget);
                    let range = 0..plan.items;
                    map_items(&scope, &ready, &input, range, &mut plan);
                    plan
                })
                .await
                .map_err(|e| JobError::Retry(format!("mapping evaluation did not finish: {e}")))?;
            }
        }
        if !plan.skipped {
            failures += plan.failed + usize::from(plan.no_data.is_some() || plan.problem.is_some());
        }
        if plan.skipped {
            lines.push(line(
                "DEBUG",
                "mapping_skipped",
                Some(delivery),
                format!("mappings[{}] (blueprint {:?}): the filter did not match; skipped", plan.index, plan.blueprint),
                json!({"mapping": plan.index, "blueprint": plan.blueprint}),
            ));
            continue;
        }
        counts.mappings_matched += 1;
        let extra = json!({"mapping": plan.index, "blueprint": plan.blueprint, "items": plan.items,
                           "failed": plan.failed, "error": plan.first_error});
        if let Some(reason) = &plan.no_data {
            let message = format!("Unable to find valid data for: {} ({reason})", plan.blueprint);
            lines.push(line("WARNING", "mapping_failed", Some(delivery), message, extra));
            continue;
        }
        if let Some(problem) = &plan.problem {
            lines.push(line("ERROR", "mapping_failed", Some(delivery), problem.clone(), extra));
            continue;
        }
        if plan.failed > 0 {
            counts.failed_transformations += plan.failed;
            let mut message =
                format!("{} transformations of batch failed due to empty, null or missing values", plan.failed);
            message.push_str(&format!(
                " (mappings[{}].entity.identifier, blueprint {:?}{})",
                plan.index,
                plan.blueprint,
                plan.first_error.as_deref().map(|e| format!("; first error: {e}")).unwrap_or_default()
            ));
            lines.push(line("WARNING", "transformations_failed", Some(delivery), message, extra.clone()));
        }
        let produced = written.as_ref().map_or(plan.entities.len(), |(_, n)| *n);
        if produced == 0 {
            if plan.items > 0 {
                let message = format!(
                    "Unable to find valid data for: {} (mappings[{}].entity.identifier produced no identifier)",
                    plan.blueprint, plan.index
                );
                lines.push(line("WARNING", "mapping_failed", Some(delivery), message, extra));
            }
            continue;
        }
        let out = match (written, plan.delete) {
            (Some((out, _)), _) => out,
            (None, Some(cascade)) => delete(state, &caller, &plan, cascade, delivery).await?,
            (None, None) => upsert(state, &caller, &plan, delivery).await?,
        };
        counts.upserted += out.upserted;
        counts.deleted += out.deleted;
        counts.rejected += out.rejected;
        lines.extend(out.lines);
    }
    let level = if counts.rejected > 0 || counts.failed_transformations > 0 { "WARNING" } else { "INFO" };
    lines.push(line(
        level,
        "delivery_processed",
        Some(delivery),
        format!(
            "delivery {delivery} processed: {} of {} mappings applied, {} entities upserted, {} deleted, {} rejected, {} transformations failed",
            counts.mappings_matched,
            n_mappings,
            counts.upserted,
            counts.deleted,
            counts.rejected,
            counts.failed_transformations
        ),
        json!(counts),
    ));
    log(state, org, id, &lines).await;
    crate::metrics::Metrics::add(&metrics.webhook_mapping_failures, failures as u64);
    Ok(json!(counts))
}

/// Whether a mapping's items are written chunk by chunk while the next chunk is mapped: an
/// upsert of more than one chunk of items to an existing blueprint that is not `_user`/`_team`
/// (those are written one by one, and a missing blueprint is one log line for the mapping).
async fn pipelined(state: &AppState, org: &OrgId, plan: &Plan, ready: &Ready) -> Result<bool, JobError> {
    if plan.delete.is_some()
        || ready.items.as_ref().is_none_or(|items| items.len() <= ITEMS_PER_HANDOFF)
        || crate::ops::system_entity::is_system(&plan.blueprint)
    {
        return Ok(false);
    }
    Ok(blueprint(state, org, &plan.blueprint).await?.is_some())
}

/// Map a mapping's items a chunk per jq hand-off (on a blocking thread) and upsert each chunk
/// while the next one is mapped: the writer and the jq worker work at once instead of in turn.
/// `plan` gets the failures and the first error; its `entities` stay empty (they are written).
/// Returns what the writes did and how many entities the mapping produced.
async fn map_and_upsert(
    state: &AppState,
    caller: &Caller,
    (jq, budget): (&Arc<JqEngine>, &JqBudget),
    ready: &Arc<Ready>,
    input: &Arc<Value>,
    plan: &mut Plan,
    delivery: &str,
) -> Result<(Outcome, usize), JobError> {
    let (total, mut start) = (plan.items, 0);
    let (mut out, mut produced) = (Outcome::default(), 0);
    let mut pending: Option<Vec<Value>> = None;
    while start < total || pending.is_some() {
        let next = (start < total).then(|| {
            let range = start..(start + ITEMS_PER_HANDOFF).min(total);
            start = range.end;
            let (jq, budget, ready, input) = (Arc::clone(jq), budget.clone(), Arc::clone(ready), Arc::clone(input));
            let mut part = Plan { index: plan.index, items: total, ..Plan::default() };
            tokio::task::spawn_blocking(move || {
                map_items(&jq.scope(budget), &ready, &input, range, &mut part);
                part
            })
        });
        if let Some(entities) = pending.take() {
            let chunk = Plan { index: plan.index, blueprint: plan.blueprint.clone(), entities, ..Plan::default() };
            let o = upsert(state, caller, &chunk, delivery).await?;
            out.upserted += o.upserted;
            out.rejected += o.rejected;
            out.lines.extend(o.lines);
        }
        if let Some(next) = next {
            let part = next.await.map_err(|e| JobError::Retry(format!("mapping evaluation did not finish: {e}")))?;
            plan.failed += part.failed;
            if plan.first_error.is_none() {
                plan.first_error = part.first_error;
            }
            produced += part.entities.len();
            pending = (!part.entities.is_empty()).then_some(part.entities);
        }
    }
    Ok((out, produced))
}

#[derive(Default)]
struct Outcome {
    upserted: usize,
    deleted: usize,
    rejected: usize,
    lines: Vec<IntegrationLog>,
}

fn rejected_line(delivery: &str, bp: &str, id: &str, action: &str, reason: &str) -> IntegrationLog {
    line(
        "ERROR",
        "entity_rejected",
        Some(delivery),
        format!("{action} of entity {id:?} of blueprint {bp:?} was rejected: {reason}"),
        json!({"blueprint": bp, "identifier": id, "action": action, "reason": reason}),
    )
}

async fn blueprint(state: &AppState, org: &OrgId, bp: &str) -> Result<Option<Arc<Blueprint>>, JobError> {
    let all = state.blueprints(org).await.map_err(JobError::from)?;
    Ok(all.get(bp).cloned().map(Arc::new))
}

/// Audit refused writes as the API does.
async fn audit_refused(state: &AppState, caller: &Caller, bp: &str, fails: &[(String, String)], action: &str) {
    let recs: Vec<_> =
        fails.iter().map(|(id, msg)| failure_record(caller, "entity", action, id, Some(bp), Some(id), msg)).collect();
    if recs.is_empty() {
        return;
    }
    if let Err(e) = state.store.append_audit(&caller.org, &recs).await {
        tracing::warn!(error = %e, "could not record refused webhook writes in the audit log");
    }
}

async fn upsert(state: &AppState, caller: &Caller, plan: &Plan, delivery: &str) -> Result<Outcome, JobError> {
    let mut out = Outcome::default();
    let bp_id = plan.blueprint.as_str();
    let Some(bp) = blueprint(state, &caller.org, bp_id).await? else {
        out.rejected = plan.entities.len();
        out.lines.push(line(
            "ERROR",
            "mapping_failed",
            Some(delivery),
            format!(
                "mappings[{}]: blueprint {bp_id:?} does not exist, so {} entities were not written; create the blueprint first",
                plan.index,
                plan.entities.len()
            ),
            json!({"mapping": plan.index, "blueprint": bp_id}),
        ));
        return Ok(out);
    };
    let mut fails: Vec<(String, String)> = Vec::new();
    // `_user` / `_team` entities are people and teams: written one by one as person or team
    // changes (a mapping can set the organization's own properties of existing ones).
    if crate::ops::system_entity::is_system(bp_id) {
        let opts = crate::ops::entity::WriteOptions { create_missing_related: true, ..Default::default() };
        for r in crate::ops::entity::write_many(state, caller, &bp, &plan.entities, Op::UpsertMerge, opts).await? {
            match r.result {
                Ok(_) => out.upserted += 1,
                Err(e) => fails.push((r.identifier, e.message)),
            }
        }
        for (id, reason) in &fails {
            out.lines.push(rejected_line(delivery, bp_id, id, "UPSERT", reason));
        }
        out.rejected = fails.len(); // audited by `write_many`
        return Ok(out);
    }
    let meta = WriteMeta { now: now_iso(), actor: caller.client_id.clone(), datasource: caller.user_agent.clone() };
    let mut writes = Vec::new();
    for body in &plan.entities {
        match prepare(&bp, None, body, Op::Upsert, meta.clone(), true, None) {
            Ok(w) => writes.push(w),
            Err((id, rej)) => fails.push((id, rejection_error(&rej).message)),
        }
    }
    let ids: Vec<String> = writes.iter().map(|w| w.identifier.clone()).collect();
    let results = super::write_entities_and_wake(state, &caller.org, writes, &audit_ctx(caller)).await?;
    for (id, r) in ids.into_iter().zip(results) {
        match r {
            Ok(_) => out.upserted += 1,
            Err(rej) => fails.push((id, rejection_error(&rej).message)),
        }
    }
    for (id, reason) in &fails {
        out.lines.push(rejected_line(delivery, bp_id, id, "UPSERT", reason));
    }
    out.rejected = fails.len();
    audit_refused(state, caller, bp_id, &fails, "UPDATE").await;
    Ok(out)
}

async fn delete(
    state: &AppState,
    caller: &Caller,
    plan: &Plan,
    cascade: bool,
    delivery: &str,
) -> Result<Outcome, JobError> {
    let mut out = Outcome::default();
    let bp = plan.blueprint.as_str();
    let mut ids: Vec<String> =
        plan.entities.iter().filter_map(|e| e.get("identifier").and_then(Value::as_str).map(str::to_string)).collect();
    ids.sort();
    ids.dedup();
    let existing = state.store.get_entities(&caller.org, bp, &ids).await?;
    let existing: Vec<String> = existing.into_iter().map(|e| e.identifier).collect();
    for id in ids.iter().filter(|id| !existing.contains(id)) {
        out.lines.push(line(
            "INFO",
            "delete_skipped",
            Some(delivery),
            format!("entity {id:?} of blueprint {bp:?} does not exist; nothing to delete"),
            json!({"blueprint": bp, "identifier": id}),
        ));
    }
    if existing.is_empty() {
        return Ok(out);
    }
    let deleted = if crate::ops::system_entity::is_system(bp) {
        // People and teams go through their own removal (the last admin stays).
        crate::ops::system_entity::delete(state, caller, bp, &existing).await
    } else {
        match state.store.delete_entities(&caller.org, bp, &existing, cascade, &audit_ctx(caller)).await {
            Err(StoreError::Db(msg)) => return Err(JobError::Retry(format!("database error: {msg}"))),
            r => r.map_err(ApiError::from),
        }
    };
    match deleted {
        Ok(deleted) => {
            out.deleted = deleted.len();
            for (b, id) in deleted {
                out.lines.push(line(
                    "INFO",
                    "entity_deleted",
                    Some(delivery),
                    format!("entity {id:?} of blueprint {b:?} was deleted"),
                    json!({"blueprint": b, "identifier": id}),
                ));
            }
        }
        Err(e) => {
            let reason = e.message;
            let fails: Vec<(String, String)> = existing.iter().map(|id| (id.clone(), reason.clone())).collect();
            for (id, reason) in &fails {
                out.lines.push(rejected_line(delivery, bp, id, "DELETE", reason));
            }
            out.rejected = fails.len();
            audit_refused(state, caller, bp, &fails, "DELETE").await;
        }
    }
    Ok(out)
}
