//! Mapping raw input rows to model inputs exactly as `prepare` mapped them, so a client can
//! turn the lines of a raw file (Criteo TSV or UCI heart-disease) into the dense features and
//! categorical ids it encrypts, using only a prepared dataset directory.

use std::io::{BufRead, BufReader};
use std::path::Path;

use crate::{
    DatasetError, DenseTransform, MANIFEST_FILE, Manifest, PreparedDataset, RESERVED_ID,
    Vocabulary, criteo, uci,
};

/// One raw row mapped to model inputs, in the manifest's column order.
#[derive(Clone, Debug, PartialEq)]
pub struct MappedRow {
    /// The label as `prepare` writes it (0 or 1); `None` is kept for rows without a label.
    pub label: Option<u8>,
    /// One value per dense column of the manifest, transformed as in the prepared splits.
    pub dense: Vec<f32>,
    /// One id per categorical column of the manifest; missing and unknown values get
    /// [`RESERVED_ID`].
    pub ids: Vec<u32>,
    /// Categorical values present in the row that their vocabulary does not keep (never seen,
    /// or dropped by `min-count` or the table-size cap), each mapped to [`RESERVED_ID`].
    /// Missing values are not counted.
    pub unknown_values: usize,
}

/// The raw formats a mapper reads, by the manifest's `dataset`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum RawFormat {
    /// `label \t I1..I13 \t C1..C26` ([`criteo::parse_line`]).
    Criteo,
    /// 13 comma-separated features, then `num` ([`uci::parse_line`]).
    UciHeart,
}

/// Maps raw lines of a dataset's source format to model inputs, the way `prepare` did.
///
/// Dense values go through the manifest's [`DenseTransform`]s and categorical values through
/// the saved vocabularies, so a row mapped here equals the same row in the prepared splits.
///
/// ```
/// use datasets::{NoProgress, RESERVED_ID, RowMapper, uci};
/// let dir = tempfile::tempdir()?;
/// let input = dir.path().join("heart.data");
/// std::fs::write(
///     &input,
///     "63.0,1.0,1.0,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,0.0,6.0,0\n\
///      67.0,1.0,4.0,160.0,286.0,0.0,2.0,108.0,1.0,1.5,2.0,3.0,3.0,2\n\
///      37.0,1.0,3.0,130.0,250.0,0.0,0.0,187.0,0.0,3.5,3.0,0.0,3.0,0\n\
///      41.0,0.0,2.0,130.0,204.0,0.0,2.0,172.0,0.0,1.4,1.0,0.0,3.0,0\n\
///      56.0,1.0,2.0,120.0,236.0,0.0,0.0,178.0,0.0,0.8,1.0,?,3.0,1\n",
/// )?;
/// let prepared = dir.path().join("prepared");
/// uci::prepare(&input, &prepared, &uci::UciOptions::default(), &NoProgress)?;
///
/// let mapper = RowMapper::open(&prepared)?;
/// assert_eq!((mapper.dense_width(), mapper.categorical_width()), (5, 8));
/// let row = mapper.map_line(b"56.0,1.0,2.0,120.0,236.0,0.0,0.0,178.0,0.0,0.8,1.0,?,3.0,1")?;
/// assert_eq!(row.label, Some(1));
/// assert_eq!(row.ids[6], RESERVED_ID); // `ca` is missing
/// assert_eq!(row.unknown_values, 0);
/// // `cp` = 9 never occurred: the reserved id, counted as unknown.
/// let row = mapper.map_line(b"56.0,1.0,9.0,120.0,236.0,0.0,0.0,178.0,0.0,0.8,1.0,0.0,3.0,1")?;
/// assert_eq!((row.ids[1], row.unknown_values), (RESERVED_ID, 1));
/// let error = mapper.map_line(b"56.0,1.0").unwrap_err();
/// assert_eq!(error, "expected 14 comma-separated fields, found 2");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct RowMapper {
    manifest: Manifest,
    format: RawFormat,
    /// Per dense column: the index of its raw value in the parsed row, and its transform.
    dense: Vec<(usize, DenseTransform)>,
    /// Per categorical column: the index of its raw value in the parsed row, and its vocabulary.
    categorical: Vec<(usize, Vocabulary)>,
}

/// The index of a Criteo dense column (`I1`..`I13`) in [`criteo::RawRow::dense`].
fn criteo_dense_index(name: &str) -> Option<usize> {
    criteo::dense_names().iter().position(|n| n == name)
}

/// The index of a Criteo categorical column (`C1`..`C26`) in [`criteo::RawRow::categorical`].
fn criteo_categorical_index(name: &str) -> Option<usize> {
    criteo::categorical_names().iter().position(|n| n == name)
}

