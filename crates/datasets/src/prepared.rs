//! Reading a prepared dataset directory back.

use std::fs::File;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::{DatasetError, Manifest, Vocabulary};

/// A prepared dataset directory: its manifest, splits and vocabularies.
#[derive(Clone, Debug)]
pub struct PreparedDataset {
    dir: PathBuf,
    manifest: Manifest,
}

/// One split loaded into memory, row-major, ready for training or evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct SplitData {
    /// One label (0 or 1) per row.
    pub labels: Vec<u8>,
    /// `rows x dense_width()` values, row-major.
    pub dense: Vec<f32>,
    /// `rows x categorical_width()` ids, row-major; every id is below its table's size.
    pub categorical: Vec<u32>,
    /// Names of the dense columns, in order.
    pub dense_names: Vec<String>,
    /// Names of the categorical columns, in order.
    pub categorical_names: Vec<String>,
}

impl SplitData {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.labels.len()
    }
    /// Dense features per row.
    pub fn dense_width(&self) -> usize {
        self.dense_names.len()
    }
    /// Categorical ids per row (one per embedding table).
    pub fn categorical_width(&self) -> usize {
        self.categorical_names.len()
    }
    /// Dense features of one row.
    pub fn dense_row(&self, row: usize) -> &[f32] {
        let w = self.dense_width();
        &self.dense[row * w..(row + 1) * w]
    }
    /// Categorical ids of one row.
    pub fn categorical_row(&self, row: usize) -> &[u32] {
        let w = self.categorical_width();
        &self.categorical[row * w..(row + 1) * w]
    }
}

impl PreparedDataset {
    /// Opens a directory written by `prepare`, checking its manifest.
    pub fn open(dir: &Path) -> Result<Self, DatasetError> {
        let manifest = Manifest::read(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    /// The manifest, as checked by [`PreparedDataset::open`].
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The prepared directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The vocabulary of a categorical column, by column name.
    pub fn vocabulary(&self, column: &str) -> Result<Vocabulary, DatasetError> {
        let spec = self
            .manifest
            .categorical
            .iter()
            .find(|c| c.name == column)
            .ok_or_else(|| {
                DatasetError::invalid(&self.dir, format!("no categorical column {column:?}"))
            })?;
        let vocabulary = Vocabulary::load(column, &self.dir.join(&spec.vocabulary))?;
        if vocabulary.table_size() != spec.table_size {
            return Err(DatasetError::invalid(
                self.dir.join(&spec.vocabulary),
                format!(
                    "{} entries, but the manifest says table size {}",
                    vocabulary.table_size(),
                    spec.table_size
                ),
            ));
        }
        Ok(vocabulary)
    }

    /// A split as a polars frame (label, dense columns, categorical columns).
    pub fn split_frame(&self, name: &str) -> Result<DataFrame, DatasetError> {
        let split = self
            .manifest
            .split(name)
            .ok_or_else(|| DatasetError::invalid(&self.dir, format!("no split named {name:?}")))?;
        let path = self.dir.join(&split.file);
        let file = File::open(&path).map_err(|e| DatasetError::io(&path, e))?;
        let frame = ParquetReader::new(file)
            .finish()
            .map_err(|e| DatasetError::parquet(&path, e))?;
        if frame.height() as u64 != split.rows {
            return Err(DatasetError::invalid(
                &path,
                format!(
                    "{} rows, but the manifest says {}",
                    frame.height(),
                    split.rows
                ),
            ));
        }
        Ok(frame)
    }

    /// Loads a split into row-major vectors, checking column types and id ranges.
    pub fn load_split(&self, name: &str) -> Result<SplitData, DatasetError> {
        let frame = self.split_frame(name)?;
        let path = self.dir.join(name);
        let parquet = |e| DatasetError::parquet(&path, e);
        let rows = frame.height();
        let labels: Vec<u8> = frame
            .column(&self.manifest.label)
            .and_then(|c| c.u8().cloned())
            .map_err(parquet)?
            .iter()
            .map(|l| l.filter(|&l| l <= 1))
            .collect::<Option<_>>()
            .ok_or_else(|| DatasetError::invalid(&path, "labels must be 0 or 1"))?;
        let dense_names: Vec<String> = self.manifest.dense.iter().map(|d| d.name.clone()).collect();
        let mut dense = vec![0f32; rows * dense_names.len()];
        for (j, name) in dense_names.iter().enumerate() {
            let column = frame
                .column(name)
                .and_then(|c| c.f32().cloned())
                .map_err(parquet)?;
            for (i, value) in column.iter().enumerate() {
                dense[i * dense_names.len() + j] = value
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| DatasetError::invalid(&path, format!("{name}: bad value")))?;
            }
        }
        let categorical_names: Vec<String> = self
            .manifest
            .categorical
            .iter()
            .map(|c| c.name.clone())
            .collect();
        let width = categorical_names.len();
        let mut categorical = vec![0u32; rows * width];
        for (j, spec) in self.manifest.categorical.iter().enumerate() {
            let column = frame
                .column(&spec.name)
                .and_then(|c| c.u32().cloned())
                .map_err(parquet)?;
            for (i, id) in column.iter().enumerate() {
                categorical[i * width + j] = id
                    .filter(|&id| (id as usize) < spec.table_size)
                    .ok_or_else(|| {
                        DatasetError::invalid(
                            &path,
                            format!("{}: id outside table of {}", spec.name, spec.table_size),
                        )
                    })?;
            }
        }
        Ok(SplitData {
            labels,
            dense,
            categorical,
            dense_names,
            categorical_names,
        })
    }
}
