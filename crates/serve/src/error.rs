//! The crate's error type, and the JSON error every failed HTTP call answers with.

use std::path::{Path, PathBuf};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Everything that can go wrong starting or running the service.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// From the executor (a model, a request or a response that does not fit).
    #[error(transparent)]
    Infer(#[from] infer::InferError),
    /// From the FHE kernels (keys, ciphertexts, parameter sets, encodings).
    #[error(transparent)]
    Fhe(#[from] fhe::FheError),
    /// A stored key whose bytes no longer hash to the id it is stored under (disk corruption
    /// or tampering): it is never served.
    #[error("{path}: the stored key does not match its id")]
    CorruptKey {
        /// The stored key file.
        path: PathBuf,
    },
    /// A tenants file that cannot be used (format, version, a bad or duplicate entry).
    #[error("{path}: {reason}")]
    Tenants {
        /// The tenants file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A TLS certificate or key that cannot be used (missing, not PEM, not matching).
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// A key id that is not 32 lowercase hex digits.
    #[error("`{0}` is not a key id (32 lowercase hex digits)")]
    BadKeyId(String),
    /// A configuration that cannot work (no models, two models with one name, zero limits).
    #[error("{0}")]
    Config(String),
    /// Binding the address, building the runtime or the thread pool.
    #[error("cannot start the service: {0}")]
    Start(String),
}

impl ServeError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        ServeError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, ServeError>;

/// A failed call: its status, a stable machine-readable code and a message for people. Sent as
/// `{"error": {"status": 404, "code": "unknown_key", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// The stable machine-readable code (`unknown_key`, `bad_request`, ...).
    pub code: &'static str,
    /// The explanation for people.
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status: status.as_u16(),
            code,
            message: message.into(),
        }
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl From<ServeError> for ApiError {
    fn from(error: ServeError) -> Self {
        match error {
            ServeError::BadKeyId(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "bad_key_id", error.to_string())
            }
            // The server's path stays in its own log, not in the answer.
            ServeError::CorruptKey { .. } => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "stored_key_corrupt",
                "the stored key does not match its id: register it again",
            ),
            other => ApiError::internal(other.to_string()),
        }
    }
}

/// What a client sent wrong, as the executor reports it.
impl From<infer::InferError> for ApiError {
    fn from(error: infer::InferError) -> Self {
        use infer::InferError;
        let (status, code) = match &error {
            InferError::ModelMismatch { .. } => (StatusCode::BAD_REQUEST, "wrong_model"),
            InferError::Fhe(fhe::FheError::ParameterSetMismatch { .. }) => {
                (StatusCode::BAD_REQUEST, "wrong_parameter_set")
            }
            InferError::TooManyCandidates { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "too_many_candidates")
            }
            _ => (StatusCode::BAD_REQUEST, "bad_request"),
        };
        ApiError::new(status, code, error.to_string())
    }
}

/// The code of a failed call, kept on its response for the log line.
#[derive(Clone, Copy)]
pub(crate) struct ErrorCode(pub(crate) &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body<'a> {
            error: &'a ApiError,
        }
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(Body { error: &self })).into_response();
        response.extensions_mut().insert(ErrorCode(self.code));
        // Saturation is temporary: tell clients when to try again.
        if matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}
