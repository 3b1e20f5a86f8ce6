//! Quantizing one layer on the calibration rows: the client's input scales, a dense layer's
//! integer weights, a hidden layer's activation table (every clean width tried), the output
//! layer's weight width, and an embedding table's integer entries.

use crate::activation::ActivationTable;
use crate::integer_model::{InputQuantizer, IntLayer, IntTable, value_limit};
use crate::{DenseLayer, Matrix, NoiseModel};

use super::calibration::Calibration;
use super::compensate::{Compensation, Rounder};
use super::config::QuantizeConfig;
use super::grids::{ActivationGrid, WeightGrid, boxes_covering, quantile, range};
use super::report::LayerChoice;

/// Per-column input scales covering the `activation_quantile` of `|x|` with margin.
pub(super) fn calibrate_input(
    data: &datasets::SplitData,
    config: &QuantizeConfig,
) -> InputQuantizer {
    let width = data.dense_width();
    let scales = (0..width)
        .map(|j| {
            let column: Vec<f64> = (0..data.rows())
                .map(|r| f64::from(data.dense_row(r)[j]).abs())
                .collect();
            let bound = quantile(column, config.activation_quantile) * (1.0 + config.range_margin);
            bound.max(1e-6) / value_limit(config.input_bits) as f64
        })
        .collect();
    InputQuantizer {
        bits: config.input_bits,
        scales,
    }
}

/// The integer entries of an embedding table of `bits` signed bits, on one grid as fine as lets
/// its largest entry fit, and the real value of one unit.
pub(super) fn integer_table(table: &Matrix, bits: u32) -> (IntTable, f64) {
    let max = table
        .data
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()))
        .max(1e-12);
    let scale = f64::from(max) / value_limit(bits) as f64;
    let values = table
        .data
        .iter()
        .map(|&v| (f64::from(v) / scale).round() as i32)
        .collect();
    let int_table = IntTable {
        value_bits: bits,
        values,
    };
    (int_table, scale)
}

/// Integer weights of `layer` for inputs with real scales `scales`: `W_eff = W diag(scales)`
/// on one grid of step `acc_scale`, as fine as lets every weight fit its bits (`weight_bits`,
/// or more on the grid's lookup columns); returns the layer (no activation yet) and
/// `acc_scale`, the real value of one accumulator unit. Each weight is rounded to its nearest
/// integer, or with `compensation`, to the integers that keep the calibration accumulators
/// closest (`compensate.rs`).
pub(super) fn integer_layer(
    layer: &DenseLayer,
    scales: &[f64],
    grid: &WeightGrid,
    weight_bits: u32,
    compensation: Option<&Rounder>,
) -> (IntLayer, f64) {
    let w = &layer.weight;
    let effective: Vec<f64> = w
        .data
        .iter()
        .enumerate()
        .map(|(i, &v)| f64::from(v) * scales[i % w.cols])
        .collect();
    let first_lookup = w.cols - grid.lookup_columns;
    let lookup_bits = grid.lookup_bits(weight_bits);
    let limit = |column: usize| match lookup_bits {
        Some(bits) if column >= first_lookup => value_limit(bits),
        _ => value_limit(weight_bits),
    } as f64;
    let acc_scale = effective
        .iter()
        .enumerate()
        .fold(0f64, |m, (i, v)| m.max(v.abs() / limit(i % w.cols)))
        .max(1e-12);
    let bias = layer.bias.iter().map(|&b| f64::from(b) / acc_scale);
    let (weights, bias) = match compensation {
        None => (
            effective
                .iter()
                .map(|v| (v / acc_scale).round() as i32)
                .collect(),
            bias.map(|b| b.round() as i64).collect(),
        ),
        Some(compensation) => {
            let (mut weights, mut biases) = (Vec::with_capacity(effective.len()), Vec::new());
            for (row, b) in effective.chunks_exact(w.cols).zip(bias) {
                let real: Vec<f64> = row.iter().map(|v| v / acc_scale).collect();
                let (q, qb) = compensation.round_row(&real, b, limit);
                weights.extend(q);
                biases.push(qb);
            }
            (weights, biases)
        }
    };
    let int_layer = IntLayer {
        rows: w.rows,
        cols: w.cols,
        weight_bits: lookup_bits.unwrap_or(weight_bits),
        weights,
        bias,
        activation: None,
    };
    (int_layer, acc_scale)
}

/// One hidden layer of the calibration walk (bottom or top MLP).
pub(super) struct HiddenStep<'a> {
    pub(super) name: String,
    pub(super) layer: &'a DenseLayer,
    /// Which inputs carry bootstrap noise (none for a layer fed by the client's exact inputs).
    pub(super) grid: WeightGrid,
    pub(super) output: ActivationGrid,
    /// Whether the weights are also tried with error-compensating rounding.
    pub(super) compensate: bool,
}

