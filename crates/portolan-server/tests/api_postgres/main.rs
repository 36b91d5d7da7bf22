//! The HTTP-level integration tests of `tests/api/` on PostgreSQL: the same modules, compiled
//! with `BACKEND = Postgres`, so each test runs on a fresh database of the server named by
//! `PORTOLAN_TEST_DATABASE_URL` (`postgres://postgres@127.0.0.1:5432/test`; `.ci/run` sets it).
//! Without the variable every test returns at once (saying so on stderr) and
//! [`postgresql_half`] prints a notice that plain `cargo test` shows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The backend this binary's tests run on (read by `helpers::TestApp::spawn`).
pub const BACKEND: helpers::Backend = helpers::Backend::Postgres;

#[path = "../api/helpers.rs"]
mod helpers;
#[path = "../api/pg.rs"]
mod pg;

#[path = "../api/action_policies.rs"]
mod action_policies;
#[path = "../api/actions.rs"]
mod actions;
#[path = "../api/aggregation.rs"]
mod aggregation;
#[path = "../api/approvals.rs"]
mod approvals;
#[path = "../api/audit.rs"]
mod audit;
#[path = "../api/auth.rs"]
mod auth;
#[path = "../api/automations.rs"]
mod automations;
#[path = "../api/blueprint.rs"]
mod blueprint;
#[path = "../api/blueprint_rename.rs"]
mod blueprint_rename;
#[path = "../api/changelog.rs"]
mod changelog;
#[path = "../api/credentials.rs"]
mod credentials;
#[path = "../api/entity.rs"]
mod entity;
#[path = "../api/entity_bulk.rs"]
mod entity_bulk;
#[path = "../api/git_invocations.rs"]
mod git_invocations;
#[path = "../api/integration.rs"]
mod integration;
#[path = "../api/limits.rs"]
mod limits;
#[path = "../api/malformed.rs"]
mod malformed;
#[path = "../api/metrics.rs"]
mod metrics;
#[path = "../api/ocean_latest.rs"]
mod ocean_latest;
#[path = "../api/pages.rs"]
mod pages;
#[path = "../api/people.rs"]
mod people;
#[path = "../api/permissions.rs"]
mod permissions;
#[path = "../api/ratelimit.rs"]
mod ratelimit;
#[path = "../api/run_timeouts.rs"]
mod run_timeouts;
#[path = "../api/scorecards.rs"]
mod scorecards;
#[path = "../api/search.rs"]
mod search;
#[path = "../api/search_paging.rs"]
mod search_paging;
#[path = "../api/smoke.rs"]
mod smoke;
#[path = "../api/system_blueprints.rs"]
mod system_blueprints;
#[path = "../api/tenancy.rs"]
mod tenancy;
#[path = "../api/validation.rs"]
mod validation;
#[path = "../api/webhook.rs"]
mod webhook;

/// Says whether this binary ran on PostgreSQL (a notice on stderr when it did not), or fails
/// when `PORTOLAN_TEST_DATABASE_URL` is set but the server does not answer.
#[tokio::test]
async fn postgresql_half() {
    pg::postgresql_half("HTTP API tests, tests/api_postgres").await;
}

/// Every module of `tests/api/main.rs` is compiled here too (a new test module added there and
/// forgotten here would silently run on SQLite only).
#[test]
fn every_api_module_runs_on_postgresql_too() {
    let mods = |src: &str| -> Vec<String> {
        src.lines().filter_map(|l| l.strip_prefix("mod ")).map(|m| m.trim_end_matches(';').to_string()).collect()
    };
    let here = mods(include_str!("main.rs"));
    let missing: Vec<_> = mods(include_str!("../api/main.rs")).into_iter().filter(|m| !here.contains(m)).collect();
    assert!(missing.is_empty(), "add to tests/api_postgres/main.rs: {missing:?}");
}
