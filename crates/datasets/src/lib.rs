//! Dataset loaders for dlrm-he: the UCI heart-disease data and Criteo click logs (Kaggle and
//! Terabyte TSV, plain, `.gz` or `.zst`, streamed so any size fits in memory), vocabularies,
//! deterministic splits, a Criteo-shaped synthetic generator, and the prepared on-disk form
//! (Parquet splits with zstd, vocabularies and a JSON manifest) that training and serving read.
//!
//! It must not know about models or encryption: it turns raw files into numbered features and
//! back (raw categorical value to id), nothing more.
//!
//! The pieces, in the order data flows through them:
//! - [`synthetic`]: Criteo-shaped raw files generated from a known hidden model.
//! - [`criteo`], [`uci`]: raw files (read in parallel chunks, plain, `.gz` or `.zst`) parsed,
//!   given [`Vocabulary`]s and [`SplitMethod`] splits, and written by `prepare` as a prepared
//!   dataset described by its [`Manifest`].
//! - [`PreparedDataset`]: a prepared directory read back, its splits as [`SplitData`].
//! - [`RowMapper`]: raw lines of a client's file ([`RowMapper::read_rows`]) mapped to model
//!   inputs exactly as `prepare` mapped them.
//! - [`read_encoded_rows`]: rows already in a model's input form, for models without a dataset.
//! - [`DatasetError`]: everything that can go wrong, naming the file and line.
//!
//! `shared` (behind the `testing` feature) tells tests where the third-party data shared with
//! the project is.
//!
//! ```no_run
//! use datasets::{criteo, PreparedDataset};
//! let options = criteo::CriteoOptions::default();
//! let summary = criteo::prepare(
//!     "train.tsv".as_ref(), "prepared".as_ref(), &options, &datasets::NoProgress)?;
//! println!("{summary}");
//! let dataset = PreparedDataset::open("prepared".as_ref())?;
//! let train = dataset.load_split("train")?;
//! assert_eq!(train.dense_width(), 13);
//! # Ok::<(), datasets::DatasetError>(())
//! ```

pub mod criteo;
mod encoded;
mod error;
mod input;
mod manifest;
mod output;
mod prepared;
mod progress;
mod rows;
mod split;

#[cfg(feature = "testing")]
pub mod shared;
pub mod synthetic;
pub mod uci;
mod vocab;

pub use encoded::{EncodedRows, MAX_ENCODED_BYTES, read_encoded_rows};
pub use error::DatasetError;
pub use input::{InputFormat, SourceInfo};
pub use manifest::PrepareSummary;
pub use manifest::{
    CategoricalColumn, DenseColumn, DenseTransform, MANIFEST_FILE, MANIFEST_VERSION, Manifest,
    SplitInfo,
};
pub use prepared::{PreparedDataset, SplitData};
pub use progress::{NoProgress, Progress};
pub use rows::{MappedRow, RowMapper};
pub use split::SplitMethod;
pub use vocab::{RESERVED_ID, Vocabulary};
