//! Writing a prepared dataset: a staging directory renamed into place only when complete, and
//! streaming Parquet writers for the splits.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use polars::prelude::*;

use crate::DatasetError;
use crate::manifest::{Manifest, PrepareSummary};

/// A directory written under a temporary sibling name and renamed to its final name on
/// [`Staging::commit`], so a failed or killed run never leaves a directory that looks valid.
pub(crate) struct Staging {
    target: PathBuf,
    temp: PathBuf,
    committed: bool,
}

impl Staging {
    pub(crate) fn new(target: &Path) -> Result<Self, DatasetError> {
        if target.symlink_metadata().is_ok() {
            return Err(DatasetError::OutputExists {
                path: target.to_path_buf(),
            });
        }
        let name = target.file_name().ok_or_else(|| {
            DatasetError::InvalidOption(format!("{}: not a directory name", target.display()))
        })?;
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(|e| DatasetError::io(&parent, e))?;
        let temp = parent.join(format!(
            ".{}.partial-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        if temp.exists() {
            std::fs::remove_dir_all(&temp).map_err(|e| DatasetError::io(&temp, e))?;
        }
        std::fs::create_dir(&temp).map_err(|e| DatasetError::io(&temp, e))?;
        Ok(Self {
            target: target.to_path_buf(),
            temp,
            committed: false,
        })
    }

    /// Where files go until the commit.
    pub(crate) fn path(&self) -> &Path {
        &self.temp
    }

    /// The end of every `prepare`: writes `manifest` into the directory, renames the directory
    /// into place and reports the time since `started`.
    pub(crate) fn commit(
        mut self,
        manifest: Manifest,
        started: Instant,
    ) -> Result<PrepareSummary, DatasetError> {
        manifest.write(&self.temp)?;
        std::fs::rename(&self.temp, &self.target).map_err(|e| DatasetError::io(&self.target, e))?;
        self.committed = true;
        Ok(PrepareSummary {
            manifest,
            elapsed: started.elapsed(),
        })
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.temp);
        }
    }
}

/// Rows in columnar form: the label, dense features and categorical ids.
#[derive(Default)]
pub(crate) struct ColumnBatch {
    pub labels: Vec<u8>,
    pub dense: Vec<Vec<f32>>,
    pub categorical: Vec<Vec<u32>>,
}

impl ColumnBatch {
    pub(crate) fn with_widths(dense: usize, categorical: usize) -> Self {
        Self {
            labels: Vec::new(),
            dense: vec![Vec::new(); dense],
            categorical: vec![Vec::new(); categorical],
        }
    }

    /// Appends row `row` of `other`.
    pub(crate) fn push_row_of(&mut self, other: &ColumnBatch, row: usize) {
        self.labels.push(other.labels[row]);
        for (to, from) in self.dense.iter_mut().zip(&other.dense) {
            to.push(from[row]);
        }
        for (to, from) in self.categorical.iter_mut().zip(&other.categorical) {
            to.push(from[row]);
        }
    }

    pub(crate) fn clear(&mut self) {
        self.labels.clear();
        self.dense.iter_mut().for_each(Vec::clear);
        self.categorical.iter_mut().for_each(Vec::clear);
    }
}

/// Column names of a prepared split, in file order.
#[derive(Clone)]
pub(crate) struct SplitSchema {
    pub label: String,
    pub dense: Vec<String>,
    pub categorical: Vec<String>,
}

impl SplitSchema {
    fn frame(&self, batch: &ColumnBatch) -> PolarsResult<DataFrame> {
        let mut columns = Vec::with_capacity(1 + self.dense.len() + self.categorical.len());
        columns.push(Column::new(self.label.as_str().into(), &batch.labels));
        for (name, values) in self.dense.iter().zip(&batch.dense) {
            columns.push(Column::new(name.as_str().into(), values));
        }
        for (name, values) in self.categorical.iter().zip(&batch.categorical) {
            columns.push(Column::new(name.as_str().into(), values));
        }
        DataFrame::new_infer_height(columns)
    }
}

/// Streams one split to a zstd-compressed Parquet file, one row group per batch.
pub(crate) struct SplitWriter {
    pub name: String,
    pub file_name: String,
    path: PathBuf,
    schema: SplitSchema,
    writer: polars::io::parquet::write::BatchedWriter<File>,
    pub rows: u64,
    pub positives: u64,
}

impl SplitWriter {
    pub(crate) fn create(
        dir: &Path,
        name: &str,
        schema: &SplitSchema,
    ) -> Result<Self, DatasetError> {
        let file_name = format!("{name}.parquet");
        let path = dir.join(&file_name);
        let file = File::create(&path).map_err(|e| DatasetError::io(&path, e))?;
        let empty = schema
            .frame(&ColumnBatch::with_widths(
                schema.dense.len(),
                schema.categorical.len(),
            ))
            .map_err(|e| DatasetError::parquet(&path, e))?;
        let writer = ParquetWriter::new(file)
            .with_compression(ParquetCompression::Zstd(None))
            .batched(empty.schema())
            .map_err(|e| DatasetError::parquet(&path, e))?;
        Ok(Self {
            name: name.to_string(),
            file_name,
            path,
            schema: schema.clone(),
            writer,
            rows: 0,
            positives: 0,
        })
    }

    pub(crate) fn write(&mut self, batch: &ColumnBatch) -> Result<(), DatasetError> {
        if batch.labels.is_empty() {
            return Ok(());
        }
        let frame = self
            .schema
            .frame(batch)
            .map_err(|e| DatasetError::parquet(&self.path, e))?;
        self.writer
            .write_batch(&frame)
            .map_err(|e| DatasetError::parquet(&self.path, e))?;
        self.rows += batch.labels.len() as u64;
        self.positives += batch.labels.iter().map(|&l| u64::from(l)).sum::<u64>();
        Ok(())
    }

    pub(crate) fn finish(self) -> Result<crate::SplitInfo, DatasetError> {
        self.writer
            .finish()
            .map_err(|e| DatasetError::parquet(&self.path, e))?;
        Ok(crate::SplitInfo {
            name: self.name,
            file: self.file_name,
            rows: self.rows,
            positives: self.positives,
            label_rate: crate::manifest::label_rate(self.positives, self.rows),
        })
    }
}
