//! The one error type of the crate.

use std::path::PathBuf;

/// Everything that can go wrong in `dlrm`: bad configurations, untrusted model files, shape
/// mismatches between a model and its data, and failures of the tensor library.
#[derive(Debug, thiserror::Error)]
pub enum DlrmError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("{path}: {reason}")]
    InvalidFile { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("data does not fit the model: {0}")]
    Shape(String),
    #[error("tensor library: {0}")]
    Tensor(#[from] candle_core::Error),
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
