//! One pass over a Criteo file: chunks parsed in parallel into columns while the next batch
//! is read, cut at the row limit, malformed lines failing the pass or skipped.

use std::path::Path;

use rayon::prelude::*;

use super::format::{CATEGORICAL_FEATURES, DENSE_FEATURES, parse_line};
use crate::input::{Chunk, LineReader, batch_width};
use crate::{DatasetError, DenseTransform, Progress, SourceInfo};

/// The rows of one chunk in columnar form, before categorical values are mapped to ids.
pub(super) struct ParsedChunk {
    pub(super) labels: Vec<u8>,
    pub(super) dense: Vec<Vec<f32>>,
    pub(super) dense_missing: Vec<u64>,
    pub(super) raw_categorical: Vec<Vec<Option<u32>>>,
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
pub(super) struct PassTotals {
    pub(super) rows: u64,
    pub(super) skipped: u64,
    pub(super) source: SourceInfo,
}

/// What a pass needs of each row besides validation and the categorical values.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Pass {
    /// Count values and checksum the file.
    Count,
    /// Transform dense values for writing.
    Write,
}

/// Reads the input once, parsing chunks in parallel, and hands each batch of parsed chunks, in
/// file order and cut at `max_rows`, to `consume`, while the next batch is being read. Malformed
/// rows fail the pass at the first one (by line) unless `skip_bad_rows`.
pub(super) fn scan(
    path: &Path,
    max_rows: Option<u64>,
    skip_bad_rows: bool,
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
    let mut remaining = max_rows.unwrap_or(u64::MAX);
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
                    if let Some((line, message)) = bad.next().filter(|_| !skip_bad_rows) {
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
