//! A Criteo-shaped data generator: the raw Kaggle TSV format with the full dataset's per-column
//! cardinalities (times a scale), Zipf-like id frequencies, Kaggle-like missing rates, and labels
//! drawn from a hidden model with feature interactions, so that the hidden model's own AUC (the
//! oracle AUC) is known and a trained DLRM can be compared with it.
//!
//! Every row is a pure function of the seed and its position, so output does not depend on the
//! number of threads.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::criteo::{CATEGORICAL_FEATURES, DENSE_FEATURES};
use crate::split::{mix64, unit_interval};
use crate::{DatasetError, Progress};

/// Distinct values of C1..C26 in the full Criteo Kaggle `train.txt` (45,840,617 rows), as
/// published with the reference DLRM; each includes one bucket for missing values.
pub const KAGGLE_CARDINALITIES: [u64; CATEGORICAL_FEATURES] = [
    1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194, 27, 14992,
    5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105, 142572,
];

/// Fraction of rows with C1..C26 missing (from the 8,000-row Kaggle head sample).
const CATEGORICAL_MISSING: [f64; CATEGORICAL_FEATURES] = [
    0.0, 0.0, 0.03, 0.03, 0.0, 0.13, 0.0, 0.0, 0.0, 0.0, 0.0, 0.03, 0.0, 0.0, 0.0, 0.03, 0.0, 0.0,
    0.45, 0.45, 0.03, 0.82, 0.0, 0.03, 0.45, 0.45,
];

/// Fraction of rows with I1..I13 missing (same sample).
const DENSE_MISSING: [f64; DENSE_FEATURES] = [
    0.45, 0.0, 0.2, 0.2, 0.05, 0.25, 0.05, 0.0, 0.05, 0.45, 0.05, 0.78, 0.2,
];

/// Typical `ln(1 + x)` of I1..I13, giving Criteo-like magnitudes (I5 in the thousands, ...).
const DENSE_LOG_CENTRE: [f64; DENSE_FEATURES] = [
    0.7, 1.5, 2.3, 1.6, 7.0, 4.0, 2.0, 2.5, 4.0, 0.5, 1.0, 0.3, 1.8,
];

/// Pairs of categorical columns whose latent vectors interact in the hidden model.
const INTERACTING_PAIRS: [(usize, usize); 4] = [(0, 4), (1, 7), (5, 13), (16, 22)];
/// Categorical columns with a strong main effect; the others have a weak one.
const STRONG_COLUMNS: [usize; 8] = [0, 1, 4, 5, 7, 13, 16, 22];
const LATENT_DIM: usize = 4;

/// Options of [`generate`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyntheticOptions {
    /// Rows to write.
    pub rows: u64,
    /// Multiplies the Kaggle cardinalities (each column keeps at least 2 values).
    pub scale: f64,
    /// Seed of the hidden model and of every row drawn.
    pub seed: u64,
    /// Exponent of the Zipf-like id frequencies.
    pub zipf_exponent: f64,
}

impl Default for SyntheticOptions {
    fn default() -> Self {
        Self {
            rows: 100_000,
            scale: 0.001,
            seed: 1,
            zipf_exponent: 1.1,
        }
    }
}

/// What the generator wrote, including the hidden model's oracle quality.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SyntheticReport {
    /// The options the data was generated with.
    pub options: SyntheticOptions,
    /// Distinct values each categorical column draws from, in column order.
    pub cardinalities: Vec<u64>,
    /// Rows written.
    pub rows: u64,
    /// Rows written with label 1.
    pub positives: u64,
    /// AUC of the hidden model's probabilities against the drawn labels.
    pub oracle_auc: f64,
    /// Log loss of the hidden model's probabilities.
    pub oracle_log_loss: f64,
}

impl SyntheticReport {
    /// The sidecar file written next to the data: `<data file>.oracle.json`.
    pub fn sidecar_path(data: &Path) -> PathBuf {
        let mut name = data.as_os_str().to_owned();
        name.push(".oracle.json");
        PathBuf::from(name)
    }
}

/// Per-column cardinalities for a scale.
///
/// ```
/// let c = datasets::synthetic::cardinalities(0.001);
/// assert_eq!(c[2], 10131);   // C3: 10,131,227 x 0.001
/// assert_eq!(c[8], 2);       // C9 keeps at least 2 values
/// ```
pub fn cardinalities(scale: f64) -> Vec<u64> {
    KAGGLE_CARDINALITIES
        .iter()
        .map(|&c| ((c as f64 * scale).round() as u64).clamp(2, c.max(2)))
        .collect()
}

