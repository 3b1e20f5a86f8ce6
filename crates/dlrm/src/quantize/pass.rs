//! One quantization pass at a fixed embedding width: the calibration rows walk the model layer
//! by layer (bottom MLP, lookups, interaction, top MLP, output), each layer quantized on the
//! integers the reference will really produce at its input.

use crate::dot::DotLayout;
use crate::integer_model::{IntLayer, IntTable, QuantizedModel, value_limit};
use crate::sanitiser::OutputSanitiser;
use crate::{DlrmError, DlrmWeights, Interaction, Result};

use super::calibration::Calibration;
use super::config::QuantizeConfig;
use super::grids::{ActivationGrid, WeightGrid};
use super::layers::{
    HiddenStep, OutputChoice, calibrate_input, integer_table, quantize_hidden, quantize_output,
};
use super::report::{LayerChoice, QuantizeReport};
use super::sanitise::{SanitiserChoice, choose_sanitiser};
use super::squares::{square_choice, square_table};

/// Quantizes `weights` with embedding entries of `embedding_bits` signed bits, calibrating on
/// every row of `data`. The report's width searches are left empty.
pub(super) fn quantize_pass(
    weights: &DlrmWeights,
    data: &datasets::SplitData,
    config: &QuantizeConfig,
    embedding_bits: u32,
) -> Result<(QuantizedModel, QuantizeReport)> {
    let c = &weights.config;
    let dot = c.interaction == Interaction::Dot;
    if data.rows() == 0 || data.dense_width() != c.dense_features {
        return Err(DlrmError::shape(
            "calibration data is empty or has the wrong dense width",
        ));
    }
    let input = calibrate_input(data, config);
    let mut rows = Calibration::new(data, &input);
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
            compensate: false,
        };
        let (int_layer, choice) = quantize_hidden(&step, &mut rows, config);
        bottom.push(int_layer);
        choices.push(choice);
    }
    let bottom_width = rows.width();
    let lookup_headroom_bits = if c.tables.is_empty() || dot {
        0
    } else {
        rows.make_room_for_lookups(bottom.last_mut(), config.lookup_headroom_bits)
    };
    let mut tables = Vec::with_capacity(c.tables.len());
    let mut embedding_scales = Vec::with_capacity(c.tables.len());
    for (t, table) in weights.tables.iter().enumerate() {
        let (int_table, scale) = integer_table(table, embedding_bits);
        rows.append_lookups(data, weights, t, &int_table, scale);
        tables.push(int_table);
        embedding_scales.push(scale);
    }
    let (square, dot_interaction) = if dot {
        let interaction = square_table(largest_vector(weights, &tables, embedding_bits), config);
        let pair_scales = rows.interact(&interaction, &DotLayout::of(c), bottom_width);
        let choice = square_choice(&interaction, pair_scales, config);
        (Some(choice), Some(interaction))
    } else {
        (None, None)
    };
    let (top, logit_scale, output_acc_bits, output_sanitiser) =
        top_mlp(weights, &mut rows, &mut choices, config);
    let model = QuantizedModel {
        format: QuantizedModel::format_name(),
        format_version: QuantizedModel::format_version_for(
            output_sanitiser.as_ref(),
            &weights.config.roles,
        ),
        config: c.clone(),
        input,
        bottom,
        tables,
        top,
        logit_scale,
        output_acc_bits,
        noise: config.noise,
        dot: dot_interaction,
        output_sanitiser,
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

/// The largest magnitude of a dot model's vectors: the bottom output's levels, or an embedding
/// sum's largest.
fn largest_vector(weights: &DlrmWeights, tables: &[IntTable], embedding_bits: u32) -> i64 {
    let c = &weights.config;
    tables
        .iter()
        .zip(&c.tables)
        .map(|(table, spec)| table.largest_sum(spec, c.embedding_dim))
        .fold(value_limit(embedding_bits), i64::max)
}

/// The top MLP's layers on the rows (which hold the interaction's output), the output layer
/// last, with their choices appended to `choices`; returns the layers, the logit scale, the
/// logit numerator's signed bits and the output sanitiser (when the config asks for one).
fn top_mlp(
    weights: &DlrmWeights,
    rows: &mut Calibration,
    choices: &mut Vec<LayerChoice>,
    config: &QuantizeConfig,
) -> (Vec<IntLayer>, f64, u32, Option<OutputSanitiser>) {
    let c = &weights.config;
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
            // The pair features: hundreds of noisy columns leave these weights few levels.
            compensate: config.compensated_rounding && k == 0 && c.interaction == Interaction::Dot,
        };
        let (int_layer, choice) = quantize_hidden(&step, rows, config);
        top.push(int_layer);
        choices.push(choice);
    }
    let grid = WeightGrid::for_layer(c, weights.bottom.len() + hidden.len(), config);
    let OutputChoice {
        layer: output,
        logit_scale,
        acc_bits,
        weight_bits,
        norm,
    } = quantize_output(output_layer, rows, &grid, config);
    let sanitised = config
        .sanitise_output
        .then(|| choose_sanitiser(&output, acc_bits, norm, rows.integers(), config));
    choices.push(LayerChoice {
        name: "output".into(),
        weight_bits,
        lookup_weight_bits: grid.lookup_bits(weight_bits),
        lut_bits: sanitised.as_ref().map(|s| s.sanitiser.lut_bits),
        max_noisy_row_norm: norm,
        wrong_box_rate: sanitised.as_ref().map_or(0.0, |s| s.wrong_box_rate),
        clamped_fraction: sanitised.as_ref().map_or(0.0, |s| s.clamped_fraction),
        accumulator_scale: logit_scale,
        activation_scale: None,
        compensated: false,
    });
    top.push(output);
    let sanitiser = sanitised.map(|SanitiserChoice { sanitiser, .. }| sanitiser);
    (top, logit_scale, acc_bits, sanitiser)
}
