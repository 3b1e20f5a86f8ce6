//! The probes and the metrics: `/healthz`, `/readyz` and `/metrics` (Prometheus text format).

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

/// `GET /healthz`: the process serves.
pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: ready until a shutdown begins.
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    if state.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the service is shutting down",
        )
        .into_response()
    }
}

/// `GET /metrics`: the service's metrics and the key counts.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let registered = state
        .store
        .totals()
        .map_or(f64::NAN, |(keys, _)| keys as f64);
    let gauges = [
        (
            "dlrmhe_registered_keys",
            "Server keys in the key store.",
            registered,
        ),
        (
            "dlrmhe_loaded_keys",
            "Decompressed server keys held in memory.",
            state.loaded_keys() as f64,
        ),
    ];
    let mut response = state.metrics.render(&gauges).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}
