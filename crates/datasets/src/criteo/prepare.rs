//! `prepare`: two passes over a Criteo file (count values, then map and write), vocabularies
//! ranked by frequency, the splits and the manifest.

use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::format::{
    CATEGORICAL_FEATURES, DENSE_FEATURES, categorical_names, dense_names, format_hex,
};
use super::scan::{Pass, scan};
use crate::manifest::PrepareSummary;
use crate::output::{ColumnBatch, SplitSchema, SplitWriter, Staging};
use crate::split::{SPLIT_NAMES, SplitPlan, check_fractions};
use crate::vocab::rank_by_frequency;
use crate::{
    CategoricalColumn, DatasetError, DenseColumn, DenseTransform, MANIFEST_VERSION, Manifest,
    Progress, RESERVED_ID, SplitMethod, Vocabulary,
};

/// Options of [`prepare`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CriteoOptions {
    /// Values seen fewer times map to the reserved id.
    pub min_count: u64,
    /// Cap on each table's size (reserved id included): only the most frequent values are kept.
    pub max_table_size: Option<usize>,
    /// Read at most this many data rows.
    pub max_rows: Option<u64>,
    /// How rows are assigned to train, validation and test.
    pub split: SplitMethod,
    /// Fraction of the rows held out for validation.
    pub val_fraction: f64,
    /// Fraction of the rows held out for test.
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
    let first = scan(
        input,
        options.max_rows,
        options.skip_bad_rows,
        progress,
        Pass::Count,
        |chunks| {
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
        },
    )?;

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
    let second = scan(
        input,
        options.max_rows,
        options.skip_bad_rows,
        progress,
        Pass::Write,
        |chunks| {
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
                                .map(|v| {
                                    v.and_then(|v| ids.get(&v).copied()).unwrap_or(RESERVED_ID)
                                })
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
        },
    )?;
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
    staging.commit(manifest, started)
}
