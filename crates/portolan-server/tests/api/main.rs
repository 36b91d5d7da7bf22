//! HTTP-level integration tests: a real server on 127.0.0.1:0 over a fresh database per test.
//! One test binary (`tests/api/`), one module per resource.

mod helpers;

mod auth;
mod smoke;
