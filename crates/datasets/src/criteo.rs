//! Criteo click logs (Display Advertising Challenge / Terabyte TSV): parsing, vocabularies and
//! `prepare`, streamed in two passes (count values, then map and write) so memory holds only
//! the vocabularies, whatever the number of rows.
//!
//! Format: `label \t I1..I13 \t C1..C26`, no header; dense fields are integers (may be
//! negative), categorical fields are 32-bit hex ids, an empty field is missing.

use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::input::{Chunk, LineReader, batch_width};
use crate::manifest::PrepareSummary;
use crate::output::{ColumnBatch, SplitSchema, SplitWriter, Staging};
use crate::split::{SPLIT_NAMES, SplitPlan, check_fractions};
use crate::vocab::rank_by_frequency;
use crate::{
    CategoricalColumn, DatasetError, DenseColumn, DenseTransform, MANIFEST_VERSION, Manifest,
    Progress, RESERVED_ID, SourceInfo, SplitMethod, Vocabulary,
};

/// Dense (integer) features per row.
pub const DENSE_FEATURES: usize = 13;
/// Categorical (hex id) features per row.
pub const CATEGORICAL_FEATURES: usize = 26;
/// Tab-separated fields per line: the label, then the features.
pub const FIELDS: usize = 1 + DENSE_FEATURES + CATEGORICAL_FEATURES;

/// `I1`..`I13`.
pub fn dense_names() -> Vec<String> {
    (1..=DENSE_FEATURES).map(|i| format!("I{i}")).collect()
}

/// `C1`..`C26`.
pub fn categorical_names() -> Vec<String> {
    (1..=CATEGORICAL_FEATURES)
        .map(|i| format!("C{i}"))
        .collect()
}

/// One raw line, parsed but not yet mapped.
#[derive(Clone, Debug, PartialEq)]
pub struct RawRow {
    pub label: u8,
    pub dense: [Option<f64>; DENSE_FEATURES],
    pub categorical: [Option<u32>; CATEGORICAL_FEATURES],
}

/// Parses one line of the raw format (without its newline).
///
/// ```
/// let mut line = String::from("1\t5\t-2");
/// line += &"\t".repeat(11);
/// line += "\t68fd1e64";
/// line += &"\t".repeat(25);
/// let row = datasets::criteo::parse_line(line.as_bytes()).unwrap();
/// assert_eq!(row.label, 1);
/// assert_eq!(row.dense[0], Some(5.0));
/// assert_eq!(row.dense[1], Some(-2.0));
/// assert_eq!(row.dense[2], None);
/// assert_eq!(row.categorical[0], Some(0x68fd1e64));
/// assert_eq!(row.categorical[1], None);
/// assert!(datasets::criteo::parse_line(b"1\t2").is_err());
/// ```
pub fn parse_line(line: &[u8]) -> Result<RawRow, String> {
    let count = memchr::memchr_iter(b'\t', line).count() + 1;
    if count != FIELDS {
        return Err(format!(
            "expected {FIELDS} tab-separated fields, found {count}"
        ));
    }
    let mut fields = line.split(|&b| b == b'\t');
    let mut next = || fields.next().expect("the field count was checked");
    let label = match next() {
        b"0" => 0,
        b"1" => 1,
        other => return Err(format!("label must be 0 or 1, found {:?}", lossy(other))),
    };
    let mut dense = [None; DENSE_FEATURES];
    for (i, value) in dense.iter_mut().enumerate() {
        *value = parse_dense(next()).map_err(|e| format!("I{}: {e}", i + 1))?;
    }
    let mut categorical = [None; CATEGORICAL_FEATURES];
    for (i, value) in categorical.iter_mut().enumerate() {
        *value = parse_hex(next()).map_err(|e| format!("C{}: {e}", i + 1))?;
    }
    Ok(RawRow {
        label,
        dense,
        categorical,
    })
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(40)]).into_owned()
}

fn parse_dense(field: &[u8]) -> Result<Option<f64>, String> {
    if field.is_empty() {
        return Ok(None);
    }
    let (negative, digits) = match field {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, field),
    };
    // Integers are the format; the float fallback accepts files re-exported by other tools.
    if !digits.is_empty() && digits.len() <= 18 && digits.iter().all(u8::is_ascii_digit) {
        let magnitude = digits
            .iter()
            .fold(0i64, |v, &d| v * 10 + i64::from(d - b'0'));
        return Ok(Some(if negative { -magnitude } else { magnitude } as f64));
    }
    std::str::from_utf8(field)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|v| v.is_finite())
        .map(Some)
        .ok_or_else(|| format!("not a number: {:?}", lossy(field)))
}

