//! The compressor: full tables to digit tables by frequency-weighted least squares,
//! `min sum_i f_i ||E_i - sum_j C_j[d_j(i)]||^2`, solved by block coordinate descent: with the
//! other codebooks fixed, each entry `C_j[c]` is the `f`-weighted mean of the residuals of the
//! ids whose digit `j` is `c`.
//!
//! Ids are already numbered by decreasing frequency by the `datasets` vocabularies, so the
//! low digits separate the frequent ids and no re-ordering is needed before fitting.

use serde::{Deserialize, Serialize};

use crate::{DigitCode, DlrmError, DlrmWeights, EmbeddingKind, Matrix, Result};

/// Weight of an id never seen in the data, relative to one occurrence: small enough not to
/// pull the fit of seen ids, large enough that a codebook entry of only unseen ids is their mean.
const UNSEEN_WEIGHT: f64 = 1e-6;

/// How one table was fitted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableFit {
    /// Index of the table in the model.
    pub table: usize,
    /// The digit code the table was fitted to.
    pub code: DigitCode,
    /// `sum_i f_i ||E_i - E'_i||^2 / sum_i f_i ||E_i||^2`.
    pub relative_error: f64,
    /// Coordinate-descent sweeps run.
    pub sweeps: usize,
    /// Values in the full table.
    pub parameters_before: usize,
    /// Values in the fitted codebooks.
    pub parameters_after: usize,
}

/// Stopping rule of the coordinate descent.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FitOptions {
    /// Most sweeps run, converged or not.
    pub max_sweeps: usize,
    /// Stop when a sweep lowers the relative error by less than this.
    pub tolerance: f64,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            max_sweeps: 100,
            tolerance: 1e-10,
        }
    }
}

/// Fits the stacked codebooks `(l * p) x d` of `code` to a full `V x d` table, weighting id `i`
/// by `frequencies[i]`. Returns the codebooks, the relative error and the sweeps run.
///
/// ```
/// use dlrm::{DigitCode, Matrix};
/// let code = DigitCode { base: 2, digits: 2 };
/// // E[i] = C0[i % 2] + C1[i / 2] with C0 = [0, 1], C1 = [0, 10]: exactly a digit sum.
/// let table = Matrix::new(4, 1, vec![0.0, 1.0, 10.0, 11.0]).unwrap();
/// let (codebooks, error, _) = dlrm::fit_codebooks(&table, &[1.0; 4], code, &Default::default()).unwrap();
/// assert!(error < 1e-12);
/// assert_eq!(codebooks.rows, 4);
/// ```
pub fn fit_codebooks(
    table: &Matrix,
    frequencies: &[f64],
    code: DigitCode,
    options: &FitOptions,
) -> Result<(Matrix, f64, usize)> {
    code.check(table.rows)?;
    if frequencies.len() != table.rows || frequencies.iter().any(|f| !(*f >= 0.0 && f.is_finite()))
    {
        return Err(DlrmError::shape(
            "one finite, non-negative frequency per table row",
        ));
    }
    let (rows, d) = (table.rows, table.cols);
    let digits = code.digits as usize;
    let weights: Vec<f64> = frequencies.iter().map(|f| f + UNSEEN_WEIGHT).collect();
    let mut residual: Vec<f64> = table.data.iter().map(|&v| f64::from(v)).collect();
    let mut codebooks = vec![0f64; code.codebook_rows() * d];
    let mut digit_of = vec![0u32; rows * digits];
    for (i, out) in digit_of.chunks_exact_mut(digits).enumerate() {
        code.decompose(i as u32, out);
    }
    let energy: f64 = residual
        .chunks_exact(d)
        .zip(&weights)
        .map(|(e, w)| w * e.iter().map(|v| v * v).sum::<f64>())
        .sum::<f64>()
        .max(f64::MIN_POSITIVE);
    let error_of = |residual: &[f64]| {
        residual
            .chunks_exact(d)
            .zip(&weights)
            .map(|(r, w)| w * r.iter().map(|v| v * v).sum::<f64>())
            .sum::<f64>()
            / energy
    };
    let mut error = error_of(&residual);
    let mut sweeps = 0;
    while sweeps < options.max_sweeps {
        sweeps += 1;
        for j in 0..digits {
            let mut sums = vec![0f64; code.base as usize * d];
            let mut totals = vec![0f64; code.base as usize];
            for i in 0..rows {
                let c = digit_of[i * digits + j] as usize;
                let row = code.stacked_row(j, c as u32);
                let r = &mut residual[i * d..(i + 1) * d];
                // Put codebook j's current contribution back, then accumulate the weighted mean.
                for (k, value) in r.iter_mut().enumerate() {
                    *value += codebooks[row * d + k];
                    sums[c * d + k] += weights[i] * *value;
                }
                totals[c] += weights[i];
            }
            for c in 0..code.base as usize {
                let row = code.stacked_row(j, c as u32);
                for k in 0..d {
                    codebooks[row * d + k] = if totals[c] > 0.0 {
                        sums[c * d + k] / totals[c]
                    } else {
                        0.0
                    };
                }
            }
            for i in 0..rows {
                let row = code.stacked_row(j, digit_of[i * digits + j]);
                for k in 0..d {
                    residual[i * d + k] -= codebooks[row * d + k];
                }
            }
        }
        let next = error_of(&residual);
        let converged = error - next < options.tolerance;
        error = next;
        if converged {
            break;
        }
    }
    let codebooks = Matrix::new(
        code.codebook_rows(),
        d,
        codebooks.into_iter().map(|v| v as f32).collect(),
    )?;
    Ok((codebooks, error, sweeps))
}

