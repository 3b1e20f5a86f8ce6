//! The parts of HTTP messages the routes share: the key header, the binary content type, bodies
//! read under a size limit, a timeout and a minimum rate, and binary answers.

use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use infer::StageTimings;

use crate::config::Limits;
use crate::error::ApiError;

/// The header that names the registered server key an inference call runs with.
pub const KEY_HEADER: &str = "x-key-id";
/// Content type of keys, requests and responses (the bytes formats of `fhe` and `infer`).
pub const BINARY: &str = "application/octet-stream";

/// Reads a body of at most `limit` bytes, within the body timeout and at the minimum rate of
/// `limits`: after the grace period, the bytes received must keep up with `min_body_rate`, so a
/// client that trickles its body is cut off early instead of holding its connection and its
/// tenant's call place for the whole timeout.
pub(crate) async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    limits: &Limits,
) -> Result<Bytes, ApiError> {
    let too_large = |size: String| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("body of {size} bytes, the limit is {limit}"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = declared.filter(|&l| l > limit as u64) {
        return Err(too_large(length.to_string()));
    }
    let started = Instant::now();
    let timeout_at = started + limits.body_timeout;
    // Filled as the bytes arrive: a declared length is only a claim.
    let mut received = Vec::new();
    let mut body = http_body_util::Limited::new(body, limit);
    loop {
        let due = due_by(started, received.len(), limits).min(timeout_at);
        let frame = match tokio::time::timeout_at(due.into(), body.frame()).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return Ok(Bytes::from(received)),
            Err(_) if due == timeout_at => {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    format!(
                        "the body did not arrive within {} s",
                        limits.body_timeout.as_secs_f64()
                    ),
                ));
            }
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_too_slow",
                    format!(
                        "the body arrived slower than {} bytes/s ({} bytes in {:.1} s)",
                        limits.min_body_rate,
                        received.len(),
                        started.elapsed().as_secs_f64()
                    ),
                ));
            }
        };
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    received.extend_from_slice(&data);
                }
            }
            Err(error) if error.is::<http_body_util::LengthLimitError>() => {
                return Err(too_large(format!("more than {limit}")));
            }
            Err(error) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_body",
                    format!("reading the body: {error}"),
                ));
            }
        }
    }
}

/// When the bytes after the first `received` must have started arriving: the grace period,
/// plus the time `received` bytes take at the minimum rate.
fn due_by(started: Instant, received: usize, limits: &Limits) -> Instant {
    match limits.min_body_rate {
        0 => started + limits.body_timeout,
        rate => {
            started
                + limits.body_rate_grace
                + Duration::from_secs_f64(received as f64 / rate as f64)
        }
    }
}

/// A binary answer, with the server's stages in a `server-timing` header when given.
pub(crate) fn binary(bytes: Vec<u8>, timings: Option<&StageTimings>) -> Response {
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(BINARY));
    if let Some(t) = timings {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let value = t
            .stages()
            .iter()
            .map(|(name, d)| format!("{name};dur={:.3}", ms(*d)))
            .collect::<Vec<_>>()
            .join(", ");
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert("server-timing", value);
        }
    }
    response
}
