//! The parts of HTTP messages the routes share: the key header, the binary content type, bodies
//! read under a size limit and a timeout, and binary answers.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use infer::StageTimings;

use crate::error::ApiError;

/// The header that names the registered server key an inference call runs with.
pub const KEY_HEADER: &str = "x-key-id";
/// Content type of keys, requests and responses (the bytes formats of `fhe` and `infer`).
pub const BINARY: &str = "application/octet-stream";

/// Reads a body of at most `limit` bytes within `timeout`.
pub(crate) async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    timeout: Duration,
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
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!("the body did not arrive within {} s", timeout.as_secs_f64()),
        )),
        Ok(Err(error)) => {
            let error = error.into_inner();
            if error.is::<http_body_util::LengthLimitError>() {
                Err(too_large(format!("more than {limit}")))
            } else {
                Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_body",
                    format!("reading the body: {error}"),
                ))
            }
        }
        Ok(Ok(bytes)) => Ok(bytes),
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
