//! Watching every call: its latency and status in the metrics, under its route template, and
//! one log line (a `tracing` event inside a `request` span) with a request id, the method, the
//! route template, the status, the first digits of the key id, the model and the stage timings.
//! The span's fields are only computed when a subscriber wants them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use infer::StageTimings;
use tracing::field::Empty;
use tracing::{Instrument, Span};

use crate::error::ErrorCode;
use crate::metrics::ServiceMetrics;
use crate::store::KeyId;

/// The route of calls that match none.
const UNMATCHED: &str = "unmatched";

/// Digits of a key id written to logs: enough to tell keys apart, never the whole id.
const KEY_ID_PREFIX: usize = 8;

/// The log fields of the stage timings (milliseconds), in [`StageTimings::NAMES`] order.
const STAGE_FIELDS: [&str; 6] = [
    "decode_ms",
    "bottom_ms",
    "lookup_ms",
    "interaction_ms",
    "top_ms",
    "encode_ms",
];

/// Ids of the calls of this process, in arrival order.
static NEXT_REQUEST_ID: AtomicU64 = AtomicU64::new(1);

/// Records every routed call's latency and status under its route template.
pub(crate) async fn track(
    State(metrics): State<Arc<ServiceMetrics>>,
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let route = matched.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
    let endpoint = format!("{} {route}", method_label(request.method()));
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.record_call(&endpoint, response.status().as_u16(), started.elapsed());
    response
}

/// The method as a metric label: the ones the API serves, every other (any client can make up
/// a method) as `other`, so the metric series stay a fixed set.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        _ => "other",
    }
}

/// Runs every call inside a `request` span and ends it with one event: its status, latency and
/// error code. The routes add the model, the key and the stages with the `note_` functions.
pub(crate) async fn log_call(
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let span = tracing::info_span!(
        "request",
        id = NEXT_REQUEST_ID.fetch_add(1, Ordering::Relaxed),
        method = %request.method(),
        route = matched.as_ref().map_or(UNMATCHED, MatchedPath::as_str),
        model = Empty,
        key = Empty,
        items = Empty,
        candidates = Empty,
        decode_ms = Empty,
        bottom_ms = Empty,
        lookup_ms = Empty,
        interaction_ms = Empty,
        top_ms = Empty,
        encode_ms = Empty,
    );
    if span.is_disabled() {
        return next.run(request).await;
    }
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let latency_ms = milliseconds(started.elapsed());
    let error = response.extensions().get::<ErrorCode>().map(|code| code.0);
    span.in_scope(|| {
        if response.status().is_server_error() {
            tracing::warn!(status, latency_ms, error, "answered");
        } else {
            tracing::info!(status, latency_ms, error, "answered");
        }
    });
    response
}

/// Names the call's model in its log line.
pub(crate) fn note_model(name: &str) {
    Span::current().record("model", name);
}

/// Names the call's key in its log line by the first digits of its id.
pub(crate) fn note_key(id: &KeyId) {
    Span::current().record("key", &id.as_str()[..KEY_ID_PREFIX]);
}

/// Adds the call's request count and server stages to its log line: for a batch, each stage
/// summed over its requests.
pub(crate) fn note_stages<'a>(timings: impl IntoIterator<Item = &'a StageTimings>) {
    let span = Span::current();
    if span.is_disabled() {
        return;
    }
    let mut items = 0_u64;
    let mut sums = [Duration::ZERO; STAGE_FIELDS.len()];
    for timings in timings {
        items += 1;
        for (sum, (_, elapsed)) in sums.iter_mut().zip(timings.stages()) {
            *sum += elapsed;
        }
    }
    span.record("items", items);
    for (field, sum) in STAGE_FIELDS.iter().zip(sums) {
        span.record(*field, milliseconds(sum));
    }
}

/// Adds a ranked request's candidate count to its log line.
pub(crate) fn note_candidates(candidates: usize) {
    Span::current().record("candidates", candidates as u64);
}

/// Milliseconds to the microsecond, so that lines show `0.014`, not `0.014202000000000001`.
fn milliseconds(elapsed: Duration) -> f64 {
    elapsed.as_micros() as f64 / 1e3
}
