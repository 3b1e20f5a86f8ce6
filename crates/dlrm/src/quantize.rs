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
//! ([`DotInteraction`], [`DotLayout`]): `(a + b)^2 - a^2 - b^2 = 2ab` holds for any integers, so
//! each vector keeps its own unit and a pair feature's unit is the product of its two vectors'
//! units.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::activation::ActivationTable;
use crate::dot::{DotInteraction, DotLayout};
use crate::quant::{
    Execution, InputQuantizer, IntLayer, IntTable, QuantizedModel, column_noises, value_limit,
};
use crate::weights::dot_pairs;
use crate::{
    DenseLayer, DlrmError, DlrmWeights, Interaction, MAX_LUT_BITS, MAX_VALUE_BITS, NoiseModel,
    QUANTIZED_FORMAT_VERSION, Result,
};

/// Settings of [`quantize`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QuantizeConfig {
    /// Signed bits of the client's dense inputs.
    pub input_bits: u32,
    /// Most signed bits of the weights; a layer gets fewer when its noise budget demands.
    pub max_weight_bits: u32,
    /// Bits of every hidden activation (the next layer's inputs), `[0, 2^bits)`.
    pub activation_bits: u32,
    /// Most lookup-table bits (boxes `2^lut_bits`), at least `activation_bits`.
    pub max_lut_bits: u32,
    /// Most signed bits of the embedding codebook entries. The quantizer tries every width from
    /// 2 up to this and keeps the one whose integer model tracks the float model best on the
    /// calibration rows: the entries and the first top layer's weights that read them share
    /// that layer's accumulator grid, so finer entries leave coarser weights.
    pub embedding_bits: u32,
    /// Bits the first top layer's weights on embedding columns get beyond its other weights
    /// (those columns carry no bootstrap noise); the bottom MLP's last activations are scaled
    /// by `2^lookup_headroom_bits` to make room. 0 puts every column on one weight grid
    /// (measured on the Criteo head: logit error at 8-bit embeddings 0.153 with 0, 0.009 with 6).
    /// Concat models only: a dot model's first top layer reads no embedding sums.
    pub lookup_headroom_bits: u32,
    /// Bits of the dot interaction's squares (their table's outputs; dot models only) at which
    /// the embedding width is chosen; every square width from 2 to 3 bits more is then tried at
    /// that embedding width and the one whose integer model tracks the float model best kept.
    /// Squares are exact integers while they fit; coarser squares leave the next layer's weights
    /// on them finer.
    pub square_bits: u32,
    /// Bits the square table gets beyond the fewest clean ones when its boxes hold several
    /// integers (dot models). Sums then lie anywhere in their boxes, misread either way, and
    /// finer boxes make each misread and each rounding a smaller step; the quantizer tries 0, 1
    /// and 2 at the kept square width and keeps the best (simulated logit error).
    pub square_finer_bits: u32,
    /// Widens calibrated ranges by this fraction on each side.
    pub range_margin: f64,
    /// Activation scales cover this quantile of the calibration activations (the rest clamp).
    pub activation_quantile: f64,
    /// Bootstraps must keep half a box at least this many noise standard deviations wide.
    /// Below 1 a bootstrap often reads a neighbouring box, but of fine boxes: the default 0.8
    /// (with 7-bit activations in 8-bit tables) leaves the encrypted logits closer to the
    /// reference's than 3 sigmas of coarse boxes do, because most accumulators lie between
    /// box centres, where even clean boxes are read either way (measured with `simulate` on
    /// generated Criteo data: the class kept on 99.1% of rows instead of 98.4%).
    pub min_clean_sigmas: f64,
    pub noise: NoiseModel,
}

impl Default for QuantizeConfig {
    fn default() -> Self {
        Self {
            input_bits: 8,
            max_weight_bits: 6,
            activation_bits: 7,
            max_lut_bits: 8,
            embedding_bits: 8,
            lookup_headroom_bits: 6,
            square_bits: 7,
            square_finer_bits: 0,
            range_margin: 0.1,
            activation_quantile: 0.999,
            min_clean_sigmas: 0.8,
            noise: NoiseModel::TFHE_2_2,
        }
    }
}

