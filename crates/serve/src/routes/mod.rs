//! The HTTP API (documented in `docs/api.md`): which handler answers each route, and the
//! middleware every call passes through.

mod inference;
mod keys;
pub(crate) mod message;
mod models;
mod probes;
mod rank;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{delete, get, post};

use crate::auth::authenticate;
use crate::error::ApiError;
use crate::observe::{log_call, track};
use crate::state::AppState;

/// Every route of the service, with metrics per route and a log line per call.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/keys", post(keys::register_key).get(keys::list_keys))
        .route("/v1/keys/{id}", delete(keys::delete_key).get(keys::get_key))
        .route("/v1/models", get(models::list_models))
        .route("/v1/models/{name}", get(models::describe_model))
        .route("/v1/models/{name}/infer", post(inference::infer_one))
        .route(
            "/v1/models/{name}/infer-batch",
            post(inference::infer_batch),
        )
        .route("/v1/models/{name}/rank", post(rank::rank))
        // Every `/v1` route above, not the probes below.
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .route("/healthz", get(probes::healthz))
        .route("/readyz", get(probes::readyz))
        .route("/metrics", get(probes::metrics))
        .route_layer(middleware::from_fn_with_state(state.metrics.clone(), track))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        // Bodies are read by the handlers, under per-endpoint limits and a timeout.
        .layer(DefaultBodyLimit::disable())
        // Outermost, so that unmatched calls are logged too.
        .layer(middleware::from_fn(log_call))
        .with_state(state)
}
