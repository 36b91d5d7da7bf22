#![doc = include_str!("../README.md")]

pub mod auth;
pub mod catalog;
pub mod error;
pub mod extract;
pub mod handlers;
pub mod jobs;
mod middleware;
pub mod ratelimit;
pub mod router;
pub mod secrets;
pub mod state;
pub mod web;

#[doc(hidden)]
pub mod fuzzing;

use std::future::Future;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub use state::{ApiConfig, AppState};

/// Port's request body limit.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// The whole application: API routes, health checks, OpenAPI and docs, and the middleware
/// that gives every response a trace id and every error Port's JSON envelope.
pub fn app(state: AppState) -> Router {
    let swagger = utoipa_swagger_ui::SwaggerUi::new("/docs").config(utoipa_swagger_ui::Config::from("/openapi.json"));
    Router::new()
        .merge(router::api_routes())
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi))
        .fallback(middleware::not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::rate_limit))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state.clone())
        .merge(swagger)
        .merge(web::router(state.clone()))
        .layer(axum::middleware::from_fn(middleware::json_errors))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(middleware::panic_response))
        .layer(axum::middleware::from_fn(middleware::trace_id))
}

async fn healthz() -> Json<Value> {
    Json(json!({"ok": true}))
}

async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, error::ApiError> {
    state.store.ping().await?;
    // jq workers: processes live / evaluating / killed at a deadline / crashed, and (thread mode)
    // threads abandoned at a deadline that still run.
    let jq = state.jq.process_stats();
    Ok(Json(json!({"ok": true, "jq": {
        "workers": jq.live, "busy": jq.busy, "killed": jq.killed, "crashed": jq.crashed,
        "runawayThreads": state.jq.runaway_workers(),
    }})))
}

async fn openapi() -> Json<Value> {
    Json(router::openapi())
}

/// Serve `app` on `listener` until `shutdown` completes, then finish in-flight requests.
///
/// This node's job workers ([`ApiConfig::job_workers`]) run alongside: they start with the
/// server and, when `shutdown` completes, stop and release the jobs they hold to the queue (for
/// any node to take at once); `serve` returns once both requests and workers are done.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let workers = jobs::Workers::start(&state);
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        let _ = stopping_tx.send(());
    };
    let stop_workers = tokio::spawn(async move {
        // Either shutdown began, or the server ended on its own (the sender was dropped).
        let _ = stopping_rx.await;
        workers.shutdown().await;
    });
    let served = axum::serve(listener, app(state).into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await;
    let _ = stop_workers.await;
    served
}