/// What the quantizer chose for one layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerChoice {
    pub name: String,
    /// Bits of the weights on bootstrap-fed and client inputs.
    pub weight_bits: u32,
    /// Bits of the weights on embedding columns, where the layer reads them.
    pub lookup_weight_bits: Option<u32>,
    /// `None` for the output layer.
    pub lut_bits: Option<u32>,
    /// Largest row L2 norm over the columns fed by bootstraps.
    pub max_noisy_row_norm: f64,
    /// Probability that the noisiest row's bootstrap reads a neighbouring box.
    pub wrong_box_rate: f64,
    /// Calibration accumulators outside the table's boxes (clamped).
    pub clamped_fraction: f64,
    /// Real value of one accumulator unit.
    pub accumulator_scale: f64,
    /// Real value of one activation level (before the lookup headroom); `None` for the output.
    pub activation_scale: Option<f64>,
}

/// What [`quantize`] chose, for the user to see where precision goes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuantizeReport {
    /// One entry per layer, bottom MLP first, the output layer last.
    pub layers: Vec<LayerChoice>,
    /// Every embedding width tried, with its error; empty for a model without tables.
    pub embedding_widths: Vec<WidthTrial>,
    /// The width kept (the smallest error), if the model has tables.
    pub embedding_bits: Option<u32>,
    /// Real value of one integer unit of each table's entries.
    pub embedding_scales: Vec<f64>,
    /// The lookup headroom applied to the bottom MLP's last table: its entries are multiples
    /// of `2^lookup_headroom_bits` (0 without tables, and for dot models).
    pub lookup_headroom_bits: u32,
    /// The dot interaction's square table (`None` for concat models).
    #[serde(default)]
    pub square: Option<SquareChoice>,
    /// Every square width tried at the kept embedding width (dot models).
    #[serde(default)]
    pub square_widths: Vec<WidthTrial>,
    /// Every square-table size tried at the kept square width (dot models whose square boxes
    /// hold several integers), by table bits.
    #[serde(default)]
    pub square_tables: Vec<WidthTrial>,
}

/// What the quantizer chose for a dot model's square table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SquareChoice {
    pub lut_bits: u32,
    /// Probability that a square of a pair with the bottom output (whose bootstrap noise it
    /// carries) reads a neighbouring box; the other pairs only carry the modulus switch's.
    pub wrong_box_rate: f64,
    /// `log2` of the boxes' width: 0 when every sum and difference has its own box, and the
    /// squares are exact (with `square_unit` 1).
    pub box_shift: u32,
    /// The squares' unit: the table returns `round(square / square_unit)`.
    pub square_unit: f64,
    /// Real value of one unit of each pair feature, in the top MLP's input order.
    pub pair_scales: Vec<f64>,
}