fn parse_hex(field: &[u8]) -> Result<Option<u32>, String> {
    if field.is_empty() {
        return Ok(None);
    }
    if field.len() > 8 {
        return Err(format!("hex id longer than 8 digits: {:?}", lossy(field)));
    }
    let mut value = 0u32;
    for &b in field {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return Err(format!("not a hex id: {:?}", lossy(field))),
        };
        value = value << 4 | u32::from(digit);
    }
    Ok(Some(value))
}

/// The canonical raw form of a categorical id, as vocabularies store it (8 lower-case digits).
pub fn format_hex(id: u32) -> String {
    format!("{id:08x}")
}

/// Options of [`prepare`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CriteoOptions {
    /// Values seen fewer times map to the reserved id.
    pub min_count: u64,
    /// Cap on each table's size (reserved id included): only the most frequent values are kept.
    pub max_table_size: Option<usize>,
    /// Read at most this many data rows.
    pub max_rows: Option<u64>,
    pub split: SplitMethod,
    pub val_fraction: f64,
    pub test_fraction: f64,
    /// Seed of the random split.
    pub seed: u64,
    /// Count and skip malformed rows instead of failing on the first.
    pub skip_bad_rows: bool,
}

impl Default for CriteoOptions {
    fn default() -> Self {
        Self {
            min_count: 1,
            max_table_size: None,
            max_rows: None,
            split: SplitMethod::Random,
            val_fraction: 0.05,
            test_fraction: 0.05,
            seed: 0,
            skip_bad_rows: false,
        }
    }
}

/// The rows of one chunk in columnar form, before categorical values are mapped to ids.
struct ParsedChunk {
    labels: Vec<u8>,
    dense: Vec<Vec<f32>>,
    dense_missing: Vec<u64>,
    raw_categorical: Vec<Vec<Option<u32>>>,
    /// Line number of each parsed row.
    lines: Vec<u64>,
    /// Malformed lines with the reason, in line order.
    bad: Vec<(u64, String)>,
}

impl ParsedChunk {
    fn parse(chunk: &Chunk, pass: Pass) -> Self {
        let capacity = chunk.data.len() / 200;
        let mut parsed = Self {
            labels: Vec::with_capacity(capacity),
            dense: (0..DENSE_FEATURES)
                .map(|_| Vec::with_capacity(capacity))
                .collect(),
            dense_missing: vec![0; DENSE_FEATURES],
            raw_categorical: (0..CATEGORICAL_FEATURES)
                .map(|_| Vec::with_capacity(capacity))
                .collect(),
            lines: Vec::with_capacity(capacity),
            bad: Vec::new(),
        };
        for (line_number, line) in chunk.lines() {
            match parse_line(line) {
                Ok(row) => {
                    parsed.labels.push(row.label);
                    for (j, value) in row.dense.iter().enumerate() {
                        parsed.dense_missing[j] += u64::from(value.is_none());
                        if pass == Pass::Write {
                            parsed.dense[j].push(DenseTransform::Log1p.apply(*value));
                        }
                    }
                    for (column, value) in parsed.raw_categorical.iter_mut().zip(row.categorical) {
                        column.push(value);
                    }
                    parsed.lines.push(line_number);
                }
                Err(message) => parsed.bad.push((line_number, message)),
            }
        }
        parsed
    }

    fn truncate(&mut self, rows: usize) {
        self.labels.truncate(rows);
        self.dense.iter_mut().for_each(|c| c.truncate(rows));
        self.raw_categorical
            .iter_mut()
            .for_each(|c| c.truncate(rows));
        self.lines.truncate(rows);
    }
}

/// What a full pass over the input saw.
struct PassTotals {
    rows: u64,
    skipped: u64,
    source: SourceInfo,
}

/// What a pass needs of each row besides validation and the categorical values.
#[derive(Clone, Copy, PartialEq)]
enum Pass {
    /// Count values and checksum the file.
    Count,
    /// Transform dense values for writing.
    Write,
}

