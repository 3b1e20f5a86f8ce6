//! The grids a layer is quantized onto: which of its input columns carry bootstrap noise or
//! exact lookups (weights), the levels of its activations, and the power-of-two boxes of a
//! lookup table that cover a calibrated range.

use crate::integer_model::column_noises;
use crate::{Interaction, ModelConfig};

use super::config::QuantizeConfig;

/// Which columns of a layer's input carry bootstrap noise and which are embedding sums.
#[derive(Clone, Debug)]
pub(super) struct WeightGrid {
    /// Bootstrap outputs each column sums (what the noise budget limits the weights by).
    pub(super) noises: Vec<f64>,
    /// Trailing columns fed by embedding lookups (exact).
    pub(super) lookup_columns: usize,
    /// Extra weight bits of the lookup columns.
    lookup_headroom_bits: u32,
}

impl WeightGrid {
    /// The grid of layer `index` (bottom layers, then top): only a concat model's first top
    /// layer has lookup columns.
    pub(super) fn for_layer(c: &ModelConfig, index: usize, config: &QuantizeConfig) -> Self {
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
    pub(super) fn lookup_bits(&self, weight_bits: u32) -> Option<u32> {
        (self.lookup_columns > 0).then_some(weight_bits + self.lookup_headroom_bits)
    }
}

/// The levels of a hidden layer's activations: `[0, 2^bits)`, covering the activations'
/// `activation_quantile`.
#[derive(Clone, Copy, Debug)]
pub(super) struct ActivationGrid {
    pub(super) bits: u32,
}

impl ActivationGrid {
    /// `activation_bits` levels.
    pub(super) fn of(config: &QuantizeConfig) -> Self {
        Self {
            bits: config.activation_bits,
        }
    }

    pub(super) fn levels(self) -> f64 {
        ((1u64 << self.bits) - 1) as f64
    }
}

/// The smallest and largest of `values` (`(0, 0)` if empty).
pub(super) fn range(values: &[i64]) -> (i64, i64) {
    let (min, max) = values
        .iter()
        .fold((i64::MAX, i64::MIN), |(lo, hi), &a| (lo.min(a), hi.max(a)));
    if min > max { (0, 0) } else { (min, max) }
}

/// `(lo, box_shift)` of `2^lut_bits` boxes of the smallest power-of-two width that cover
/// `[min, max]` widened by the margin on each side, centred on it.
pub(super) fn boxes_covering(
    (min, max): (i64, i64),
    lut_bits: u32,
    config: &QuantizeConfig,
) -> (i64, u32) {
    let margin = ((max - min) as f64 * config.range_margin).ceil() as i64 + 1;
    boxes_spanning(min - margin, max + margin, lut_bits)
}

/// `(lo, box_shift)` of `2^lut_bits` boxes of the smallest power-of-two width whose centres
/// span `[low, high]`, centred on it.
pub(super) fn boxes_spanning(low: i64, high: i64, lut_bits: u32) -> (i64, u32) {
    let boxes = (1i64 << lut_bits) - 1;
    let mut box_shift = 0;
    while boxes << box_shift < high - low {
        box_shift += 1;
    }
    (low - ((boxes << box_shift) - (high - low)) / 2, box_shift)
}

/// The `q`-quantile of `values` (nearest rank).
pub(super) fn quantile(mut values: Vec<f64>, q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let rank = ((values.len() - 1) as f64 * q).round() as usize;
    *values.select_nth_unstable_by(rank, f64::total_cmp).1
}