/// A small deterministic random stream (SplitMix64).
struct Stream(u64);

impl Stream {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.0)
    }
    fn uniform(&mut self) -> f64 {
        unit_interval(self.next())
    }
}

/// A standard normal value from two hash-derived uniforms (Box-Muller).
fn normal_from(bits: u64) -> f64 {
    let u1 = unit_interval(mix64(bits)).max(1e-300);
    let u2 = unit_interval(mix64(bits ^ 0x5555_5555_5555_5555));
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The label rate of the Criteo Kaggle data, which the hidden model's bias is calibrated to.
const TARGET_LABEL_RATE: f64 = 0.256;
/// Rows used to calibrate the bias.
const CALIBRATION_ROWS: u64 = 20_000;

/// The hidden model: effects are hashes of (seed, column, rank), so no table is stored.
struct HiddenModel {
    seed: u64,
    cardinalities: Vec<u64>,
    zipf_exponent: f64,
    bias: f64,
}

impl HiddenModel {
    /// A model whose bias gives about the Criteo label rate, whatever the scale and seed.
    fn calibrated(seed: u64, cardinalities: Vec<u64>, zipf_exponent: f64) -> Self {
        let mut model = Self {
            seed,
            cardinalities,
            zipf_exponent,
            bias: 0.0,
        };
        let mut scratch = Vec::new();
        let logits: Vec<f64> = (0..CALIBRATION_ROWS)
            .map(|row| {
                scratch.clear();
                model.row(u64::MAX - row, &mut scratch).0
            })
            .collect();
        let rate =
            |bias: f64| logits.iter().map(|l| sigmoid(l + bias)).sum::<f64>() / logits.len() as f64;
        let (mut low, mut high) = (-20.0, 20.0);
        for _ in 0..60 {
            let mid = (low + high) / 2.0;
            if rate(mid) < TARGET_LABEL_RATE {
                low = mid;
            } else {
                high = mid;
            }
        }
        model.bias = (low + high) / 2.0;
        model
    }

    fn key(&self, column: usize, rank: u64, slot: u64) -> u64 {
        mix64(self.seed ^ mix64((column as u64) << 48 ^ slot << 40 ^ rank))
    }

    /// Frequent ids carry most of the signal, as in real logs: rare ids cannot be learnt.
    fn decay(rank: u64) -> f64 {
        1.0 / (1.0 + rank as f64 / 50.0).sqrt()
    }

    fn main_effect(&self, column: usize, rank: Option<u64>) -> f64 {
        let strength = if STRONG_COLUMNS.contains(&column) {
            0.5
        } else {
            0.1
        };
        match rank {
            Some(r) => strength * normal_from(self.key(column, r, 0)) * Self::decay(r),
            None => strength * normal_from(self.key(column, u64::MAX >> 24, 0)),
        }
    }

    fn latent(&self, column: usize, rank: Option<u64>) -> [f64; LATENT_DIM] {
        let r = rank.unwrap_or(u64::MAX >> 24);
        let decay = rank.map_or(1.0, Self::decay);
        std::array::from_fn(|k| 0.6 * normal_from(self.key(column, r, 1 + k as u64)) * decay)
    }

    /// A Zipf-like rank in `[0, v)` from a uniform value (inverse of the continuous CDF).
    fn zipf_rank(&self, v: u64, u: f64) -> u64 {
        let s = self.zipf_exponent;
        let top = (v as f64 + 1.0).powf(1.0 - s);
        let x = ((top - 1.0) * u + 1.0).powf(1.0 / (1.0 - s));
        (x as u64).saturating_sub(1).min(v - 1)
    }

    /// The id written for a rank: a bijection on u32 per column, so ids look like hashes.
    fn hex_id(&self, column: usize, rank: u64) -> u32 {
        let key = mix64(self.seed ^ (column as u64 + 1)) as u32;
        let mut x = (rank as u32) ^ key;
        x = (x ^ (x >> 16)).wrapping_mul(0x7feb_352d);
        x = (x ^ (x >> 15)).wrapping_mul(0x846c_a68b);
        x ^ (x >> 16)
    }

    /// Writes row `row` as a TSV line and returns its hidden logit and label.
    fn row(&self, row: u64, line: &mut Vec<u8>) -> (f64, bool) {
        let mut rng = Stream(mix64(self.seed ^ mix64(row ^ 0xc0ff_ee00)));
        let mut logit = self.bias;
        let mut dense_text: [Option<i64>; DENSE_FEATURES] = [None; DENSE_FEATURES];
        let mut z = [0f64; DENSE_FEATURES];
        for j in 0..DENSE_FEATURES {
            let u = rng.uniform();
            let g = normal_from(rng.next());
            if u < DENSE_MISSING[j] {
                continue;
            }
            z[j] = g;
            let mut value = ((DENSE_LOG_CENTRE[j] + g).exp() - 1.0).round() as i64;
            if j == 1 && rng.uniform() < 0.05 {
                value = -1 - (rng.next() % 2) as i64; // I2 goes down to -2 in the real data
            }
            dense_text[j] = Some(value);
        }
        logit += 0.35 * z[0] - 0.3 * z[2] + 0.25 * z[5] + 0.4 * z[4].max(0.0) - 0.2 * z[10];
        let mut ranks = [None; CATEGORICAL_FEATURES];
        for (c, rank) in ranks.iter_mut().enumerate() {
            let u = rng.uniform();
            let v = rng.uniform();
            if u >= CATEGORICAL_MISSING[c] {
                *rank = Some(self.zipf_rank(self.cardinalities[c], v));
            }
            logit += self.main_effect(c, *rank);
        }
        for (a, b) in INTERACTING_PAIRS {
            let (la, lb) = (self.latent(a, ranks[a]), self.latent(b, ranks[b]));
            logit += la.iter().zip(&lb).map(|(x, y)| x * y).sum::<f64>();
        }
        logit += 0.3 * z[0] * self.latent(4, ranks[4])[0];
        let label = rng.uniform() < sigmoid(logit);

        line.push(if label { b'1' } else { b'0' });
        for value in dense_text {
            line.push(b'\t');
            if let Some(v) = value {
                let _ = write!(line, "{v}");
            }
        }
        for (c, rank) in ranks.iter().enumerate() {
            line.push(b'\t');
            if let Some(r) = rank {
                let _ = write!(line, "{:08x}", self.hex_id(c, *r));
            }
        }
        line.push(b'\n');
        (logit, label)
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// AUC from a fine histogram of scores (constant memory, any number of rows).
struct AucHistogram {
    positives: Vec<u64>,
    negatives: Vec<u64>,
    log_loss: f64,
}

const AUC_BINS: usize = 1 << 16;

impl AucHistogram {
    fn new() -> Self {
        Self {
            positives: vec![0; AUC_BINS],
            negatives: vec![0; AUC_BINS],
            log_loss: 0.0,
        }
    }

    fn add(&mut self, probability: f64, label: bool) {
        let bin = ((probability * AUC_BINS as f64) as usize).min(AUC_BINS - 1);
        let p = probability.clamp(1e-12, 1.0 - 1e-12);
        if label {
            self.positives[bin] += 1;
            self.log_loss -= p.ln();
        } else {
            self.negatives[bin] += 1;
            self.log_loss -= (1.0 - p).ln();
        }
    }

    fn auc(&self) -> f64 {
        let (mut negatives_below, mut pairs) = (0u64, 0f64);
        for (p, n) in self.positives.iter().zip(&self.negatives) {
            pairs += *p as f64 * (negatives_below as f64 + *n as f64 / 2.0);
            negatives_below += n;
        }
        let total_p: u64 = self.positives.iter().sum();
        pairs / (total_p as f64 * negatives_below as f64).max(1.0)
    }
}

const BLOCK_ROWS: u64 = 16_384;

/// A block's TSV text and each row's hidden logit and label.
type GeneratedBlock = (Vec<u8>, Vec<(f64, bool)>);

/// Writes `options.rows` rows to `out` (compressed when the name ends in `.gz` or `.zst`) and
/// the report to `<out>.oracle.json`.
pub fn generate(
    options: &SyntheticOptions,
    out: &Path,
    progress: &dyn Progress,
) -> Result<SyntheticReport, DatasetError> {
    if !(options.scale > 0.0 && options.scale <= 1.0) {
        return Err(DatasetError::InvalidOption(format!(
            "--scale must be in (0, 1], got {}",
            options.scale
        )));
    }
    if options.rows == 0 {
        return Err(DatasetError::InvalidOption(
            "--rows must be at least 1".into(),
        ));
    }
    if options.zipf_exponent.is_nan() || options.zipf_exponent <= 1.0 {
        return Err(DatasetError::InvalidOption(
            "the Zipf exponent must exceed 1".into(),
        ));
    }
    if out.is_dir() {
        return Err(DatasetError::invalid(
            out,
            "is a directory, expected a file name",
        ));
    }
    let io = |e| DatasetError::io(out, e);
    let file = BufWriter::with_capacity(1 << 20, File::create(out).map_err(io)?);
    let name = out.to_string_lossy();
    let mut sink: Box<dyn Write> = if name.ends_with(".gz") {
        Box::new(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::fast(),
        ))
    } else if name.ends_with(".zst") {
        Box::new(
            zstd::stream::write::Encoder::new(file, 3)
                .map_err(io)?
                .auto_finish(),
        )
    } else {
        Box::new(file)
    };
    let model = HiddenModel::calibrated(
        options.seed,
        cardinalities(options.scale),
        options.zipf_exponent,
    );
    progress.start("generating rows", Some(options.rows));
    let mut histogram = AucHistogram::new();
    let mut positives = 0u64;
    let blocks = options.rows.div_ceil(BLOCK_ROWS);
    let parallel_blocks = 4 * rayon::current_num_threads() as u64;
    for first_block in (0..blocks).step_by(parallel_blocks as usize) {
        let last_block = (first_block + parallel_blocks).min(blocks);
        let generated: Vec<GeneratedBlock> = (first_block..last_block)
            .into_par_iter()
            .map(|block| {
                let start = block * BLOCK_ROWS;
                let end = (start + BLOCK_ROWS).min(options.rows);
                let mut text = Vec::with_capacity(((end - start) * 240) as usize);
                let outcomes = (start..end).map(|row| model.row(row, &mut text)).collect();
                (text, outcomes)
            })
            .collect();
        for (text, outcomes) in generated {
            sink.write_all(&text).map_err(io)?;
            for (logit, label) in &outcomes {
                histogram.add(sigmoid(*logit), *label);
                positives += u64::from(*label);
            }
            progress.advance(outcomes.len() as u64);
        }
    }
    sink.flush().map_err(io)?;
    drop(sink);
    let report = SyntheticReport {
        options: options.clone(),
        cardinalities: model.cardinalities.clone(),
        rows: options.rows,
        positives,
        oracle_auc: histogram.auc(),
        oracle_log_loss: histogram.log_loss / options.rows as f64,
    };
    let sidecar = SyntheticReport::sidecar_path(out);
    let text = serde_json::to_string_pretty(&report).expect("a report always serialises");
    std::fs::write(&sidecar, text + "\n").map_err(|e| DatasetError::io(&sidecar, e))?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_ranks_stay_in_range_and_favour_the_head() {
        let model = HiddenModel {
            seed: 3,
            cardinalities: vec![],
            zipf_exponent: 1.1,
            bias: 0.0,
        };
        let mut rng = Stream(9);
        let ranks: Vec<u64> = (0..20_000)
            .map(|_| model.zipf_rank(1000, rng.uniform()))
            .collect();
        assert!(ranks.iter().all(|&r| r < 1000));
        let head = ranks.iter().filter(|&&r| r < 10).count();
        let tail = ranks.iter().filter(|&&r| r >= 990).count();
        assert!(head > 20 * tail.max(1), "head {head} tail {tail}");
        assert_eq!(model.zipf_rank(1000, 0.0), 0);
        assert_eq!(model.zipf_rank(1000, 1.0 - 1e-12), 999);
    }

    #[test]
    fn hex_ids_are_distinct_per_rank() {
        let model = HiddenModel {
            seed: 3,
            cardinalities: vec![],
            zipf_exponent: 1.1,
            bias: 0.0,
        };
        let mut ids: Vec<u32> = (0..100_000).map(|r| model.hex_id(2, r)).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 100_000);
    }

    #[test]
    fn histogram_auc_matches_pairwise_definition() {
        let scores = [0.1, 0.4, 0.35, 0.8, 0.65, 0.2];
        let labels = [false, false, true, true, false, true];
        let mut histogram = AucHistogram::new();
        for (s, l) in scores.iter().zip(labels) {
            histogram.add(*s, l);
        }
        // Pairs (positive, negative) ranked right: 0.35>{0.1}, 0.8>{0.1,0.4,0.65}, 0.2>{0.1}.
        assert!((histogram.auc() - 5.0 / 9.0).abs() < 1e-12);
    }
}
