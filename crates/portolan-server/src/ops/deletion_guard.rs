//! The mass-deletion guard of integrations, and the resync bookkeeping it counts on.
//!
//! While a resync of an integration runs, its deletions may remove at most `maxShare` (default
//! 0.5) of the entities it had when the resync started, once more than `minCount` (default 10)
//! deletions are at stake. The first deletion of a resync also checks how many of the
//! integration's entities the resync did not write (what Ocean is about to delete), so a source
//! that answered nothing is refused before anything goes. Once refused, every further deletion
//! of that resync is refused until an admin confirms ([`confirm`],
//! `POST /v1/integration/{id}/confirm-deletions`).
//!
//! Every entity deletion goes through [`before_delete`] and [`after_delete`]; they do nothing
//! for an actor that is not an integration.

use portolan_core::search::parse_query;
use portolan_store::{
    DeletionGuard, IntegrationLog, LogFilter, OrgId, Reservation, Resync, SearchRequest, StoredIntegration,
};
use serde_json::{Value, json};

use super::Actor;
use super::event_log::{actor_integration, append, log_server, running_resync, server_line};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

/// How many entities integration `id` wrote last (by `$datasource`), optionally only those last
/// written before / at or after a time.
pub async fn count_entities(
    state: &AppState,
    org: &OrgId,
    id: &str,
    before: Option<&str>,
    since: Option<&str>,
) -> ApiResult<u64> {
    let mut rules = vec![
        json!({"property": "$datasource", "operator": "beginsWith", "value": "port-ocean/"}),
        json!({"property": "$datasource", "operator": "endsWith", "value": format!("/{id}/exporter")}),
    ];
    if let Some(b) = before {
        rules.push(json!({"property": "$updatedAt", "operator": "<", "value": b}));
    }
    if let Some(s) = since {
        rules.push(json!({"property": "$updatedAt", "operator": ">=", "value": s}));
    }
    let query = parse_query(&json!({"combinator": "and", "rules": rules})).map_err(ApiError::from)?;
    let blueprints = state.blueprints(org).await?;
    let req = SearchRequest::new(&blueprints, None, Some(&query), 1);
    Ok(state.store.count_entities(org, &req).await?)
}

/// A resync of integration `i` started (`resyncState.status` `running`): count its entities
/// for the guard and log the start.
pub async fn resync_started(state: &AppState, org: &OrgId, i: &StoredIntegration, at: &str) -> ApiResult<()> {
    crate::metrics::Metrics::add(&state.metrics.ocean_resyncs, 1);
    let entities = count_entities(state, org, &i.identifier, None, None).await?;
    let r = state.store.start_resync(org, &i.identifier, at, entities).await?;
    let msg = format!("resync {} started; the integration has {entities} entities", r.id);
    let extra = json!({"entities": entities, "deletionsConfirmed": r.confirmed});
    log_server(state, org, &i.identifier, Some(r.id), "INFO", "resync_started", msg, extra).await;
    Ok(())
}

/// A resync ended (`completed` or `failed`): log its counts.
pub async fn resync_finished(
    state: &AppState,
    org: &OrgId,
    i: &StoredIntegration,
    status: &str,
    at: &str,
) -> ApiResult<()> {
    let Some(r) = state.store.finish_resync(org, &i.identifier, status, at).await? else {
        return Ok(());
    };
    let written = count_entities(state, org, &i.identifier, None, Some(&r.started_at)).await?;
    let entities = count_entities(state, org, &i.identifier, None, None).await?;
    let filter = LogFilter {
        events: vec!["entity_rejected".into()],
        resync_id: Some(r.id.clone()),
        limit: 10_000,
        ..LogFilter::default()
    };
    let rejected = state.store.list_integration_logs(org, &i.identifier, &filter).await?.len();
    let msg = format!(
        "resync {} {status}: {written} entities written, {rejected} writes rejected, {} deleted, {} deletions refused; {entities} entities now",
        r.id, r.deleted, r.refused
    );
    let level = if status == "failed" || r.refused > 0 || rejected > 0 { "WARNING" } else { "INFO" };
    let extra = json!({"status": status, "written": written, "rejected": rejected, "deleted": r.deleted,
                       "deletionsRefused": r.refused, "entitiesAtStart": r.entities_at_start, "entities": entities,
                       "startedAt": r.started_at, "endedAt": r.ended_at});
    log_server(state, org, &i.identifier, Some(r.id), level, "resync_finished", msg, extra).await;
    Ok(())
}

/// Deletions the guard let through, to log (and give back if the delete fails).
#[derive(Debug)]
pub struct DeletionTicket {
    integration: String,
    resync: Option<Resync>,
    n: u64,
}

