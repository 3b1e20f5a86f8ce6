//! Post-training quantization: float weights and calibration data to a [`QuantizedModel`].
//!
//! Layer by layer, on the integer pipeline itself (so each layer is calibrated on the
//! accumulators the reference will really produce): weights are scaled by their inputs' scales
//! into one integer grid per layer, the accumulator range `[lo, hi]` and the activation scale
//! are read from the calibration rows with a margin, and the weight and lookup-table bits are
//! chosen so that the bootstrap noise (weight L2 norm times bootstrap output noise, plus the
//! modulus-switch noise) stays `min_clean_sigmas` standard deviations inside half a box.
//!
//! The first top layer reads two kinds of inputs: the bottom MLP's bootstrap outputs, whose
//! noise the weights amplify, and the exact embedding sums, which carry none. Its weights on
//! the embedding columns get `lookup_headroom_bits` more bits than the noise budget allows the
//! others; the bottom MLP's last table outputs its activations multiplied by the same power of
//! two (a table's entries cost nothing in noise) so that both kinds share one accumulator grid.
//!
//! A dot model's bottom output takes as many levels as its embedding entries, and the products
//! of its pairs come from one square table covering every sum of two vectors
//! ([`DotInteraction`](crate::DotInteraction), [`DotLayout`](crate::DotLayout)): `(a + b)^2 - a^2 - b^2 = 2ab` holds for any integers, so
//! each vector keeps its own unit and a pair feature's unit is the product of its two vectors'
//! units.
//!
//! The pieces, in the order a quantization runs them:
//! - `config.rs`: [`QuantizeConfig`], the settings, and their checks.
//! - `widths.rs`: the width searches (embedding, square, square-table widths), each trial a
//!   full pass judged by its logit error.
//! - `pass.rs`: one pass at a fixed embedding width, layer by layer.
//! - `calibration.rs`: the calibration rows (integers, float values, scales) on their walk
//!   through the model.
//! - `layers.rs`: one layer quantized on those rows; `grids.rs`: the grids it is put on;
//!   `compensate.rs`: error-compensating rounding of a layer's weights (dot models' pair
//!   features, with `compensated_rounding`).
//! - `squares.rs`: the dot interaction's square table.
//! - `sanitise.rs`: the output sanitiser's grid, when the settings ask for one.
//! - `report.rs`: [`QuantizeReport`], what was chosen, and its printed form.

mod calibration;
mod compensate;
mod config;
mod grids;
mod layers;
mod pass;
mod report;
mod sanitise;
mod squares;
mod widths;

pub use config::QuantizeConfig;
pub use report::{LayerChoice, QuantizeReport, SquareChoice, WidthTrial};

use crate::{DlrmWeights, QuantizedModel, Result};

/// Quantizes a model, calibrating on up to all rows of `calibration`.
///
/// ```
/// let config = dlrm::ModelPreset::Uci.config(2, &[3]);
/// let weights = dlrm::Dlrm::new(&config, 1).unwrap().to_weights().unwrap();
/// let data = datasets::SplitData {
///     labels: vec![1, 0, 1], dense: vec![0.5, -1.0, 1.5, 0.2, -0.3, 0.0], categorical: vec![0, 1, 2],
///     dense_names: vec!["a".into(), "b".into()], categorical_names: vec!["c".into()],
/// };
/// let (model, report) = dlrm::quantize(&weights, &data, &dlrm::QuantizeConfig::default()).unwrap();
/// assert_eq!(report.layers.len(), 4);
/// assert_eq!(report.embedding_widths.len(), 7); // 2..=8 bits
/// let kept = report.embedding_bits.unwrap();
/// assert!(model.tables.iter().all(|t| t.value_bits == kept));
/// let exact = model.logit(&[0.5, -1.0], &[0], dlrm::Execution::Exact, 0).unwrap();
/// let float = weights.forward(&[0.5, -1.0], &[0]).unwrap() as f64;
/// assert!((exact - float).abs() < 0.5);
/// ```
pub fn quantize(
    weights: &DlrmWeights,
    calibration: &datasets::SplitData,
    config: &QuantizeConfig,
) -> Result<(QuantizedModel, QuantizeReport)> {
    weights.validate()?;
    config.validate()?;
    widths::search(weights, calibration, config)
}
