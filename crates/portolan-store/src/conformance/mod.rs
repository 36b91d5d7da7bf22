//! The store conformance suite: behaviour every backend must have. Each case is a plain async
//! function over a fresh, empty store; [`conformance_tests!`](crate::conformance_tests) turns
//! them into one `#[tokio::test]` per case for a backend's factory.
//!
//! One file per aggregate (orgs and settings, blueprints, entities, search, audit, jobs,
//! integrations, webhooks, accounts, web UI settings, actions, scorecards, aggregations); the helpers every case builds on are
//! here. A new case is a `pub async fn name(s: &dyn Store)` in its aggregate's file, listed in
//! [`conformance_tests!`](crate::conformance_tests). `tests/conformance_guard.rs` fails when a
//! store method is called by no case, or a case is missing from that list.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod accounts;
mod actions;
mod aggregations;
mod audit;
mod automations;
mod blueprints;
mod changelog;
mod entities;
mod integrations;
mod jobs;
mod mirror;
mod orgs;
mod scorecards;
mod search;
mod teams;
#[cfg(feature = "testing")]
pub mod test_db;
mod ui;
mod webhooks;
mod widgets;

use std::collections::HashMap;

use portolan_core::{Blueprint, Entity};
use serde_json::{Value, json};

use crate::{AuditCtx, EntityWrite, OrgId, RelTarget, SearchRequest, Store};

pub use accounts::*;
pub use actions::*;
pub use aggregations::*;
pub use audit::*;
pub use automations::*;
pub use blueprints::*;
pub use changelog::*;
pub use entities::*;
pub use integrations::*;
pub use jobs::*;
pub use mirror::*;
pub use orgs::*;
pub use scorecards::*;
pub use search::*;
pub use teams::*;
pub use ui::*;
pub use webhooks::*;
pub use widgets::*;

pub const T0: &str = "2024-01-01T00:00:00.000Z";

pub fn ctx() -> AuditCtx {
    AuditCtx { user_id: "tester".into(), origin: "API".into(), at: T0.into(), depth: 0 }
}

pub async fn org(store: &dyn Store, name: &str) -> OrgId {
    store.create_org(&OrgId(format!("org_{name}")), name, T0).await.unwrap().id
}

/// A Port team `name` of `org` (id `team_<name>`), without members.
pub async fn port_team(store: &dyn Store, org: &OrgId, name: &str) {
    let w = crate::TeamWrite {
        name: name.into(),
        id: format!("team_{name}"),
        description: None,
        provider: "Port".into(),
        members: None,
    };
    store.save_team(org, None, &w, crate::SaveMode::Create, &ctx()).await.unwrap();
}

pub fn bp(v: Value) -> Blueprint {
    serde_json::from_value(v).unwrap()
}

/// domain ← service(domain: single, optional; owner: single, required → team)
pub async fn model(store: &dyn Store, org: &OrgId) -> HashMap<String, Blueprint> {
    let team = bp(json!({"identifier": "team", "title": "Team"}));
    let domain =
        bp(json!({"identifier": "domain", "title": "Domain", "schema": {"properties": {"owner": {"type": "string"}}}}));
    let service = bp(json!({"identifier": "service", "title": "Service",
        "schema": {"properties": {"cpu": {"type": "number"}, "lang": {"type": "string"}}},
        "relations": {"domain": {"target": "domain"}, "team": {"target": "team", "required": true}}}));
    let mut m = HashMap::new();
    for b in [team, domain, service] {
        store.create_blueprint(org, &b, &ctx()).await.unwrap();
        m.insert(b.identifier.clone(), b);
    }
    m
}

pub fn entity(bp: &str, id: &str, props: Value, rels: Value) -> Entity {
    Entity {
        identifier: id.into(),
        title: Some(id.to_uppercase()),
        icon: None,
        blueprint: bp.into(),
        team: vec![],
        properties: props.as_object().cloned().unwrap_or_default(),
        relations: rels.as_object().cloned().unwrap_or_default(),
        created_at: T0.into(),
        created_by: "tester".into(),
        updated_at: T0.into(),
        updated_by: "tester".into(),
        datasource: None,
    }
}

fn edges(e: &Entity, model: &HashMap<String, Blueprint>) -> Vec<RelTarget> {
    let b = &model[&e.blueprint];
    portolan_core::entity::relation_targets(b, e)
        .into_iter()
        .map(|(relation, target_blueprint, target_identifier, required)| RelTarget {
            relation,
            target_blueprint,
            target_identifier,
            required,
        })
        .collect()
}

/// A plain upsert of `e`.
pub fn put(e: Entity, model: &HashMap<String, Blueprint>, create_missing: bool) -> EntityWrite {
    let ed = edges(&e, model);
    EntityWrite {
        blueprint: e.blueprint.clone(),
        identifier: e.identifier.clone(),
        build: Box::new(move |_| Ok((e, ed))),
        create_missing_related: create_missing,
    }
}

pub async fn write_ok(store: &dyn Store, org: &OrgId, model: &HashMap<String, Blueprint>, es: Vec<Entity>) {
    let writes = es.into_iter().map(|e| put(e, model, false)).collect();
    for r in store.write_entities(org, writes, &ctx()).await.unwrap() {
        r.expect("write accepted");
    }
}

pub(crate) fn req<'a>(
    bp: Option<&'a str>,
    q: Option<&'a portolan_core::search::Query>,
    m: &'a HashMap<String, Blueprint>,
) -> SearchRequest<'a> {
    SearchRequest {
        blueprint: bp,
        query: q,
        blueprints: m,
        after: None,
        limit: 100,
        now: chrono::Utc::now(),
        visible: None,
    }
}