/// Quantizes one hidden layer on the calibration rows (its bias corrected towards the float
/// activations) and moves the rows on to its activations.
pub(super) fn quantize_hidden(
    step: &HiddenStep,
    rows: &mut Calibration,
    config: &QuantizeConfig,
) -> (IntLayer, LayerChoice) {
    let corrected = rows.bias_corrected(step.layer);
    let float_outputs = rows.float_layer(step.layer);
    let (int_layer, out_scale, choice) =
        best_hidden(step, &corrected, rows, &float_outputs, config);
    rows.advance(&int_layer, float_outputs, out_scale);
    (int_layer, choice)
}

/// The hidden layer (`layer`: the step's layer with its bias corrected) on the rows' integer
/// inputs. Every (weight bits, table bits) pair whose bootstraps stay clean is tried; the pair
/// whose activations are closest (mean squared error, in real units) to the float layer's
/// outputs wins. Returns the layer, its output scale and the choice.
fn best_hidden(
    step: &HiddenStep,
    layer: &DenseLayer,
    rows: &Calibration,
    float_outputs: &[Vec<f64>],
    config: &QuantizeConfig,
) -> (IntLayer, f64, LayerChoice) {
    let (scales, x) = (rows.scales(), rows.integers());
    let (name, grid, output) = (&step.name, &step.grid, step.output);
    let noise = &config.noise;
    let clean = |norm: f64, lut_bits: u32| {
        noise.box_width(lut_bits) / 2.0 >= config.min_clean_sigmas * noise.bootstrap_input_sd(norm)
    };
    // What the integer layer should reproduce: the float model's activations.
    let target: Vec<f64> = float_outputs.iter().flatten().copied().collect();
    let out_scale =
        quantile(target.clone(), config.activation_quantile).max(1e-12) / output.levels();
    let compensation = step.compensate.then(|| Compensation::of(x)).flatten();
    // One candidate: the weights at `weight_bits` rounded to nearest, or with `compensation`
    // for each table size (the noise its weights amplify depends on the boxes), each table
    // size whose bootstraps stay clean (or `lut_bits`).
    let consider = |best: &mut Option<(f64, LayerChoice, IntLayer)>,
                    weight_bits: u32,
                    lut_bits: Option<u32>,
                    compensation: Option<&Compensation>| {
        let (nearest, acc_scale) = integer_layer(layer, scales, grid, weight_bits, None);
        let nearest_norm = nearest.max_noise_norm(&grid.noises);
        let nearest_accumulators: Vec<i64> =
            x.iter().flat_map(|row| nearest.accumulate(row)).collect();
        let luts: Vec<u32> = match lut_bits {
            Some(bits) => vec![bits],
            None => (config.activation_bits..=config.max_lut_bits)
                .filter(|&b| clean(nearest_norm, b))
                .collect(),
        };
        for lut_bits in luts {
            let (mut int_layer, accumulators, norm) = match compensation {
                None => (nearest.clone(), nearest_accumulators.clone(), nearest_norm),
                Some(compensation) => {
                    let boxes = boxes_covering(range(&nearest_accumulators), lut_bits, config);
                    let noises = amplified_noise(&grid.noises, boxes.1, lut_bits, noise);
                    let Some(rounder) = compensation.rounder(&noises) else {
                        continue;
                    };
                    let (compensated, _) =
                        integer_layer(layer, scales, grid, weight_bits, Some(&rounder));
                    let norm = compensated.max_noise_norm(&grid.noises);
                    if !clean(norm, lut_bits) {
                        continue;
                    }
                    let accumulators = x
                        .iter()
                        .flat_map(|row| compensated.accumulate(row))
                        .collect();
                    (compensated, accumulators, norm)
                }
            };
            let table = activation_table(
                &accumulators,
                acc_scale,
                out_scale,
                lut_bits,
                output,
                config,
            );
            let error: f64 = accumulators
                .iter()
                .zip(&target)
                .map(|(&a, &t)| (table.apply(a) as f64 * out_scale - t).powi(2))
                .sum();
            if best.as_ref().is_some_and(|(e, _, _)| *e <= error) {
                continue;
            }
            let half = (1i64 << table.box_shift) / 2;
            let clamped = accumulators
                .iter()
                .filter(|&&a| a < table.lo - half || a >= table.hi() + half)
                .count();
            let choice = LayerChoice {
                name: name.into(),
                weight_bits,
                lookup_weight_bits: grid.lookup_bits(weight_bits),
                lut_bits: Some(lut_bits),
                max_noisy_row_norm: norm,
                wrong_box_rate: noise.wrong_box_rate(noise.bootstrap_input_sd(norm), lut_bits),
                clamped_fraction: clamped as f64 / accumulators.len().max(1) as f64,
                accumulator_scale: acc_scale,
                activation_scale: Some(out_scale),
                compensated: compensation.is_some(),
            };
            int_layer.activation = Some(table);
            *best = Some((error, choice, int_layer.clone()));
        }
    };
    let mut best = None;
    for weight_bits in 2..=config.max_weight_bits {
        consider(&mut best, weight_bits, None, None);
        if let Some(compensation) = &compensation {
            consider(&mut best, weight_bits, None, Some(compensation));
        }
    }
    if best.is_none() {
        // Nothing is clean: the smallest weights and table, and simulate mode shows the cost.
        consider(&mut best, 2, Some(config.activation_bits), None);
    }
    let (_, choice, int_layer) = best.expect("one candidate is always considered");
    (int_layer, out_scale, choice)
}

