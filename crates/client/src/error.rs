//! The one error type of the crate.

use std::path::PathBuf;

/// Everything that can go wrong on the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Fhe(#[from] fhe::FheError),
    #[error(transparent)]
    Infer(#[from] infer::InferError),
    #[error(transparent)]
    Dataset(#[from] datasets::DatasetError),
    /// A raw row that does not parse (the parser's message).
    #[error("bad row: {0}")]
    Row(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A key directory that is missing a file, holds a foreign file, or would be overwritten.
    #[error("{path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    /// A call to a service that failed: its HTTP status (0 when no answer came), the service's
    /// error code and message.
    #[error("service error {status} {code}: {message}")]
    Service {
        status: u16,
        code: String,
        message: String,
    },
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, ClientError>;
