use std::path::PathBuf;

/// Everything that can go wrong reading raw data or a prepared dataset.
///
/// Errors about input content name the file and the 1-based line.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Malformed {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("{path}: no data rows")]
    Empty { path: PathBuf },
    #[error("{path}: already exists (choose another --out or remove it)")]
    OutputExists { path: PathBuf },
    #[error("{path}: {message}")]
    InvalidDataset { path: PathBuf, message: String },
    #[error("invalid option: {0}")]
    InvalidOption(String),
    #[error("{path}: parquet: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: polars::prelude::PolarsError,
    },
}

impl DatasetError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn parquet(path: impl Into<PathBuf>, source: polars::prelude::PolarsError) -> Self {
        Self::Parquet {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::InvalidDataset {
            path: path.into(),
            message: message.into(),
        }
    }
}