/// The variance, in accumulator units per squared integer weight, of the bootstrap output noise
/// each input column carries (`noises`: how many bootstrap outputs it sums) once a table of
/// `2^lut_bits` boxes of `2^box_shift` accumulator units reads the accumulator: what
/// compensated rounding weighs against the calibration rows' rounding error.
fn amplified_noise(noises: &[f64], box_shift: u32, lut_bits: u32, noise: &NoiseModel) -> Vec<f64> {
    let unit = (1u64 << (box_shift + lut_bits)) as f64 / f64::from(noise.polynomial_size);
    let sd = noise.bootstrap_output_sd * unit;
    noises.iter().map(|n| n * sd * sd).collect()
}

/// The activation table for these calibration accumulators: the range `[min, max]` widened by
/// the margin on each side, centred in `2^lut_bits` boxes of the smallest power-of-two width
/// that covers it; entry `k` is the ReLU of box centre `k` in units of `out_scale`, clamped.
fn activation_table(
    accumulators: &[i64],
    acc_scale: f64,
    out_scale: f64,
    lut_bits: u32,
    output: ActivationGrid,
    config: &QuantizeConfig,
) -> ActivationTable {
    let (lo, box_shift) = boxes_covering(range(accumulators), lut_bits, config);
    let levels = output.levels();
    let entries = (0..1i64 << lut_bits)
        .map(|k| {
            let centre = (lo + (k << box_shift)) as f64 * acc_scale;
            (centre.max(0.0) / out_scale).round().min(levels) as u32
        })
        .collect();
    ActivationTable {
        lo,
        box_shift,
        lut_bits,
        output_bits: output.bits,
        entries,
    }
}

/// The quantized output layer and what was chosen for it.
pub(super) struct OutputChoice {
    pub(super) layer: IntLayer,
    pub(super) logit_scale: f64,
    /// Signed bits of the logit numerator (its calibrated range, with the margin).
    pub(super) acc_bits: u32,
    pub(super) weight_bits: u32,
    /// Integer weight norm over the bootstrap-fed columns.
    pub(super) norm: f64,
}

/// The output layer at the weight width whose calibration logits are closest to the float
/// layer's, counting the bootstrap noise the logit carries: finer weights follow the float
/// layer better but multiply the noise of the activations they read, and no bootstrap rounds
/// the output's noise away (near zero it flips the predicted class). Its bias is corrected as a
/// hidden layer's.
pub(super) fn quantize_output(
    layer: &DenseLayer,
    rows: &Calibration,
    grid: &WeightGrid,
    config: &QuantizeConfig,
) -> OutputChoice {
    let corrected = rows.bias_corrected(layer);
    let (scales, x, xf) = (rows.scales(), rows.integers(), rows.floats());
    let w = &layer.weight;
    let float: Vec<f64> = xf
        .iter()
        .map(|row| {
            let dot: f64 = w
                .data
                .iter()
                .zip(row)
                .map(|(&w, &v)| f64::from(w) * v)
                .sum();
            dot + f64::from(layer.bias[0])
        })
        .collect();
    let mut best: Option<(f64, OutputChoice)> = None;
    for weight_bits in 2..=config.max_weight_bits {
        let (output, logit_scale) = integer_layer(&corrected, scales, grid, weight_bits, None);
        let numerators: Vec<i64> = x.iter().map(|row| output.accumulate(row)[0]).collect();
        let largest = numerators
            .iter()
            .map(|n| n.unsigned_abs())
            .max()
            .unwrap_or(0) as f64
            * (1.0 + config.range_margin);
        let acc_bits = (largest.max(1.0).log2().ceil() as u32 + 1).min(62);
        let norm = output.max_noise_norm(&grid.noises);
        let noise = config.noise.accumulator_sd(norm, acc_bits) * logit_scale;
        let rounding = numerators
            .iter()
            .zip(&float)
            .map(|(&n, f)| (n as f64 * logit_scale - f).powi(2))
            .sum::<f64>()
            / x.len().max(1) as f64;
        let error = rounding + noise * noise;
        if best.as_ref().is_none_or(|(least, _)| error < *least) {
            let choice = OutputChoice {
                layer: output,
                logit_scale,
                acc_bits,
                weight_bits,
                norm,
            };
            best = Some((error, choice));
        }
    }
    best.expect("at least one weight width").1
}
