//! The one error type of the crate.

use std::path::PathBuf;

/// Everything that can go wrong in `dlrm`: bad configurations, untrusted model files, shape
/// mismatches between a model and its data, and failures of the tensor library.
#[derive(Debug, thiserror::Error)]
pub enum DlrmError {
    /// A model or training configuration that is inconsistent or out of bounds (what is wrong).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A model, weights or settings file that does not parse or does not fit its description.
    #[error("{path}: {reason}")]
    InvalidFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Data or weights whose sizes do not match the model (which sizes).
    #[error("data does not fit the model: {0}")]
    Shape(String),
    /// From the tensor library (candle) used for training and float inference.
    #[error("tensor library: {0}")]
    Tensor(#[from] candle_core::Error),
    /// From reading a dataset.
    #[error(transparent)]
    Dataset(#[from] datasets::DatasetError),
}

impl DlrmError {
    pub(crate) fn config(reason: impl Into<String>) -> Self {
        Self::Config(reason.into())
    }

    pub(crate) fn shape(reason: impl Into<String>) -> Self {
        Self::Shape(reason.into())
    }

    pub(crate) fn file(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::InvalidFile {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result type of the crate.
pub type Result<T, E = DlrmError> = std::result::Result<T, E>;