/// The guard of a store-level deletion of `ids`: `Ok(None)` when the actor is not an
/// integration, `Err` (409 `mass_deletion_refused`, logged) when the guard refuses.
pub async fn before_delete(
    state: &AppState,
    actor: &Actor,
    bp: &str,
    ids: &[String],
) -> ApiResult<Option<DeletionTicket>> {
    let Some(i) = actor_integration(state, actor).await else { return Ok(None) };
    let n = ids.len() as u64;
    let Some(running) = running_resync(state, &actor.org, &i.identifier).await else {
        return Ok(Some(DeletionTicket { integration: i.identifier, resync: None, n }));
    };
    let guard = guard_of(&i);
    let projected = if running.deleted == 0 && !running.confirmed && !running.tripped {
        count_entities(state, &actor.org, &i.identifier, Some(&running.started_at), None).await?
    } else {
        0
    };
    match state.store.reserve_deletions(&actor.org, &i.identifier, n, projected, &guard).await? {
        Reservation::Granted(r) => Ok(Some(DeletionTicket { integration: i.identifier, resync: Some(r), n })),
        Reservation::NoResync => Ok(Some(DeletionTicket { integration: i.identifier, resync: None, n })),
        Reservation::Refused(r) => {
            let message = format!(
                "mass-deletion guard: resync {} of integration {:?} would delete more than {}% of the {} entities it had at its start \
                 (deleted so far: {}, not written by this resync: {projected}, minimum before the guard applies: {}); \
                 deletion of {bp}/{} refused. If this is intended, confirm with POST /v1/integration/{}/confirm-deletions and resync again",
                r.id,
                i.identifier,
                guard.max_share * 100.0,
                r.entities_at_start,
                r.deleted,
                guard.min_count,
                ids.join(","),
                i.identifier
            );
            let extra = json!({"blueprint": bp, "identifiers": ids, "entitiesAtStart": r.entities_at_start,
                               "deleted": r.deleted, "refused": r.refused, "projected": projected,
                               "maxShare": guard.max_share, "minCount": guard.min_count});
            let (org, id, resync) = (&actor.org, &i.identifier, Some(r.id));
            log_server(state, org, id, resync, "ERROR", "deletion_refused", message.clone(), extra).await;
            Err(ApiError::new(ErrorCode::MassDeletionRefused, message))
        }
    }
}

/// After the store deleted (`Some(deleted)`) or failed to (`None`): log the deletions, or give
/// the reservation back.
pub async fn after_delete(
    state: &AppState,
    actor: &Actor,
    ticket: Option<DeletionTicket>,
    deleted: Option<&[(String, String)]>,
) {
    let Some(t) = ticket else { return };
    let resync_id = t.resync.as_ref().map(|r| r.id.clone());
    let Some(deleted) = deleted else {
        if let Some(r) = &resync_id
            && let Err(e) = state.store.release_deletions(&actor.org, r, t.n).await
        {
            tracing::warn!(error = %e, "could not release reserved deletions");
        }
        return;
    };
    let lines: Vec<IntegrationLog> = deleted
        .iter()
        .map(|(bp, id)| {
            server_line(
                "INFO",
                "entity_deleted",
                resync_id.clone(),
                format!("entity {id:?} of blueprint {bp:?} was deleted"),
                json!({"blueprint": bp, "identifier": id}),
            )
        })
        .collect();
    append(state, &actor.org, &t.integration, &lines, "deletions").await;
}

/// The integration's guard: `deletionGuard: {maxShare, minCount}` (Portolan extension), else
/// the defaults (0.5, 10).
pub fn guard_of(i: &StoredIntegration) -> DeletionGuard {
    let d = DeletionGuard::default();
    let g = i.data.get("deletionGuard");
    DeletionGuard {
        max_share: g.and_then(|g| g.get("maxShare")).and_then(Value::as_f64).unwrap_or(d.max_share),
        min_count: g.and_then(|g| g.get("minCount")).and_then(Value::as_u64).unwrap_or(d.min_count),
    }
}

/// An admin confirms that the deletions the guard refused for integration `id` are intended:
/// those of the running resync (returned), or when none runs those of the next resync.
pub async fn confirm(state: &AppState, actor: &Actor, id: &str) -> ApiResult<Option<Resync>> {
    let running = state.store.confirm_deletions(&actor.org, id).await?;
    let scope = if running.is_some() { "running" } else { "next" };
    let msg = match &running {
        Some(r) => format!("deletions of the running resync {} confirmed by {}", r.id, actor.client_id),
        None => format!("deletions of the next resync confirmed by {}", actor.client_id),
    };
    let resync_id = running.as_ref().map(|r| r.id.clone());
    let extra = json!({"by": actor.client_id, "resync": scope});
    log_server(state, &actor.org, id, resync_id, "WARNING", "deletion_confirmed", msg, extra).await;
    Ok(running)
}
