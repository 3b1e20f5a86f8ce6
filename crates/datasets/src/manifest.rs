//! The JSON manifest that describes a prepared dataset directory.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{DatasetError, SourceInfo};

/// File name of the manifest inside a prepared dataset directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Version of the manifest format this crate writes and reads.
pub const MANIFEST_VERSION: u32 = 1;
/// A manifest is small; anything larger is not one.
const MAX_MANIFEST_BYTES: u64 = 16 << 20;

/// How a dense column was derived from the raw value (serving must apply the same).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DenseTransform {
    /// `ln(1 + max(x, 0))`; a missing value becomes 0.
    Log1p,
    /// `(x - mean) / std` with train-split statistics; a missing value becomes 0 (the mean).
    Standardize {
        /// Mean of the raw column over the train split.
        mean: f64,
        /// Standard deviation of the raw column over the train split.
        std: f64,
    },
    /// 1 where the raw value of column `of` was missing, else 0.
    MissingFlag {
        /// Name of the raw column whose missing values are flagged.
        of: String,
    },
}

impl DenseTransform {
    /// Applies the transform to a raw value (`None` = missing).
    ///
    /// ```
    /// use datasets::DenseTransform;
    /// assert_eq!(DenseTransform::Log1p.apply(Some(-2.0)), 0.0);
    /// assert!((DenseTransform::Log1p.apply(Some(1.0)) - 2f32.ln()).abs() < 1e-6);
    /// let z = DenseTransform::Standardize { mean: 10.0, std: 2.0 };
    /// assert_eq!(z.apply(Some(14.0)), 2.0);
    /// assert_eq!(z.apply(None), 0.0);
    /// ```
    pub fn apply(&self, raw: Option<f64>) -> f32 {
        match (self, raw) {
            (Self::Log1p, Some(x)) => (x.max(0.0) as f32).ln_1p(),
            (Self::Standardize { mean, std }, Some(x)) => ((x - mean) / std) as f32,
            (Self::MissingFlag { .. }, raw) => f32::from(u8::from(raw.is_none())),
            (_, None) => 0.0,
        }
    }
}

/// One dense feature column of a prepared dataset and how it is computed from the raw data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DenseColumn {
    /// The column's name in the split files.
    pub name: String,
    /// How the value is derived from the raw value.
    pub transform: DenseTransform,
    /// Rows of the source where the raw value was missing.
    pub missing_rows: u64,
}

impl DenseColumn {
    /// The raw column the value is computed from: the flagged column for a
    /// [`DenseTransform::MissingFlag`], else the column of the same name.
    pub(crate) fn source(&self) -> &str {
        match &self.transform {
            DenseTransform::MissingFlag { of } => of,
            _ => &self.name,
        }
    }
}

/// One categorical feature column of a prepared dataset: its embedding table and vocabulary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CategoricalColumn {
    /// The column's name in the split files.
    pub name: String,
    /// Embedding rows needed: kept values plus the reserved id 0.
    pub table_size: usize,
    /// Path of the vocabulary file, relative to the dataset directory.
    pub vocabulary: String,
    /// Rows of the source where the value was missing.
    pub missing_rows: u64,
    /// Distinct values in the source, before `min-count` and the table-size cap.
    pub distinct_values: u64,
}

/// One split of a prepared dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitInfo {
    /// `train`, `val` or `test`.
    pub name: String,
    /// Path of the Parquet file, relative to the dataset directory.
    pub file: String,
    /// Rows in the split.
    pub rows: u64,
    /// Rows of the split with label 1.
    pub positives: u64,
    /// `positives / rows`.
    pub label_rate: f64,
}

/// `positives / rows`, 0 for no rows.
pub(crate) fn label_rate(positives: u64, rows: u64) -> f64 {
    positives as f64 / rows.max(1) as f64
}

