//! The web UI's HTTP tests (`tests/web/`) on PostgreSQL: each test on a fresh database of the
//! server named by `PORTOLAN_TEST_DATABASE_URL`; without it every test returns at once and
//! [`postgresql_half`] says so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub const BACKEND: app::Backend = app::Backend::Postgres;

#[path = "../api/pg.rs"]
mod pg;

#[path = "../web/actions.rs"]
mod actions;
#[path = "../web/app.rs"]
mod app;
#[path = "../web/dashboards.rs"]
mod dashboards;
#[path = "../web/entity_form.rs"]
mod entity_form;
#[path = "../web/errors.rs"]
mod errors;
#[path = "../web/injection.rs"]
mod injection;
#[path = "../web/pages.rs"]
mod pages;
#[path = "../web/permissions.rs"]
mod permissions;
#[path = "../web/sessions.rs"]
mod sessions;
#[path = "../web/sources.rs"]
mod sources;
#[path = "../web/sso.rs"]
mod sso;
#[path = "../web/teams.rs"]
mod teams;
#[path = "../web/views.rs"]
mod views;
#[path = "../web/webhooks.rs"]
mod webhooks;

#[tokio::test]
async fn postgresql_half() {
    pg::postgresql_half("web UI tests, tests/web_postgres").await;
}
