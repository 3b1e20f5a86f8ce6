//! The integer model's rounding replayed on float tensors: client inputs, weights on each
//! layer's grid, embedding entries and activation-table boxes and levels, with straight-through
//! gradients. The float model's forward pass uses it during quantization-aware fine-tuning.

use candle_core::{Device, Tensor};

use crate::integer_model::value_limit;
use crate::{DlrmError, Interaction, ModelConfig, QuantizeReport, QuantizedModel, Result};

/// Refuses dot models: their squares' rounding is not replayed in the forward pass.
pub(crate) fn replayable(config: &ModelConfig) -> Result<()> {
    if config.interaction == Interaction::Dot {
        return Err(DlrmError::config(
            "quantization-aware fine-tuning replays concat models only (a dot model's squares are not replayed)",
        ));
    }
    Ok(())
}

/// The integer model's rounding, as float tensors for the forward pass.
pub(crate) struct Rounding {
    input_scales: Tensor,
    input_limit: f64,
    layers: Vec<LayerRounding>,
    /// Scale of every stacked embedding row, shape `(stored rows, 1)`.
    embedding_scales: Tensor,
    embedding_limit: f64,
}

struct LayerRounding {
    /// Real scale of each input column, shape `(1, cols)`.
    column_scales: Tensor,
    /// Largest integer weight of each column, shape `(1, cols)`.
    weight_limits: Tensor,
    accumulator_scale: f64,
    table: Option<TableRounding>,
}

/// An activation table in real units: boxes of `box_width` from `lo`, `last_box + 1` of them,
/// entries `clamp(round(relu(centre) / step), 0, levels) * step`.
struct TableRounding {
    lo: f64,
    box_width: f64,
    last_box: f64,
    step: f64,
    levels: f64,
}

impl Rounding {
    /// The rounding of `model`, with the scales `quantize` reported for it.
    pub(crate) fn new(model: &QuantizedModel, report: &QuantizeReport) -> Result<Self> {
        replayable(&model.config)?;
        let device = Device::Cpu;
        let row = |values: Vec<f32>| -> Result<Tensor> {
            let len = values.len();
            Ok(Tensor::from_vec(values, (1, len), &device)?)
        };
        let layers_in_order: Vec<_> = model.bottom.iter().chain(&model.top).collect();
        if layers_in_order.len() != report.layers.len() {
            return Err(DlrmError::shape("the report does not describe this model"));
        }
        let d = model.config.embedding_dim;
        let mut scales: Vec<f64> = model.input.scales.clone();
        let mut layers = Vec::with_capacity(layers_in_order.len());
        for (k, (layer, choice)) in layers_in_order.iter().zip(&report.layers).enumerate() {
            if k == model.bottom.len() {
                // The first top layer: the bottom output, then the embedding sums.
                for scale in &report.embedding_scales {
                    scales.extend(std::iter::repeat_n(*scale, d));
                }
            }
            if scales.len() != layer.cols {
                return Err(DlrmError::shape(
                    "the report's scales do not fit the layers",
                ));
            }
            // Only the layer reading the embedding sums has lookup weight bits.
            let first_lookup = layer.cols.saturating_sub(model.tables.len() * d);
            let limits = (0..layer.cols)
                .map(|j| match choice.lookup_weight_bits {
                    Some(bits) if j >= first_lookup => value_limit(bits) as f32,
                    _ => value_limit(choice.weight_bits) as f32,
                })
                .collect();
            // The bottom MLP's last table returns its levels times 2^headroom.
            let headroom = if k + 1 == model.bottom.len() {
                report.lookup_headroom_bits
            } else {
                0
            };
            let table = match (&layer.activation, choice.activation_scale) {
                (Some(table), Some(step)) => Some(TableRounding {
                    lo: table.lo as f64 * choice.accumulator_scale,
                    box_width: (1u64 << table.box_shift) as f64 * choice.accumulator_scale,
                    last_box: ((1u64 << table.lut_bits) - 1) as f64,
                    step,
                    levels: ((1u64 << (table.output_bits - headroom)) - 1) as f64,
                }),
                _ => None,
            };
            layers.push(LayerRounding {
                column_scales: row(scales.iter().map(|&s| s as f32).collect())?,
                weight_limits: row(limits)?,
                accumulator_scale: choice.accumulator_scale,
                table,
            });
            if let Some(step) = choice.activation_scale {
                scales = vec![step / (1u64 << headroom) as f64; layer.rows];
            }
        }
        let mut per_row = Vec::new();
        for (spec, scale) in model.config.tables.iter().zip(&report.embedding_scales) {
            per_row.extend(std::iter::repeat_n(*scale as f32, spec.stored_rows()));
        }
        let stored = per_row.len();
        Ok(Self {
            input_scales: row(model.input.scales.iter().map(|&s| s as f32).collect())?,
            input_limit: value_limit(model.input.bits) as f64,
            layers,
            embedding_scales: Tensor::from_vec(per_row, (stored, 1), &device)?,
            embedding_limit: model
                .tables
                .first()
                .map_or(1.0, |t| value_limit(t.value_bits) as f64),
        })
    }

    /// The client's integer inputs in real units (no gradient flows into data).
    pub(crate) fn input(&self, dense: &Tensor) -> Result<Tensor> {
        let integers = dense
            .broadcast_div(&self.input_scales)?
            .round()?
            .clamp(-self.input_limit - 1.0, self.input_limit)?;
        Ok(integers.broadcast_mul(&self.input_scales)?)
    }

    /// The stacked embedding rows on their integer grids.
    pub(crate) fn embeddings(&self, stacked: &Tensor) -> Result<Tensor> {
        let rounded = stacked
            .broadcast_div(&self.embedding_scales)?
            .round()?
            .clamp(-self.embedding_limit, self.embedding_limit)?
            .broadcast_mul(&self.embedding_scales)?;
        straight_through(stacked, &rounded)
    }

    /// Layer `index` (bottom first): `W x + b` with rounded weights and bias, then, for hidden
    /// layers, the activation table.
    pub(crate) fn layer(
        &self,
        index: usize,
        x: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
    ) -> Result<Tensor> {
        let layer = &self.layers[index];
        let acc = layer.accumulator_scale;
        let effective = weight.broadcast_mul(&layer.column_scales)?;
        let integers = (effective / acc)?
            .round()?
            .broadcast_maximum(&layer.weight_limits.neg()?)?
            .broadcast_minimum(&layer.weight_limits)?;
        let rounded = (integers * acc)?.broadcast_div(&layer.column_scales)?;
        let weight = straight_through(weight, &rounded)?;
        let bias = straight_through(bias, &((bias / acc)?.round()? * acc)?)?;
        let z = x.matmul(&weight.t()?)?.broadcast_add(&bias)?;
        let Some(table) = &layer.table else {
            return Ok(z);
        };
        let boxes = ((z.clone() - table.lo)? / table.box_width)?
            .round()?
            .clamp(0.0, table.last_box)?;
        let centres = ((boxes * table.box_width)? + table.lo)?;
        let levels = (centres.relu()? / table.step)?
            .round()?
            .clamp(0.0, table.levels)?;
        straight_through(&z.relu()?, &(levels * table.step)?)
    }
}

/// `exact` in the forward pass, the gradient of `x` in the backward pass.
fn straight_through(x: &Tensor, exact: &Tensor) -> Result<Tensor> {
    Ok((x + (exact - x)?.detach())?)
}
