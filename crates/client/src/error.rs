//! The one error type of the crate.

use std::path::PathBuf;

/// Everything that can go wrong on the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// From the FHE kernels (keys, ciphertexts, parameter sets, encodings).
    #[error(transparent)]
    Fhe(#[from] fhe::FheError),
    /// From the executor's formats (a model interface, a request or a response that does not fit).
    #[error(transparent)]
    Infer(#[from] infer::InferError),
    /// From reading a dataset (its vocabularies, transforms or rows).
    #[error(transparent)]
    Dataset(#[from] datasets::DatasetError),
    /// A raw row that does not parse (the parser's message).
    #[error("bad row: {0}")]
    Row(String),
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A key directory that is missing a file, holds a foreign file, or would be overwritten.
    #[error("{path}: {reason}")]
    KeyFile {
        /// The key directory or file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A CA certificate given for `https://` that cannot be used (not PEM, no certificate).
    #[error("CA certificate: {0}")]
    BadCa(String),
    /// A call to a service that failed: its HTTP status (0 when no answer came), the service's
    /// error code and message.
    #[error("service error {status} {code}: {message}")]
    Service {
        /// The HTTP status, 0 when no answer came.
        status: u16,
        /// The service's machine-readable error code.
        code: String,
        /// The service's explanation.
        message: String,
    },
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, ClientError>;