/// One embedding width the quantizer tried.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct WidthTrial {
    pub bits: u32,
    /// Mean squared difference between the integer and the float logits on the first 4000
    /// calibration rows.
    pub logit_mse: f64,
}

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
    validate_config(config)?;
    if weights.config.tables.is_empty() {
        return quantize_with_embedding_bits(weights, calibration, config, config.embedding_bits);
    }
    let trial = |config: &QuantizeConfig, embedding_bits: u32| {
        let (model, report) =
            quantize_with_embedding_bits(weights, calibration, config, embedding_bits)?;
        let logit_mse = logit_error(weights, &model, calibration)?;
        Ok::<_, DlrmError>((logit_mse, model, report))
    };
    type Trial = (f64, QuantizedModel, QuantizeReport);
    let keep_best = |best: &mut Option<Trial>, candidate: Trial| {
        if best.as_ref().is_none_or(|(least, ..)| candidate.0 < *least) {
            *best = Some(candidate);
        }
    };
    let mut best = None;
    let mut embedding_widths = Vec::new();
    for bits in 2..=config.embedding_bits {
        let candidate = trial(config, bits)?;
        embedding_widths.push(WidthTrial {
            bits,
            logit_mse: candidate.0,
        });
        keep_best(&mut best, candidate);
    }
    let (kept_mse, _, report) = best.as_ref().expect("at least one width was tried");
    let (kept_mse, embedding_bits) = (*kept_mse, report.embedding_bits);
    let mut square_widths = Vec::new();
    if weights.config.interaction == Interaction::Dot {
        let embedding_bits = embedding_bits.expect("the model has tables");
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
                let candidate = trial(&config, embedding_bits)?;
                let logit_mse = candidate.0;
                keep_best(&mut best, candidate);
                logit_mse
            };
            square_widths.push(WidthTrial {
                bits: square_bits,
                logit_mse,
            });
        }
    }
    // Finer square tables at the kept square width, while its boxes hold several integers.
    let mut square_tables = Vec::new();
    let kept_square = best.as_ref().and_then(|(mse, model, report)| {
        let table = &model.dot.as_ref()?.square;
        let choice = report.square.as_ref()?;
        (choice.box_shift > 0).then_some((*mse, table.lut_bits, table.output_bits))
    });
    if let Some((kept_mse, lut_bits, square_bits)) = kept_square {
        square_tables.push(WidthTrial {
            bits: lut_bits,
            logit_mse: kept_mse,
        });
        let embedding_bits = embedding_bits.expect("a dot model has tables");
        for finer in 1..=2 {
            let config = QuantizeConfig {
                square_bits,
                square_finer_bits: finer,
                ..config.clone()
            };
            let candidate = trial(&config, embedding_bits)?;
            let Some(tried) = candidate.1.dot.as_ref().map(|d| d.square.lut_bits) else {
                continue;
            };
            if square_tables.iter().any(|t| t.bits == tried) {
                continue; // no finer table fits
            }
            square_tables.push(WidthTrial {
                bits: tried,
                logit_mse: candidate.0,
            });
            keep_best(&mut best, candidate);
        }
    }
    let (_, model, report) = best.expect("at least one width was tried");
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

/// Rows of the calibration data the embedding width is chosen on.
const WIDTH_SELECTION_ROWS: usize = 4000;

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

