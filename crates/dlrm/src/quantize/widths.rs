//! The width searches: the embedding width, then (dot models) the square width at the kept
//! embedding width, then finer square tables at the kept square width. Every trial is a full
//! quantization pass judged by its logit error against the float model; the best one is kept
//! (the first of equals).

use rayon::prelude::*;

use crate::integer_model::QuantizedModel;
use crate::reference::Execution;
use crate::{DlrmWeights, Interaction, MAX_VALUE_BITS, Result};

use super::config::QuantizeConfig;
use super::pass::quantize_pass;
use super::report::{QuantizeReport, WidthTrial};

/// Rows of the calibration data the widths are chosen on.
const WIDTH_SELECTION_ROWS: usize = 4000;

/// The model every width search keeps, with its report's width searches filled in.
pub(super) fn search(
    weights: &DlrmWeights,
    calibration: &datasets::SplitData,
    config: &QuantizeConfig,
) -> Result<(QuantizedModel, QuantizeReport)> {
    if weights.config.tables.is_empty() {
        return quantize_pass(weights, calibration, config, config.embedding_bits);
    }
    let mut search = Search {
        weights,
        calibration,
        best: None,
    };
    let embedding_widths = search.embedding_widths(config)?;
    let (kept_mse, _, report) = search.best.as_ref().expect("at least one width was tried");
    let (kept_mse, embedding_bits) = (*kept_mse, report.embedding_bits);
    let embedding_bits = embedding_bits.expect("the model has tables");
    let square_widths = if weights.config.interaction == Interaction::Dot {
        search.square_widths(config, embedding_bits, kept_mse)?
    } else {
        Vec::new()
    };
    let square_tables = search.square_tables(config, embedding_bits)?;
    let (_, model, report) = search.best.expect("at least one width was tried");
    Ok((
        model,
        QuantizeReport {
            embedding_widths,
            square_widths,
            square_tables,
            ..report
        },
    ))
}

/// A trial: its logit error, its model and its report.
type Trial = (f64, QuantizedModel, QuantizeReport);

/// The trials so far and the best of them.
struct Search<'a> {
    weights: &'a DlrmWeights,
    calibration: &'a datasets::SplitData,
    best: Option<Trial>,
}

impl Search<'_> {
    /// Every embedding width from 2 bits to `config.embedding_bits`.
    fn embedding_widths(&mut self, config: &QuantizeConfig) -> Result<Vec<WidthTrial>> {
        let mut widths = Vec::new();
        for bits in 2..=config.embedding_bits {
            let candidate = self.trial(config, bits)?;
            widths.push(WidthTrial {
                bits,
                logit_mse: candidate.0,
            });
            self.keep_best(candidate);
        }
        Ok(widths)
    }

    /// Every square width from 2 bits to 3 more than `config.square_bits`, at the kept
    /// embedding width (whose model, at `config.square_bits`, has error `kept_mse`).
    fn square_widths(
        &mut self,
        config: &QuantizeConfig,
        embedding_bits: u32,
        kept_mse: f64,
    ) -> Result<Vec<WidthTrial>> {
        let mut widths = Vec::new();
        let widest = (config.square_bits + 3).min(MAX_VALUE_BITS);
        for square_bits in 2..=widest {
            // The width the embedding width was chosen at is already the kept model.
            let logit_mse = if square_bits == config.square_bits {
                kept_mse
            } else {
                let config = QuantizeConfig {
                    square_bits,
                    ..config.clone()
                };
                let candidate = self.trial(&config, embedding_bits)?;
                let logit_mse = candidate.0;
                self.keep_best(candidate);
                logit_mse
            };
            widths.push(WidthTrial {
                bits: square_bits,
                logit_mse,
            });
        }
        Ok(widths)
    }

    /// Finer square tables (one and two more bits) at the kept square width, while its boxes
    /// hold several integers; by table bits, the kept table first.
    fn square_tables(
        &mut self,
        config: &QuantizeConfig,
        embedding_bits: u32,
    ) -> Result<Vec<WidthTrial>> {
        let mut tables = Vec::new();
        let kept_square = self.best.as_ref().and_then(|(mse, model, report)| {
            let table = &model.dot.as_ref()?.square;
            let choice = report.square.as_ref()?;
            (choice.box_shift > 0).then_some((*mse, table.lut_bits, table.output_bits))
        });
        let Some((kept_mse, lut_bits, square_bits)) = kept_square else {
            return Ok(tables);
        };
        tables.push(WidthTrial {
            bits: lut_bits,
            logit_mse: kept_mse,
        });
        for finer in 1..=2 {
            let config = QuantizeConfig {
                square_bits,
                square_finer_bits: finer,
                ..config.clone()
            };
            let candidate = self.trial(&config, embedding_bits)?;
            let Some(tried) = candidate.1.dot.as_ref().map(|d| d.square.lut_bits) else {
                continue;
            };
            if tables.iter().any(|t| t.bits == tried) {
                continue; // no finer table fits
            }
            tables.push(WidthTrial {
                bits: tried,
                logit_mse: candidate.0,
            });
            self.keep_best(candidate);
        }
        Ok(tables)
    }

    /// One quantization pass and its logit error.
    fn trial(&self, config: &QuantizeConfig, embedding_bits: u32) -> Result<Trial> {
        let (model, report) =
            quantize_pass(self.weights, self.calibration, config, embedding_bits)?;
        let logit_mse = logit_error(self.weights, &model, self.calibration)?;
        Ok((logit_mse, model, report))
    }

    /// Keeps `candidate` if its error is below the best's.
    fn keep_best(&mut self, candidate: Trial) {
        if self
            .best
            .as_ref()
            .is_none_or(|(least, ..)| candidate.0 < *least)
        {
            self.best = Some(candidate);
        }
    }
}

/// Mean squared difference between the integer and the float logits on the first calibration
/// rows, with the bootstrap noise the integer logit carries: a dot model's logits under
/// `simulate` (the widths decide how its bottom output's misreads spread through the pair
/// features and how often its squares are misread), other models' exact logits plus the
/// variance of the noise the output layer keeps.
fn logit_error(
    weights: &DlrmWeights,
    model: &QuantizedModel,
    calibration: &datasets::SplitData,
) -> Result<f64> {
    let (execution, output_noise) = match model.dot {
        Some(_) => (Execution::Simulate { seed: 0x5eed }, 0.0),
        None => (
            Execution::Exact,
            model.output_noise_sd() * model.logit_scale,
        ),
    };
    let rows = calibration.rows().min(WIDTH_SELECTION_ROWS);
    let squares = (0..rows)
        .into_par_iter()
        .map(|r| {
            let (dense, ids) = (calibration.dense_row(r), calibration.categorical_row(r));
            let integer = model.logit(dense, ids, execution, r as u64)?;
            let float = f64::from(weights.forward(dense, ids)?);
            Ok((integer - float).powi(2))
        })
        .collect::<Result<Vec<f64>>>()?;
    Ok(squares.iter().sum::<f64>() / rows.max(1) as f64 + output_noise * output_noise)
}