impl RowMapper {
    /// Reads the manifest and every vocabulary of a prepared dataset directory.
    ///
    /// Fails if the directory is not a prepared dataset, if its `dataset` kind has no raw
    /// format this mapper reads (`criteo` and `uci-heart` do), if a column does not come
    /// from that format, or if a vocabulary is missing or does not match the manifest.
    pub fn open(dir: &Path) -> Result<Self, DatasetError> {
        let dataset = PreparedDataset::open(dir)?;
        let manifest = dataset.manifest();
        let invalid = |message: String| DatasetError::invalid(dir.join(MANIFEST_FILE), message);
        type Index = fn(&str) -> Option<usize>;
        let (format, dense_index, categorical_index): (RawFormat, Index, Index) =
            match manifest.dataset.as_str() {
                "criteo" => (
                    RawFormat::Criteo,
                    criteo_dense_index,
                    criteo_categorical_index,
                ),
                "uci-heart" => (RawFormat::UciHeart, uci::feature_index, uci::feature_index),
                other => {
                    return Err(invalid(format!(
                        "dataset kind {other:?} has no raw row format \
                         (expected \"criteo\" or \"uci-heart\")"
                    )));
                }
            };
        let dense = manifest
            .dense
            .iter()
            .map(|column| {
                let index = dense_index(column.source()).ok_or_else(|| {
                    invalid(format!(
                        "dense column {:?}: {:?} is not a column of {} rows",
                        column.name,
                        column.source(),
                        manifest.dataset
                    ))
                })?;
                Ok((index, column.transform.clone()))
            })
            .collect::<Result<_, DatasetError>>()?;
        let categorical = manifest
            .categorical
            .iter()
            .map(|column| {
                let index = categorical_index(&column.name).ok_or_else(|| {
                    invalid(format!(
                        "categorical column {:?} is not a column of {} rows",
                        column.name, manifest.dataset
                    ))
                })?;
                Ok((index, dataset.vocabulary(&column.name)?))
            })
            .collect::<Result<_, DatasetError>>()?;
        Ok(Self {
            manifest: manifest.clone(),
            format,
            dense,
            categorical,
        })
    }

    /// Maps one raw line (a trailing `\n` or `\r\n` is ignored) to model inputs.
    ///
    /// The error says what is wrong with the line (field count, a value that does not parse)
    /// without naming a file or line number; callers add `FILE:LINE: ` in front.
    pub fn map_line(&self, line: &[u8]) -> Result<MappedRow, String> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match self.format {
            RawFormat::Criteo => {
                let row = criteo::parse_line(line)?;
                Ok(self.map(row.label, &row.dense, |j| {
                    row.categorical[j].map(criteo::format_hex)
                }))
            }
            RawFormat::UciHeart => {
                let row = uci::parse_line(line)?;
                Ok(self.map(row.label, &row.values, |j| {
                    row.values[j].map(uci::canonical_value)
                }))
            }
        }
    }

    /// Reads up to `limit` rows of a raw file in the dataset's own format (plain text) and maps
    /// them, skipping blank lines. A line that does not map is [`DatasetError::Malformed`] (with
    /// the file and 1-based line), a file without rows [`DatasetError::Empty`].
    pub fn read_rows(&self, path: &Path, limit: usize) -> Result<Vec<MappedRow>, DatasetError> {
        let file = std::fs::File::open(path).map_err(|e| DatasetError::io(path, e))?;
        let mut rows = Vec::new();
        for (index, line) in BufReader::new(file).split(b'\n').enumerate() {
            if rows.len() == limit {
                break;
            }
            let line = line.map_err(|e| DatasetError::io(path, e))?;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let row = self
                .map_line(&line)
                .map_err(|message| DatasetError::Malformed {
                    path: path.to_path_buf(),
                    line: index as u64 + 1,
                    message,
                })?;
            rows.push(row);
        }
        if rows.is_empty() {
            return Err(DatasetError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(rows)
    }

    /// Applies the dense transforms and vocabularies to a parsed row; `raw_categorical(j)` is
    /// the canonical raw value at index `j` of the row, `None` where missing.
    fn map(
        &self,
        label: u8,
        raw_dense: &[Option<f64>],
        raw_categorical: impl Fn(usize) -> Option<String>,
    ) -> MappedRow {
        let dense = self
            .dense
            .iter()
            .map(|(j, transform)| transform.apply(raw_dense[*j]))
            .collect();
        let mut unknown_values = 0;
        let ids = self
            .categorical
            .iter()
            .map(|(j, vocabulary)| match raw_categorical(*j) {
                None => RESERVED_ID,
                Some(raw) => {
                    let id = vocabulary.id(&raw);
                    unknown_values += usize::from(id == RESERVED_ID);
                    id
                }
            })
            .collect();
        MappedRow {
            label: Some(label),
            dense,
            ids,
            unknown_values,
        }
    }

    /// Dense values per mapped row (the manifest's dense columns).
    pub fn dense_width(&self) -> usize {
        self.dense.len()
    }

    /// Categorical ids per mapped row (the manifest's categorical columns).
    pub fn categorical_width(&self) -> usize {
        self.categorical.len()
    }

    /// The manifest of the prepared dataset the mapper was opened on (column names, table
    /// sizes).
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
}