/// Replaces the full tables of `weights` whose target kind is `Digits` by fitted codebooks.
/// `frequencies[t][i]` weights id `i` of table `t` (counts in the training split).
///
/// ```
/// use dlrm::{EmbeddingKind, EmbeddingPolicy, ModelPreset};
/// let config = ModelPreset::Uci.config(1, &[40]);
/// let weights = dlrm::Dlrm::new(&config, 1).unwrap().to_weights().unwrap();
/// let targets = [EmbeddingPolicy::Digits { max_inputs: 16 }.kind_for(40)];
/// let (compressed, fits) = dlrm::compress(&weights, &[vec![1.0; 40]], &targets, &Default::default()).unwrap();
/// assert!(matches!(compressed.config.tables[0].kind, EmbeddingKind::Digits(_)));
/// assert!(fits[0].parameters_after < fits[0].parameters_before);
/// ```
pub fn compress(
    weights: &DlrmWeights,
    frequencies: &[Vec<f64>],
    targets: &[EmbeddingKind],
    options: &FitOptions,
) -> Result<(DlrmWeights, Vec<TableFit>)> {
    weights.validate()?;
    let tables = &weights.config.tables;
    if frequencies.len() != tables.len() || targets.len() != tables.len() {
        return Err(DlrmError::shape(
            "one frequency list and one target kind per table",
        ));
    }
    let mut out = weights.clone();
    let mut fits = Vec::new();
    for (t, (spec, target)) in tables.iter().zip(targets).enumerate() {
        let (EmbeddingKind::Full, EmbeddingKind::Digits(code)) = (spec.kind, *target) else {
            continue;
        };
        let (codebooks, relative_error, sweeps) =
            fit_codebooks(&weights.tables[t], &frequencies[t], code, options)?;
        fits.push(TableFit {
            table: t,
            code,
            relative_error,
            sweeps,
            parameters_before: weights.tables[t].data.len(),
            parameters_after: codebooks.data.len(),
        });
        out.tables[t] = codebooks;
        out.config.tables[t].kind = *target;
    }
    out.validate()?;
    Ok((out, fits))
}

/// How often each id of each table occurs in `data` (for [`compress`]).
///
/// ```
/// let data = datasets::SplitData {
///     labels: vec![0, 1, 1], dense: vec![], categorical: vec![2, 2, 0],
///     dense_names: vec![], categorical_names: vec!["c".into()],
/// };
/// assert_eq!(dlrm::id_frequencies(&data, &[3]).unwrap(), vec![vec![1.0, 0.0, 2.0]]);
/// ```
pub fn id_frequencies(data: &datasets::SplitData, table_rows: &[usize]) -> Result<Vec<Vec<f64>>> {
    if data.categorical_width() != table_rows.len() {
        return Err(DlrmError::shape("one table size per categorical column"));
    }
    let mut counts: Vec<Vec<f64>> = table_rows.iter().map(|&v| vec![0.0; v]).collect();
    for r in 0..data.rows() {
        for (t, &id) in data.categorical_row(r).iter().enumerate() {
            let slot = counts[t]
                .get_mut(id as usize)
                .ok_or_else(|| DlrmError::shape(format!("id {id} outside table {t}")))?;
            *slot += 1.0;
        }
    }
    Ok(counts)
}
