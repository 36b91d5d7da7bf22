#![doc = include_str!("../README.md")]

pub mod access;
pub mod auth;
pub mod computed;
pub mod error;
pub mod extract;
pub mod handlers;
pub mod jobs;
pub mod metrics;
mod middleware;
pub mod ops;
pub mod outbound;
mod query_de;
pub mod ratelimit;
pub mod router;
pub mod secrets;
pub mod smtp;
pub mod sso;
pub mod state;
pub mod tls;
pub mod web;

#[doc(hidden)]
pub mod fuzzing;

use std::future::Future;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

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
        .route("/metrics", get(metrics::scrape))
        .fallback(middleware::not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::rate_limit))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state.clone())
        .merge(swagger)
        .merge(web::router(state.clone()))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::record))
        .layer(axum::middleware::from_fn(middleware::json_errors))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(middleware::panic_response))
        .layer(axum::middleware::from_fn(middleware::trace_id))
}

async fn healthz() -> Json<Value> {
    Json(json!({"ok": true}))
}

/// How long `/readyz` waits for a read connection and the database's answer before it reports
/// the node not ready.
pub const READY_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Readiness: 200 when a read connection can be had and the database answers within
/// [`READY_WAIT`]; otherwise 503 with the reason (a starved pool — every connection busy — or
/// an unreachable database), so a load balancer sends traffic elsewhere. `/healthz` stays a
/// liveness probe: it answers as long as the process serves HTTP.
async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, error::ApiError> {
    if let Err(e) = state.store.ping(READY_WAIT).await {
        let why = match e {
            portolan_store::StoreError::Unavailable(why) => why,
            other => other.to_string(),
        };
        return Err(error::ApiError::new(error::ErrorCode::NotReady, format!("not ready: {why}")));
    }
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

/// Serve `app` on `listener` until `shutdown` completes, then finish in-flight requests for at
/// most [`ApiConfig::shutdown_grace`]; requests still running then are dropped (a dropped
/// search is interrupted in the database) and `serve` returns anyway, so a stuck request cannot
/// keep the process alive.
///
/// This node's job workers ([`ApiConfig::job_workers`]) run alongside: they start with the
/// server and, when `shutdown` completes, stop and release the jobs they hold to the queue (for
/// any node to take at once); `serve` returns once both requests and workers are done, or when
/// the grace period is over.
pub async fn serve<L>(
    listener: L,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener<Addr = std::net::SocketAddr>,
{
    let grace = state.config.shutdown_grace;
    let workers = jobs::Workers::start(&state);
    // `true` once shutdown began (or the server ended on its own).
    let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
    let stopping_tx = std::sync::Arc::new(stopping_tx);
    let signal = stopping_tx.clone();
    let shutdown = async move {
        shutdown.await;
        let _ = signal.send(true);
    };
    let mut workers_rx = stopping_rx.clone();
    let stop_workers = tokio::spawn(async move {
        let _ = workers_rx.wait_for(|stopping| *stopping).await;
        workers.shutdown().await;
    });
    // `tap_io` makes any listener's address the handlers' `ConnectInfo` (TCP and TLS alike).
    let listener = axum::serve::ListenerExt::tap_io(listener, |_| {});
    let server = axum::serve(listener, app(state).into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .into_future();
    let mut deadline_rx = stopping_rx;
    let deadline = async move {
        let _ = deadline_rx.wait_for(|stopping| *stopping).await;
        tokio::time::sleep(grace).await;
    };
    let served = tokio::select! {
        served = server => served,
        () = deadline => {
            tracing::warn!(
                grace_seconds = grace.as_secs_f64(),
                "requests still running when the shutdown grace period ended: dropping them"
            );
            Ok(())
        }
    };
    // The server ended (on its own, or its grace ran out): stop the workers too, within what
    // is left of the grace period (a worker stuck in a job must not hold the process either).
    let _ = stopping_tx.send(true);
    if tokio::time::timeout(grace.max(std::time::Duration::from_secs(1)), stop_workers).await.is_err() {
        tracing::warn!("job workers did not stop within the shutdown grace period; their leases will expire");
    }
    served
}
