//! HTTP-level tests of the web UI: a real server on 127.0.0.1:0 over a fresh database per
//! test, driven with plain HTTP (cookies, forms, CSRF tokens handled by hand) and a clock the
//! test moves. This binary runs them on SQLite; `tests/web_postgres/` compiles the same modules
//! on PostgreSQL (when `PORTOLAN_TEST_DATABASE_URL` is set).

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub const BACKEND: app::Backend = app::Backend::Sqlite;

#[path = "../api/pg.rs"]
mod pg;

mod actions;
mod app;
mod dashboards;
mod entity_form;
mod errors;
mod frames;
mod injection;
mod pages;
mod permissions;
mod saml;
mod sessions;
mod sources;
mod sso;
mod teams;
mod views;
mod webhooks;