pub(crate) async fn idents(store: &dyn Store, org: &OrgId, r: &SearchRequest<'_>) -> Vec<String> {
    let mut v: Vec<String> = store.search(org, r).await.unwrap().entities.into_iter().map(|e| e.identifier).collect();
    v.sort();
    v
}

/// Poll every future to completion concurrently (on the current task), outputs in order.
pub async fn join_all<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    use std::pin::Pin;
    use std::task::Poll;
    let mut futs: Vec<Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(move |cx| {
        let mut pending = false;
        for (f, o) in futs.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *o = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending { Poll::Pending } else { Poll::Ready(out.iter_mut().map(|o| o.take().unwrap()).collect()) }
    })
    .await
}

/// One `#[tokio::test]` per conformance case, each on a fresh store from `$make`.
///
/// `conformance_tests!(@optional $make)`: `$make` yields an `Option` of something that derefs
/// to a store; on `None` (a backend not configured on this machine) each test returns at once,
/// and the factory is expected to say on stderr that it skipped.
#[macro_export]
macro_rules! conformance_tests {
    (@list $mode:ident $make:expr) => {
        $crate::conformance_tests!(@cases $mode $make;
            // orgs.rs
            settings_are_initialised_once, orgs_and_credentials, ping_answers_within_its_wait,
            quotas_bound_entities_and_users,
            // blueprints.rs
            blueprint_lifecycle, blueprint_delete_guards, renames_carry_entity_values,
            blueprint_version_changes_with_every_blueprint_write, required_dependents_come_from_other_blueprints,
            // entities.rs
            tenancy_is_enforced, entity_writes_see_the_stored_entity, missing_targets_reject_or_create_stubs,
            delete_unlinks_blocks_and_cascades, batches_are_one_unit,
            a_batch_naming_an_entity_twice_applies_both_in_order, updates_keep_creation_meta_and_replace_edges,
            nul_characters_are_kept_or_refused_never_an_error,
            concurrent_writes_share_transactions_and_keep_their_own_answers,
            a_write_whose_caller_went_away_is_still_written,
            // search.rs
            search_pages_with_a_cursor, sorted_pages_order_by_meta_and_properties_and_page_by_offset,
            sorted_pages_order_null_and_mixed_types_alike,
            searches_stop_at_their_budget, largest_accepted_queries_run,
            // audit.rs
            writes_are_audited,
            // jobs.rs
            job_claims_are_exclusive_under_concurrency, an_expired_lease_is_taken_over_and_the_old_holder_refused,
            failed_jobs_retry_with_backoff_until_max_attempts, released_and_cancelled_jobs, delayed_jobs_wait_for_their_time, jobs_are_tenant_scoped,
            job_claims_keep_each_organizations_share, queue_stats_count_unfinished_jobs_per_kind,
            // integrations.rs
            integrations_are_versioned_guarded_and_tenant_scoped,
            integration_cursors_are_keyed_updated_only_when_present_and_tenant_scoped,
            // webhooks.rs
            webhooks_dedupe_deliveries_keep_opaque_secrets_and_are_tenant_scoped,
            // accounts.rs
            users_have_unique_emails_and_are_tenant_scoped, sessions_are_found_by_hash_touched_forward_and_ended,
            invitations_are_used_once_before_they_expire, sso_answers_are_spent_once,
            // ui.rs
            web_ui_settings_are_tenant_scoped_and_reads_are_paged,
            // automations.rs
            automation_events_are_recorded_with_the_change_and_dispatched_once,
            automation_events_keep_each_entitys_commit_order,
            a_dispatch_stores_every_run_and_job_of_its_events,
            events_left_out_of_a_dispatch_still_wait,
            work_left_with_no_job_is_queued_again,
            // changelog.rs
            changelog_changes_are_kept_with_the_write_and_delivered_in_order_per_entity,
            // actions.rs
            actions_are_saved_audited_and_tenant_scoped,
            runs_are_stored_with_their_job_updated_with_logs_and_tenant_scoped,
            run_timeouts_are_listed_across_organizations_until_the_run_ends,
            approved_runs_start_with_their_job_in_the_same_transaction,
            agent_claims_are_leased_exclusive_and_acknowledged_once,
            secrets_settings_and_signing_secret_are_opaque_audited_and_tenant_scoped,
            pages_are_saved_audited_and_tenant_scoped,
            // scorecards.rs
            scorecards_are_saved_audited_and_tenant_scoped, scorecard_results_follow_rules_filter_and_history,
            scorecards_are_replaced_all_at_once,
            // aggregations.rs
            aggregation_values_follow_writes_deletes_search_and_sort, aggregation_values_for_a_reader_count_only_what_it_reads,
            // teams.rs
            teams_are_saved_renamed_deleted_audited_and_tenant_scoped, entity_writes_name_only_existing_teams,
            people_have_roles_status_and_teams, blueprint_permissions_are_kept_and_audited,
            concurrent_person_edits_of_different_fields_both_hold,
            team_scoped_counts_count_entities_of_several_teams_once,
            // mirror.rs
            user_and_team_entities_follow_people_and_teams, team_renames_keep_relations_to_their_entity_whole,
            changes_through_system_entities_are_one_transaction, entity_writes_do_not_make_people_or_teams,
            concurrent_people_changes_keep_their_entities_whole,
            // widgets.rs
            widget_aggregates_count_group_and_stay_in_the_organization, measures_of_one_scan_match_their_own_statements);
    };
    (@cases always $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let store = $make.await;
                $crate::conformance::$case(&store).await;
            }
        )*
    };
    (@cases optional $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let Some(store) = $make.await else { return };
                $crate::conformance::$case(&*store).await;
            }
        )*
    };
    (@optional $make:expr) => {
        $crate::conformance_tests!(@list optional $make);
    };
    ($make:expr) => {
        $crate::conformance_tests!(@list always $make);
    };
}