fn quantize_with_embedding_bits(
    weights: &DlrmWeights,
    calibration: &datasets::SplitData,
    config: &QuantizeConfig,
    embedding_bits: u32,
) -> Result<(QuantizedModel, QuantizeReport)> {
    let c = &weights.config;
    let dot = c.interaction == Interaction::Dot;
    if calibration.rows() == 0 || calibration.dense_width() != c.dense_features {
        return Err(DlrmError::shape(
            "calibration data is empty or has the wrong dense width",
        ));
    }
    let input = calibrate_input(calibration, config);
    let mut x: Vec<Vec<i64>> = (0..calibration.rows())
        .map(|r| input.quantize(calibration.dense_row(r)))
        .collect();
    // The float model's own activations on the same rows: each integer layer's bias is
    // corrected towards them, so rounding errors do not add up from layer to layer.
    let mut xf: Vec<Vec<f64>> = (0..calibration.rows())
        .map(|r| {
            calibration
                .dense_row(r)
                .iter()
                .map(|&v| f64::from(v))
                .collect()
        })
        .collect();
    let mut scales = input.scales.clone();
    let mut choices = Vec::new();
    let mut bottom = Vec::new();
    for (k, layer) in weights.bottom.iter().enumerate() {
        // A dot model's bottom output: as many levels as the embedding entries.
        let output = if dot && k + 1 == weights.bottom.len() {
            ActivationGrid {
                bits: embedding_bits - 1,
            }
        } else {
            ActivationGrid::of(config)
        };
        let step = HiddenStep {
            name: format!("bottom.{k}"),
            layer,
            grid: WeightGrid::for_layer(c, k, config),
            output,
        };
        let (int_layer, choice) = step.run(&mut x, &mut xf, &mut scales, config);
        bottom.push(int_layer);
        choices.push(choice);
    }
    let bottom_width = scales.len();
    let lookup_headroom_bits = if c.tables.is_empty() || dot {
        0
    } else {
        make_room_for_lookups(
            bottom.last_mut(),
            &mut x,
            &mut scales,
            config.lookup_headroom_bits,
        )
    };
    let mut tables = Vec::with_capacity(c.tables.len());
    let mut embedding_scales = Vec::with_capacity(c.tables.len());
    for (t, table) in weights.tables.iter().enumerate() {
        let max = table
            .data
            .iter()
            .fold(0f32, |m, v| m.max(v.abs()))
            .max(1e-12);
        let scale = f64::from(max) / value_limit(embedding_bits) as f64;
        let values = table
            .data
            .iter()
            .map(|&v| (f64::from(v) / scale).round() as i32)
            .collect();
        let int_table = IntTable {
            value_bits: embedding_bits,
            values,
        };
        for (r, (row_x, row_f)) in x.iter_mut().zip(&mut xf).enumerate() {
            let id = calibration.categorical_row(r)[t];
            row_x.extend(int_table.lookup(&c.tables[t], c.embedding_dim, id));
            row_f.extend(weights.embedding(t, id).into_iter().map(f64::from));
        }
        scales.extend(std::iter::repeat_n(scale, c.embedding_dim));
        tables.push(int_table);
        embedding_scales.push(scale);
    }
    let (square, dot_interaction) = if dot {
        // The bottom output's levels, or an embedding sum's largest magnitude.
        let largest_vector = tables
            .iter()
            .zip(&c.tables)
            .map(|(table, spec)| table.largest_sum(spec, c.embedding_dim))
            .fold(value_limit(embedding_bits), i64::max);
        let (dot, choice) = interact_by_squares(
            &mut x,
            &mut xf,
            &mut scales,
            &DotLayout::of(c),
            bottom_width,
            largest_vector,
            config,
        );
        (Some(choice), Some(dot))
    } else {
        (None, None)
    };
    let (output_layer, hidden) = weights
        .top
        .split_last()
        .expect("validated: top is not empty");
    let mut top = Vec::new();
    for (k, layer) in hidden.iter().enumerate() {
        let step = HiddenStep {
            name: format!("top.{k}"),
            layer,
            grid: WeightGrid::for_layer(c, weights.bottom.len() + k, config),
            output: ActivationGrid::of(config),
        };
        let (int_layer, choice) = step.run(&mut x, &mut xf, &mut scales, config);
        top.push(int_layer);
        choices.push(choice);
    }
    let grid = WeightGrid::for_layer(c, weights.bottom.len() + hidden.len(), config);
    let OutputChoice {
        layer: output,
        logit_scale,
        acc_bits: output_acc_bits,
        weight_bits,
        norm,
    } = quantize_output(output_layer, &scales, &x, &xf, &grid, config);
    choices.push(LayerChoice {
        name: "output".into(),
        weight_bits,
        lookup_weight_bits: grid.lookup_bits(weight_bits),
        lut_bits: None,
        max_noisy_row_norm: norm,
        wrong_box_rate: 0.0,
        clamped_fraction: 0.0,
        accumulator_scale: logit_scale,
        activation_scale: None,
    });
    top.push(output);
    let model = QuantizedModel {
        format: QuantizedModel::format_name(),
        format_version: QUANTIZED_FORMAT_VERSION,
        config: c.clone(),
        input,
        bottom,
        tables,
        top,
        logit_scale,
        output_acc_bits,
        noise: config.noise,
        dot: dot_interaction,
    };
    model.validate()?;
    let report = QuantizeReport {
        layers: choices,
        embedding_widths: Vec::new(),
        embedding_bits: (!c.tables.is_empty()).then_some(embedding_bits),
        embedding_scales,
        lookup_headroom_bits,
        square,
        square_widths: Vec::new(),
        square_tables: Vec::new(),
    };
    Ok((model, report))
}

fn validate_config(config: &QuantizeConfig) -> Result<()> {
    let bits_ok = |b: u32| (2..=MAX_VALUE_BITS).contains(&b);
    if !(bits_ok(config.input_bits)
        && bits_ok(config.max_weight_bits)
        && bits_ok(config.embedding_bits)
        && (1..=MAX_VALUE_BITS).contains(&config.activation_bits)
        && (1..=MAX_VALUE_BITS).contains(&config.square_bits)
        && (config.activation_bits..=MAX_LUT_BITS).contains(&config.max_lut_bits))
    {
        return Err(DlrmError::config(
            "bits must be 2..=16 (activation and square bits 1..=16), and activation_bits <= max_lut_bits <= 16",
        ));
    }
    if config.activation_bits + config.lookup_headroom_bits > MAX_VALUE_BITS
        || config.max_weight_bits + config.lookup_headroom_bits > MAX_VALUE_BITS
    {
        return Err(DlrmError::config(
            "activation_bits and max_weight_bits plus lookup_headroom_bits must be <= 16",
        ));
    }
    if !(config.range_margin >= 0.0
        && config.range_margin <= 10.0
        && config.activation_quantile > 0.0
        && config.activation_quantile <= 1.0
        && config.min_clean_sigmas >= 0.0)
    {
        return Err(DlrmError::config("margin, quantile or sigmas out of range"));
    }
    Ok(())
}

