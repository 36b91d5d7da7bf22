//! HTTP-level integration tests: a real server on 127.0.0.1:0 over a fresh database per test.
//! One test binary (`tests/api/`), one module per resource.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod audit;
mod auth;
mod blueprint;
mod blueprint_rename;
mod entity;
mod entity_bulk;
mod malformed;
mod ratelimit;
mod search;
mod search_paging;
mod smoke;
mod tenancy;
mod validation;