/// Everything a consumer needs to read a prepared dataset and to map raw rows the same way.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Version of the manifest format ([`MANIFEST_VERSION`] when written by this build).
    pub format_version: u32,
    /// `criteo` or `uci-heart`.
    pub dataset: String,
    /// The program and version that prepared the dataset.
    pub created_by: String,
    /// Name of the label column in the split files.
    pub label: String,
    /// The dense feature columns, in model input order.
    pub dense: Vec<DenseColumn>,
    /// The categorical columns, in model input order (one embedding table each).
    pub categorical: Vec<CategoricalColumn>,
    /// The split files.
    pub splits: Vec<SplitInfo>,
    /// Data rows kept, all splits together.
    pub rows: u64,
    /// Rows with label 1, all splits together.
    pub positives: u64,
    /// `positives / rows`.
    pub label_rate: f64,
    /// Malformed rows skipped with `--skip-bad-rows`.
    pub skipped_rows: u64,
    /// The raw file the dataset was prepared from.
    pub source: SourceInfo,
    /// The preparation options, for reproducibility.
    pub options: serde_json::Value,
}

impl Manifest {
    /// Embedding rows of every categorical column, in column order.
    pub fn table_sizes(&self) -> Vec<usize> {
        self.categorical.iter().map(|c| c.table_size).collect()
    }

    /// The split named `name` (`train`, `val` or `test`), if the dataset has it.
    pub fn split(&self, name: &str) -> Option<&SplitInfo> {
        self.splits.iter().find(|s| s.name == name)
    }

    pub(crate) fn write(&self, dir: &Path) -> Result<(), DatasetError> {
        let path = dir.join(MANIFEST_FILE);
        let text = serde_json::to_string_pretty(self).expect("a manifest always serialises");
        std::fs::write(&path, text + "\n").map_err(|e| DatasetError::io(&path, e))
    }

    /// Reads and checks the manifest of a prepared dataset directory.
    pub fn read(dir: &Path) -> Result<Self, DatasetError> {
        let path = dir.join(MANIFEST_FILE);
        let size = std::fs::metadata(&path)
            .map_err(|e| DatasetError::io(&path, e))?
            .len();
        if size > MAX_MANIFEST_BYTES {
            return Err(DatasetError::invalid(&path, "manifest larger than 16 MiB"));
        }
        let text = std::fs::read_to_string(&path).map_err(|e| DatasetError::io(&path, e))?;
        let manifest: Manifest = serde_json::from_str(&text)
            .map_err(|e| DatasetError::invalid(&path, format!("not a dataset manifest: {e}")))?;
        if manifest.format_version != MANIFEST_VERSION {
            return Err(DatasetError::invalid(
                &path,
                format!(
                    "manifest format version {} (this build reads {MANIFEST_VERSION})",
                    manifest.format_version
                ),
            ));
        }
        Ok(manifest)
    }
}

/// What `prepare` reports when it finishes.
#[derive(Clone, Debug)]
pub struct PrepareSummary {
    /// The manifest written into the prepared directory.
    pub manifest: Manifest,
    /// Wall-clock time of the preparation.
    pub elapsed: Duration,
}

impl fmt::Display for PrepareSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.manifest;
        let seconds = self.elapsed.as_secs_f64();
        writeln!(
            f,
            "{} rows ({:.1}% positive) in {seconds:.2} s ({:.0} rows/s)",
            m.rows,
            100.0 * m.label_rate,
            (m.rows + m.skipped_rows) as f64 / seconds.max(1e-9)
        )?;
        if m.skipped_rows > 0 {
            writeln!(f, "skipped {} malformed rows", m.skipped_rows)?;
        }
        for split in &m.splits {
            writeln!(
                f,
                "  {:<5} {:>10} rows  {:>5.1}% positive",
                split.name,
                split.rows,
                100.0 * split.label_rate
            )?;
        }
        write!(f, "tables (vocabulary size incl. reserved id 0):")?;
        for (i, column) in m.categorical.iter().enumerate() {
            let sep = if i % 6 == 0 { "\n  " } else { "  " };
            write!(f, "{sep}{}={}", column.name, column.table_size)?;
        }
        Ok(())
    }
}
