//! The UCI heart-disease data (`processed.*.data`: 14 comma-separated columns, no header,
//! numbers written as floats like `1.0`, `?` for missing).
//!
//! The label is `num > 0`. Categorical columns get vocabularies (id 0 for missing or unseen);
//! continuous columns are standardised with train-split statistics, and a continuous column
//! that has missing values gets a `<name>_missing` flag column, the value itself imputed with
//! the train mean. The train/test split is stratified by label and seeded.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::input::LineReader;
use crate::manifest::PrepareSummary;
use crate::output::{ColumnBatch, SplitSchema, SplitWriter, Staging};
use crate::split::mix64;
use crate::{
    CategoricalColumn, DatasetError, DenseColumn, DenseTransform, MANIFEST_VERSION, Manifest,
    Progress, Vocabulary,
};

/// The 14 columns, in file order.
pub const COLUMNS: [&str; 14] = [
    "age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang", "oldpeak",
    "slope", "ca", "thal", "num",
];
/// Continuous columns, standardised.
pub const CONTINUOUS: [&str; 5] = ["age", "trestbps", "chol", "thalach", "oldpeak"];
/// Categorical columns, mapped through vocabularies.
pub const CATEGORICAL: [&str; 8] = [
    "sex", "cp", "fbs", "restecg", "exang", "slope", "ca", "thal",
];

/// One parsed line: the 13 feature values (`None` = `?`) and the label.
#[derive(Clone, Debug, PartialEq)]
pub struct RawRow {
    /// The first 13 of [`COLUMNS`] (all but `num`), `None` where the field is `?`.
    pub values: [Option<f64>; 13],
    /// 1 when the diagnosis `num` is above 0, else 0.
    pub label: u8,
}

/// Parses one line of the UCI format.
///
/// ```
/// let row = datasets::uci::parse_line(b"63.0,1.0,1.0,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,?,6.0,2").unwrap();
/// assert_eq!(row.values[0], Some(63.0));
/// assert_eq!(row.values[11], None);
/// assert_eq!(row.label, 1);
/// ```
pub fn parse_line(line: &[u8]) -> Result<RawRow, String> {
    let text = std::str::from_utf8(line).map_err(|_| "not UTF-8 text".to_string())?;
    let fields: Vec<&str> = text.split(',').map(str::trim).collect();
    if fields.len() != COLUMNS.len() {
        return Err(format!(
            "expected {} comma-separated fields, found {}",
            COLUMNS.len(),
            fields.len()
        ));
    }
    let mut values = [None; 13];
    for (i, (field, value)) in fields.iter().zip(values.iter_mut()).enumerate() {
        if *field != "?" {
            let parsed = field.parse::<f64>().ok().filter(|v| v.is_finite());
            *value = Some(
                parsed.ok_or_else(|| format!("{}: not a number or '?': {field:?}", COLUMNS[i]))?,
            );
        }
    }
    let num = fields[13];
    let label = match num.parse::<f64>() {
        Ok(n) if n >= 0.0 && n.fract() == 0.0 => u8::from(n > 0.0),
        _ => {
            return Err(format!(
                "num: expected a non-negative integer, found {num:?}"
            ));
        }
    };
    Ok(RawRow { values, label })
}

/// The canonical raw form of a categorical value: `1.0` and `1` are the same value.
pub fn canonical_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// Options of [`prepare`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UciOptions {
    /// Fraction of each class held out for test.
    pub test_fraction: f64,
    /// Seed of the stratified split.
    pub seed: u64,
    /// Count and skip malformed rows instead of failing on the first.
    pub skip_bad_rows: bool,
}

impl Default for UciOptions {
    fn default() -> Self {
        Self {
            test_fraction: 0.2,
            seed: 42,
            skip_bad_rows: false,
        }
    }
}

/// The index in [`RawRow::values`] of a feature column, `None` for the label or an unknown name.
pub(crate) fn feature_index(name: &str) -> Option<usize> {
    COLUMNS[..COLUMNS.len() - 1].iter().position(|c| *c == name)
}

fn column_index(name: &str) -> usize {
    feature_index(name).expect("a known column")
}

