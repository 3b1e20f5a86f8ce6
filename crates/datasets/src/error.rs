//! The one error type of the crate.

use std::path::PathBuf;

/// Everything that can go wrong reading raw data or a prepared dataset.
///
/// Errors about input content name the file and the 1-based line.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A line of raw input does not parse (field count, a value) or does not map.
    #[error("{path}:{line}: {message}")]
    Malformed {
        /// The input file.
        path: PathBuf,
        /// The 1-based line number.
        line: u64,
        /// What is wrong with the line.
        message: String,
    },
    /// The input holds no data rows.
    #[error("{path}: no data rows")]
    Empty {
        /// The input file.
        path: PathBuf,
    },
    /// The output directory of `prepare` exists already (nothing is overwritten).
    #[error("{path}: already exists (choose another --out or remove it)")]
    OutputExists {
        /// The output directory.
        path: PathBuf,
    },
    /// A file is not what it should be: a prepared dataset's manifest, vocabulary or split is
    /// inconsistent or of an unknown kind, or an input is not a data file (a directory, a file
    /// that changed while it was read).
    #[error("{path}: {message}")]
    InvalidDataset {
        /// The file at fault.
        path: PathBuf,
        /// What is inconsistent.
        message: String,
    },
    /// An option is out of its range (or an output path names no directory).
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// A Parquet file could not be read or written.
    #[error("{path}: parquet: {source}")]
    Parquet {
        /// The Parquet file.
        path: PathBuf,
        /// Polars' error.
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
