//! HTTP-level integration tests: a real server on 127.0.0.1:0 over a fresh database per test.
//! One module per resource. This binary (`tests/api/`) runs them on SQLite (in memory);
//! `tests/api_postgres/` compiles the same modules and runs them on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The backend this binary's tests run on (read by `helpers::TestApp::spawn`).
pub const BACKEND: helpers::Backend = helpers::Backend::Sqlite;

mod helpers;
mod pg;

mod action_policies;
mod actions;
mod aggregation;
mod approvals;
mod audit;
mod auth;
mod automations;
mod blueprint;
mod blueprint_rename;
mod changelog;
mod credentials;
mod entity;
mod entity_bulk;
mod git_invocations;
mod integration;
mod limits;
mod malformed;
mod metrics;
mod ocean_latest;
mod pages;
mod people;
mod permissions;
mod ratelimit;
mod run_timeouts;
mod scorecards;
mod search;
mod search_paging;
mod smoke;
mod system_blueprints;
mod tenancy;
mod validation;
mod webhook;