/// Prepares a UCI heart-disease file into a dataset directory with `train` and `test` splits.
pub fn prepare(
    input: &Path,
    out: &Path,
    options: &UciOptions,
    progress: &dyn Progress,
) -> Result<PrepareSummary, DatasetError> {
    let started = Instant::now();
    crate::split::check_fractions(0.0, options.test_fraction)?;
    let staging = Staging::new(out)?;
    let mut reader = LineReader::open(input, true, progress)?;
    progress.start("reading", Some(reader.stored_bytes()));
    let mut rows = Vec::new();
    let mut skipped = 0u64;
    while let Some(chunk) = reader.next_chunk()? {
        for (line, text) in chunk.lines() {
            match parse_line(text) {
                Ok(row) => rows.push(row),
                Err(_) if options.skip_bad_rows => skipped += 1,
                Err(message) => {
                    return Err(DatasetError::Malformed {
                        path: input.to_path_buf(),
                        line,
                        message,
                    });
                }
            }
        }
    }
    if rows.is_empty() {
        return Err(DatasetError::Empty {
            path: input.to_path_buf(),
        });
    }

    // Stratified split: within each class, the rows with the smallest seeded hashes are test.
    let mut is_test = vec![false; rows.len()];
    for class in [0u8, 1] {
        let mut members: Vec<usize> = (0..rows.len())
            .filter(|&i| rows[i].label == class)
            .collect();
        members.sort_by_key(|&i| mix64(options.seed ^ mix64(i as u64)));
        let held_out = (members.len() as f64 * options.test_fraction).round() as usize;
        for &i in &members[..held_out] {
            is_test[i] = true;
        }
    }
    let train_rows: Vec<&RawRow> = rows
        .iter()
        .zip(&is_test)
        .filter(|(_, t)| !**t)
        .map(|(r, _)| r)
        .collect();
    if train_rows.is_empty() {
        return Err(DatasetError::InvalidOption(
            "the test fraction leaves no training rows".into(),
        ));
    }

    // Dense columns: standardised with train statistics, plus a flag where values go missing.
    let mut dense = Vec::new();
    for name in CONTINUOUS {
        let j = column_index(name);
        let present: Vec<f64> = train_rows.iter().filter_map(|r| r.values[j]).collect();
        let mean = present.iter().sum::<f64>() / present.len().max(1) as f64;
        let variance =
            present.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / present.len().max(1) as f64;
        let std = if variance > 0.0 { variance.sqrt() } else { 1.0 };
        let missing_rows = rows.iter().filter(|r| r.values[j].is_none()).count() as u64;
        dense.push(DenseColumn {
            name: name.to_string(),
            transform: DenseTransform::Standardize { mean, std },
            missing_rows,
        });
    }
    for name in CONTINUOUS {
        let j = column_index(name);
        let missing_rows = rows.iter().filter(|r| r.values[j].is_none()).count() as u64;
        if missing_rows > 0 {
            dense.push(DenseColumn {
                name: format!("{name}_missing"),
                transform: DenseTransform::MissingFlag {
                    of: name.to_string(),
                },
                missing_rows,
            });
        }
    }
    let dense_sources: Vec<usize> = dense.iter().map(|d| column_index(d.source())).collect();

    // Categorical columns: vocabularies over all rows (values only, no labels).
    let vocab_dir = staging.path().join("vocab");
    std::fs::create_dir(&vocab_dir).map_err(|e| DatasetError::io(&vocab_dir, e))?;
    let mut vocabularies = Vec::new();
    let mut categorical = Vec::new();
    for name in CATEGORICAL {
        let j = column_index(name);
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for row in &rows {
            if let Some(v) = row.values[j] {
                *counts.entry(canonical_value(v)).or_insert(0) += 1;
            }
        }
        let vocabulary =
            Vocabulary::from_counts(name, counts.iter().map(|(raw, c)| (raw, *c)), 1, None);
        let file = format!("vocab/{name}.parquet");
        vocabulary.save(&staging.path().join(&file))?;
        categorical.push(CategoricalColumn {
            name: name.to_string(),
            table_size: vocabulary.table_size(),
            vocabulary: file,
            missing_rows: rows.iter().filter(|r| r.values[j].is_none()).count() as u64,
            distinct_values: counts.len() as u64,
        });
        vocabularies.push((j, vocabulary));
    }

    let schema = SplitSchema {
        label: "label".into(),
        dense: dense.iter().map(|d| d.name.clone()).collect(),
        categorical: categorical.iter().map(|c| c.name.clone()).collect(),
    };
    let mut batches = [
        ColumnBatch::with_widths(dense.len(), categorical.len()),
        ColumnBatch::with_widths(dense.len(), categorical.len()),
    ];
    for (row, test) in rows.iter().zip(&is_test) {
        let batch = &mut batches[usize::from(*test)];
        batch.labels.push(row.label);
        for ((column, spec), &j) in batch.dense.iter_mut().zip(&dense).zip(&dense_sources) {
            column.push(spec.transform.apply(row.values[j]));
        }
        for (column, (j, vocabulary)) in batch.categorical.iter_mut().zip(&vocabularies) {
            let raw = row.values[*j].map(canonical_value);
            column.push(raw.map_or(crate::RESERVED_ID, |r| vocabulary.id(&r)));
        }
    }
    let mut splits = Vec::new();
    for (name, batch) in ["train", "test"].iter().zip(&batches) {
        let mut writer = SplitWriter::create(staging.path(), name, &schema)?;
        writer.write(batch)?;
        splits.push(writer.finish()?);
    }

    let positives = rows.iter().map(|r| u64::from(r.label)).sum();
    let manifest = Manifest {
        format_version: MANIFEST_VERSION,
        dataset: "uci-heart".into(),
        created_by: concat!("dlrm-he ", env!("CARGO_PKG_VERSION")).into(),
        label: "label".into(),
        dense,
        categorical,
        rows: rows.len() as u64,
        positives,
        label_rate: crate::manifest::label_rate(positives, rows.len() as u64),
        splits,
        skipped_rows: skipped,
        source: reader.source_info(),
        options: serde_json::to_value(options).expect("options always serialise"),
    };
    staging.commit(manifest, started)
}