/// Reads the input once, parsing chunks in parallel, and hands each batch of parsed chunks, in
/// file order and cut at `max_rows`, to `consume`, while the next batch is being read. Malformed
/// rows fail the pass at the first one (by line) unless they are being skipped.
fn scan(
    path: &Path,
    options: &CriteoOptions,
    progress: &dyn Progress,
    pass: Pass,
    mut consume: impl FnMut(&mut [ParsedChunk]) -> Result<(), DatasetError> + Send,
) -> Result<PassTotals, DatasetError> {
    let mut reader = LineReader::open(path, pass == Pass::Count, progress)?;
    let phase = match pass {
        Pass::Count => "counting values",
        Pass::Write => "writing splits",
    };
    progress.start(phase, Some(reader.stored_bytes()));
    let mut remaining = options.max_rows.unwrap_or(u64::MAX);
    let (mut rows, mut skipped) = (0u64, 0u64);
    let mut batch = reader.next_batch(batch_width())?;
    while remaining > 0 && !batch.is_empty() {
        let (processed, next) = rayon::join(
            || -> Result<(), DatasetError> {
                let mut parsed: Vec<ParsedChunk> = batch
                    .par_iter()
                    .map(|chunk| ParsedChunk::parse(chunk, pass))
                    .collect();
                let mut used = 0;
                for chunk in parsed.iter_mut() {
                    used += 1;
                    let keep = chunk
                        .labels
                        .len()
                        .min(usize::try_from(remaining).unwrap_or(usize::MAX));
                    let last_line = if keep as u64 == remaining {
                        chunk.lines.get(keep.wrapping_sub(1)).copied().unwrap_or(0)
                    } else {
                        u64::MAX
                    };
                    let mut bad = chunk.bad.iter().take_while(|(line, _)| *line <= last_line);
                    let bad_count = bad.clone().count() as u64;
                    if let Some((line, message)) = bad.next().filter(|_| !options.skip_bad_rows) {
                        return Err(DatasetError::Malformed {
                            path: path.to_path_buf(),
                            line: *line,
                            message: message.clone(),
                        });
                    }
                    chunk.truncate(keep);
                    skipped += bad_count;
                    rows += keep as u64;
                    remaining -= keep as u64;
                    if remaining == 0 {
                        break;
                    }
                }
                parsed.truncate(used);
                consume(&mut parsed)
            },
            || reader.next_batch(batch_width()),
        );
        processed?;
        batch = next?;
    }
    if rows == 0 {
        return Err(DatasetError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(PassTotals {
        rows,
        skipped,
        source: reader.source_info(),
    })
}

/// Value counts of the categorical columns and missing counts of all columns.
struct ColumnCounts {
    values: Vec<FxHashMap<u32, u64>>,
    categorical_missing: Vec<u64>,
    dense_missing: Vec<u64>,
}

/// Prepares a Criteo TSV file (plain, gzip or zstd) into a dataset directory `out`.
///
/// Dense features become `ln(1 + max(x, 0))` (missing: 0). Categorical values get ids by
/// frequency over the whole input (values are unlabeled, so this leaks nothing about labels);
/// values rarer than `min_count`, beyond the table cap, or missing get the reserved id 0.
pub fn prepare(
    input: &Path,
    out: &Path,
    options: &CriteoOptions,
    progress: &dyn Progress,
) -> Result<PrepareSummary, DatasetError> {
    let started = Instant::now();
    check_fractions(options.val_fraction, options.test_fraction)?;
    if options.max_table_size == Some(0) {
        return Err(DatasetError::InvalidOption(
            "--max-table-size must be at least 1".into(),
        ));
    }
    let staging = Staging::new(out)?;

    // Pass 1: count values (column-parallel: each column's map is touched by one thread).
    let mut counts = ColumnCounts {
        values: vec![FxHashMap::default(); CATEGORICAL_FEATURES],
        categorical_missing: vec![0; CATEGORICAL_FEATURES],
        dense_missing: vec![0; DENSE_FEATURES],
    };
    let first = scan(input, options, progress, Pass::Count, |chunks| {
        for chunk in chunks.iter() {
            for (total, missing) in counts.dense_missing.iter_mut().zip(&chunk.dense_missing) {
                *total += missing;
            }
        }
        counts
            .values
            .par_iter_mut()
            .zip(counts.categorical_missing.par_iter_mut())
            .enumerate()
            .for_each(|(column, (map, missing))| {
                for chunk in chunks.iter() {
                    for value in &chunk.raw_categorical[column] {
                        match value {
                            Some(v) => *map.entry(*v).or_insert(0) += 1,
                            None => *missing += 1,
                        }
                    }
                }
            });
        Ok(())
    })?;

    // Vocabularies: ranked values, saved for serving, and the id maps for pass 2.
    let vocab_dir = staging.path().join("vocab");
    std::fs::create_dir(&vocab_dir).map_err(|e| DatasetError::io(&vocab_dir, e))?;
    let names = categorical_names();
    let built: Vec<(FxHashMap<u32, u32>, CategoricalColumn)> = std::mem::take(&mut counts.values)
        .into_par_iter()
        .zip(&names)
        .zip(&counts.categorical_missing)
        .map(|((map, name), &missing_rows)| {
            let distinct_values = map.len() as u64;
            let ranked = rank_by_frequency(map, options.min_count.max(1), options.max_table_size);
            let ids = ranked
                .iter()
                .enumerate()
                .map(|(i, (value, _))| (*value, i as u32 + 1))
                .collect();
            let (raw, value_counts) = ranked.iter().map(|(v, c)| (format_hex(*v), *c)).unzip();
            let vocabulary = Vocabulary::from_ranked(name, raw, value_counts);
            let file = format!("vocab/{name}.parquet");
            vocabulary.save(&staging.path().join(&file))?;
            Ok((
                ids,
                CategoricalColumn {
                    name: name.clone(),
                    table_size: vocabulary.table_size(),
                    vocabulary: file,
                    missing_rows,
                    distinct_values,
                },
            ))
        })
        .collect::<Result<_, DatasetError>>()?;
    let (id_maps, categorical): (Vec<_>, Vec<_>) = built.into_iter().unzip();

    // Pass 2: map, split and write.
    let schema = SplitSchema {
        label: "label".into(),
        dense: dense_names(),
        categorical: names,
    };
    let plan = SplitPlan::new(
        options.split,
        options.seed,
        options.val_fraction,
        options.test_fraction,
        first.rows,
    );
    let fractions = [
        1.0 - options.val_fraction - options.test_fraction,
        options.val_fraction,
        options.test_fraction,
    ];
    let mut writers = SPLIT_NAMES
        .iter()
        .zip(fractions)
        .map(|(name, fraction)| {
            (fraction > 0.0)
                .then(|| SplitWriter::create(staging.path(), name, &schema))
                .transpose()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut pending: Vec<ColumnBatch> = (0..SPLIT_NAMES.len())
        .map(|_| ColumnBatch::with_widths(DENSE_FEATURES, CATEGORICAL_FEATURES))
        .collect();
    let mut row_index = 0u64;
    let second = scan(input, options, progress, Pass::Write, |chunks| {
        let mapped: Vec<ColumnBatch> = chunks
            .par_iter_mut()
            .map(|chunk| ColumnBatch {
                labels: std::mem::take(&mut chunk.labels),
                dense: std::mem::take(&mut chunk.dense),
                categorical: chunk
                    .raw_categorical
                    .iter()
                    .zip(&id_maps)
                    .map(|(values, ids)| {
                        values
                            .iter()
                            .map(|v| v.and_then(|v| ids.get(&v).copied()).unwrap_or(RESERVED_ID))
                            .collect()
                    })
                    .collect(),
            })
            .collect();
        for batch in &mapped {
            for row in 0..batch.labels.len() {
                pending[plan.assign(row_index)].push_row_of(batch, row);
                row_index += 1;
            }
        }
        for (writer, batch) in writers.iter_mut().zip(pending.iter_mut()) {
            if let Some(writer) = writer {
                writer.write(batch)?;
            }
            batch.clear();
        }
        Ok(())
    })?;
    if second.rows != first.rows {
        return Err(DatasetError::invalid(
            input,
            "the file changed while it was being read",
        ));
    }
    let splits = writers
        .into_iter()
        .flatten()
        .map(SplitWriter::finish)
        .collect::<Result<Vec<_>, _>>()?;

    let dense = dense_names()
        .into_iter()
        .zip(&counts.dense_missing)
        .map(|(name, &missing_rows)| DenseColumn {
            name,
            transform: DenseTransform::Log1p,
            missing_rows,
        })
        .collect();
    let positives = splits.iter().map(|s| s.positives).sum();
    let manifest = Manifest {
        format_version: MANIFEST_VERSION,
        dataset: "criteo".into(),
        created_by: concat!("dlrm-he ", env!("CARGO_PKG_VERSION")).into(),
        label: "label".into(),
        dense,
        categorical,
        rows: first.rows,
        positives,
        label_rate: crate::manifest::label_rate(positives, first.rows),
        splits,
        skipped_rows: first.skipped,
        source: first.source,
        options: serde_json::to_value(options).expect("options always serialise"),
    };
    manifest.write(staging.path())?;
    staging.commit()?;
    Ok(PrepareSummary {
        manifest,
        elapsed: started.elapsed(),
    })
}