/// Per-column input scales covering the `activation_quantile` of `|x|` with margin.
fn calibrate_input(data: &datasets::SplitData, config: &QuantizeConfig) -> InputQuantizer {
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

/// Which columns of a layer's input carry bootstrap noise and which are embedding sums.
#[derive(Clone, Debug)]
struct WeightGrid {
    /// Bootstrap outputs each column sums (what the noise budget limits the weights by).
    noises: Vec<f64>,
    /// Trailing columns fed by embedding lookups (exact).
    lookup_columns: usize,
    /// Extra weight bits of the lookup columns.
    lookup_headroom_bits: u32,
}

impl WeightGrid {
    /// The grid of layer `index` (bottom layers, then top): only a concat model's first top
    /// layer has lookup columns.
    fn for_layer(c: &crate::ModelConfig, index: usize, config: &QuantizeConfig) -> Self {
        let lookup_columns = if index == c.bottom.len() && c.interaction == Interaction::Concat {
            c.interaction_output() - c.bottom_output()
        } else {
            0
        };
        Self {
            noises: column_noises(c, index),
            lookup_columns,
            lookup_headroom_bits: config.lookup_headroom_bits,
        }
    }

    /// Weight bits of the lookup columns when the others get `weight_bits`.
    fn lookup_bits(&self, weight_bits: u32) -> Option<u32> {
        (self.lookup_columns > 0).then_some(weight_bits + self.lookup_headroom_bits)
    }
}

/// Integer weights of `layer` for inputs with real scales `scales`: `W_eff = W diag(scales)`
/// on one grid of step `acc_scale`, as fine as lets every weight fit its bits (`weight_bits`,
/// or more on the grid's lookup columns); returns the layer (no activation yet) and
/// `acc_scale`, the real value of one accumulator unit.
fn integer_layer(
    layer: &DenseLayer,
    scales: &[f64],
    grid: &WeightGrid,
    weight_bits: u32,
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
    let weights = effective
        .iter()
        .map(|v| (v / acc_scale).round() as i32)
        .collect();
    let bias = layer
        .bias
        .iter()
        .map(|&b| (f64::from(b) / acc_scale).round() as i64)
        .collect();
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

/// Scales the bottom MLP's last activations (its table entries, the calibration integers and
/// their scales) by `2^bits`, so that the first top layer's accumulator unit is that much finer
/// while the weights on the bottom output stay as large as the noise budget allows: a
/// bootstrap's output noise does not depend on the integers its table returns. Returns the
/// bits applied: 0 without a bottom MLP.
fn make_room_for_lookups(
    last_bottom: Option<&mut IntLayer>,
    x: &mut [Vec<i64>],
    scales: &mut [f64],
    bits: u32,
) -> u32 {
    // Called before the embedding sums are appended: `x` holds the bottom output only.
    let Some(table) = last_bottom.and_then(|layer| layer.activation.as_mut()) else {
        return 0;
    };
    table.output_bits += bits;
    table.entries.iter_mut().for_each(|e| *e <<= bits);
    x.iter_mut().flatten().for_each(|v| *v <<= bits);
    let factor = (1u64 << bits) as f64;
    scales.iter_mut().for_each(|s| *s /= factor);
    bits
}

/// The quantized output layer and what was chosen for it.
struct OutputChoice {
    layer: IntLayer,
    logit_scale: f64,
    /// Signed bits of the logit numerator (its calibrated range, with the margin).
    acc_bits: u32,
    weight_bits: u32,
    /// Integer weight norm over the bootstrap-fed columns.
    norm: f64,
}

/// The output layer at the weight width whose calibration logits are closest to the float
/// layer's, counting the bootstrap noise the logit carries: finer weights follow the float
/// layer better but multiply the noise of the activations they read, and no bootstrap rounds
/// the output's noise away (near zero it flips the predicted class).
fn quantize_output(
    layer: &DenseLayer,
    scales: &[f64],
    x: &[Vec<i64>],
    xf: &[Vec<f64>],
    grid: &WeightGrid,
    config: &QuantizeConfig,
) -> OutputChoice {
    let corrected = bias_corrected(layer, scales, x, xf);
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
        let (output, logit_scale) = integer_layer(&corrected, scales, grid, weight_bits);
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

/// One hidden layer of the calibration walk (bottom or top MLP): its bias is corrected towards
/// the float activations, it is quantized, and the integer and float activations and the scales
/// move on to its outputs.
struct HiddenStep<'a> {
    name: String,
    layer: &'a DenseLayer,
    /// Which inputs carry bootstrap noise (none for a layer fed by the client's exact inputs).
    grid: WeightGrid,
    output: ActivationGrid,
}

impl HiddenStep<'_> {
    fn run(
        self,
        x: &mut Vec<Vec<i64>>,
        xf: &mut Vec<Vec<f64>>,
        scales: &mut Vec<f64>,
        config: &QuantizeConfig,
    ) -> (IntLayer, LayerChoice) {
        let corrected = bias_corrected(self.layer, scales, x, xf);
        *xf = float_layer(self.layer, xf);
        let (int_layer, out_scale, choice) =
            quantize_hidden(&self, &corrected, scales, x, xf, config);
        *x = apply(&int_layer, x);
        *scales = vec![out_scale; int_layer.rows];
        (int_layer, choice)
    }
}

/// Quantizes one hidden layer (`layer`: the step's layer with its bias corrected). Every
/// (weight bits, table bits) pair whose bootstraps stay clean is tried; the pair whose
/// activations are closest (mean squared error, in real units) to the float layer's on the same
/// integer inputs wins. Returns the layer and its output scale.
fn quantize_hidden(
    step: &HiddenStep,
    layer: &DenseLayer,
    scales: &[f64],
    x: &[Vec<i64>],
    float_outputs: &[Vec<f64>],
    config: &QuantizeConfig,
) -> (IntLayer, f64, LayerChoice) {
    let (name, grid, output) = (&step.name, &step.grid, step.output);
    let noise = &config.noise;
    let clean = |norm: f64, lut_bits: u32| {
        noise.box_width(lut_bits) / 2.0 >= config.min_clean_sigmas * noise.bootstrap_input_sd(norm)
    };
    // What the integer layer should reproduce: the float model's activations.
    let target: Vec<f64> = float_outputs.iter().flatten().copied().collect();
    let out_scale =
        quantile(target.clone(), config.activation_quantile).max(1e-12) / output.levels();
    let consider = |best: &mut Option<(f64, LayerChoice, IntLayer)>,
                    weight_bits: u32,
                    lut_bits: Option<u32>| {
        let (mut int_layer, acc_scale) = integer_layer(layer, scales, grid, weight_bits);
        let norm = int_layer.max_noise_norm(&grid.noises);
        let accumulators: Vec<i64> = x.iter().flat_map(|row| int_layer.accumulate(row)).collect();
        let luts: Vec<u32> = match lut_bits {
            Some(bits) => vec![bits],
            None => (config.activation_bits..=config.max_lut_bits)
                .filter(|&b| clean(norm, b))
                .collect(),
        };
        for lut_bits in luts {
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
            };
            int_layer.activation = Some(table);
            *best = Some((error, choice, int_layer.clone()));
        }
    };
    let mut best = None;
    for weight_bits in 2..=config.max_weight_bits {
        consider(&mut best, weight_bits, None);
    }
    if best.is_none() {
        // Nothing is clean: the smallest weights and table, and simulate mode shows the cost.
        consider(&mut best, 2, Some(config.activation_bits));
    }
    let (_, choice, int_layer) = best.expect("one candidate is always considered");
    (int_layer, out_scale, choice)
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

/// The smallest and largest of `values` (`(0, 0)` if empty).
fn range(values: &[i64]) -> (i64, i64) {
    let (min, max) = values
        .iter()
        .fold((i64::MAX, i64::MIN), |(lo, hi), &a| (lo.min(a), hi.max(a)));
    if min > max { (0, 0) } else { (min, max) }
}

/// `(lo, box_shift)` of `2^lut_bits` boxes of the smallest power-of-two width that cover
/// `[min, max]` widened by the margin on each side, centred on it.
fn boxes_covering((min, max): (i64, i64), lut_bits: u32, config: &QuantizeConfig) -> (i64, u32) {
    let margin = ((max - min) as f64 * config.range_margin).ceil() as i64 + 1;
    boxes_spanning(min - margin, max + margin, lut_bits)
}

/// `(lo, box_shift)` of `2^lut_bits` boxes of the smallest power-of-two width whose centres
/// span `[low, high]`, centred on it.
fn boxes_spanning(low: i64, high: i64, lut_bits: u32) -> (i64, u32) {
    let boxes = (1i64 << lut_bits) - 1;
    let mut box_shift = 0;
    while boxes << box_shift < high - low {
        box_shift += 1;
    }
    (low - ((boxes << box_shift) - (high - low)) / 2, box_shift)
}

/// The levels of a hidden layer's activations: `[0, 2^bits)`, covering the activations'
/// `activation_quantile`.
#[derive(Clone, Copy, Debug)]
struct ActivationGrid {
    bits: u32,
}

impl ActivationGrid {
    /// `activation_bits` levels.
    fn of(config: &QuantizeConfig) -> Self {
        Self {
            bits: config.activation_bits,
        }
    }

    fn levels(self) -> f64 {
        ((1u64 << self.bits) - 1) as f64
    }
}

/// Noise deviations inside half a square-table box. The squares' inputs are small integers, in
/// single-integer boxes or a few per box, so they sit at or near box centres, where clean
/// boxes are rarely misread; `min_clean_sigmas` is for the MLP's accumulators, which lie
/// anywhere in their boxes.
const SQUARE_CLEAN_SIGMAS: f64 = 3.0;

/// Replaces each calibration row's bottom output and embedding sums (`x`: integers of real
/// value `scales`; `xf`: the float values) by the dot interaction's features, and returns the
/// square table. The table covers every sum and entry the model can produce (twice the
/// largest bottom output or embedding sum, `largest_vector`), so nothing is ever clamped: in
/// single-integer boxes (exact squares) when the fewest boxes that allow it stay clean for the
/// noisiest input (one bootstrap output), else in the most boxes that do. It returns squares in at most
/// `2^square_bits` levels.
fn interact_by_squares(
    x: &mut [Vec<i64>],
    xf: &mut [Vec<f64>],
    scales: &mut Vec<f64>,
    layout: &DotLayout,
    bottom_width: usize,
    largest_vector: i64,
    config: &QuantizeConfig,
) -> (DotInteraction, SquareChoice) {
    let dim = layout.dim();
    let noise = &config.noise;
    let sd = noise.bootstrap_input_sd(1.0);
    let clean_bits = (2..=config.max_lut_bits)
        .rev()
        .find(|&bits| noise.box_width(bits) / 2.0 >= SQUARE_CLEAN_SIGMAS * sd)
        .unwrap_or(2);
    let bound = 2 * largest_vector;
    // The fewest boxes that give every sum its own box (wider boxes, fewer misreads), else
    // the most that stay clean.
    let lut_bits = (1..=clean_bits)
        .find(|&bits| (1i64 << bits) > 2 * bound)
        .unwrap_or_else(|| {
            // Boxes of several integers: no single-integer table stays clean.
            (clean_bits + config.square_finer_bits).min(config.max_lut_bits)
        });
    let (lo, box_shift) = boxes_spanning(-bound, bound, lut_bits);
    let centres: Vec<i64> = (0..1i64 << lut_bits)
        .map(|k| lo + (k << box_shift))
        .collect();
    // Levels over the squares the model can produce (the boxes may reach further).
    let largest = bound.unsigned_abs().pow(2).max(1);
    let levels = (1u64 << config.square_bits) - 1;
    let square_unit = (largest as f64 / levels as f64).max(1.0);
    let square = ActivationTable {
        lo,
        box_shift,
        lut_bits,
        output_bits: config.square_bits,
        // Each box returns the mean square of the integers it holds (`centre + delta`, delta
        // in `[-half, half)`): the centre's square alone is biased by `-centre` per read once
        // boxes hold several integers.
        entries: centres
            .iter()
            .map(|&c| {
                let half = (1i64 << box_shift) >> 1;
                let held = (-half..(1i64 << box_shift) - half).map(|delta| (c + delta).pow(2));
                let mean = held.sum::<i64>() as f64 / (1u64 << box_shift) as f64;
                (mean / square_unit).round().min(levels as f64) as u32
            })
            .collect(),
    };
    let dot = DotInteraction {
        square,
        square_unit,
    };
    x.par_iter_mut()
        .zip(xf.par_iter_mut())
        .for_each(|(row_x, row_f)| {
            let (_, _, features) = dot.interact(layout, row_x, |u, _| dot.square.apply(u));
            row_x.truncate(bottom_width);
            row_x.extend(features);
            let vectors = row_f.len() / dim;
            let dots: Vec<f64> = dot_pairs(vectors)
                .map(|(i, j)| {
                    (0..dim)
                        .map(|k| row_f[i * dim + k] * row_f[j * dim + k])
                        .sum()
                })
                .collect();
            row_f.truncate(bottom_width);
            row_f.extend(dots);
        });
    // A pair feature is twice the product of its vectors' integers, in square units.
    let vector_scales: Vec<f64> = scales.iter().step_by(dim).copied().collect();
    let pair_scales: Vec<f64> = dot_pairs(vector_scales.len())
        .map(|(i, j)| square_unit * vector_scales[i] * vector_scales[j] / 2.0)
        .collect();
    scales.truncate(bottom_width);
    scales.extend(&pair_scales);
    let choice = SquareChoice {
        lut_bits,
        box_shift,
        wrong_box_rate: noise.wrong_box_rate(sd, lut_bits),
        square_unit,
        pair_scales,
    };
    (dot, choice)
}

/// `layer` with its bias corrected for the mean error of its integer inputs (real value
/// `x * scale`) against the float model's inputs `xf` on the calibration rows.
fn bias_corrected(
    layer: &DenseLayer,
    scales: &[f64],
    x: &[Vec<i64>],
    xf: &[Vec<f64>],
) -> DenseLayer {
    let cols = layer.weight.cols;
    let mut mean_error = vec![0f64; cols];
    for (row_x, row_f) in x.iter().zip(xf) {
        for j in 0..cols {
            mean_error[j] += row_f[j] - row_x[j] as f64 * scales[j];
        }
    }
    let rows = x.len().max(1) as f64;
    let mut corrected = layer.clone();
    for (r, bias) in corrected.bias.iter_mut().enumerate() {
        let shift: f64 = (0..cols)
            .map(|j| f64::from(layer.weight.data[r * cols + j]) * mean_error[j] / rows)
            .sum();
        *bias += shift as f32;
    }
    corrected
}

/// The float layer with its ReLU on every calibration row.
fn float_layer(layer: &DenseLayer, xf: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let w = &layer.weight;
    xf.iter()
        .map(|row| {
            (0..w.rows)
                .map(|r| {
                    let dot: f64 = (0..w.cols)
                        .map(|j| f64::from(w.data[r * w.cols + j]) * row[j])
                        .sum();
                    (dot + f64::from(layer.bias[r])).max(0.0)
                })
                .collect()
        })
        .collect()
}

/// The layer's activations for every calibration row.
fn apply(layer: &IntLayer, x: &[Vec<i64>]) -> Vec<Vec<i64>> {
    let table = layer
        .activation
        .as_ref()
        .expect("hidden layers have tables");
    x.iter()
        .map(|row| {
            layer
                .accumulate(row)
                .into_iter()
                .map(|a| table.apply(a))
                .collect()
        })
        .collect()
}

/// The `q`-quantile of `values` (nearest rank).
fn quantile(mut values: Vec<f64>, q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let rank = ((values.len() - 1) as f64 * q).round() as usize;
    *values.select_nth_unstable_by(rank, f64::total_cmp).1
}
