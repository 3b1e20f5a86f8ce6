//! The settings of [`quantize`](crate::quantize) and the checks that keep them in range.

use serde::{Deserialize, Serialize};

use crate::{DlrmError, MAX_LUT_BITS, MAX_VALUE_BITS, NoiseModel, Result};

/// Settings of [`quantize`](crate::quantize).
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
    /// by `2^lookup_headroom_bits` to make room. 0 puts every column on one weight grid, which
    /// caps the embedding columns' precision (docs/dlrm.md compares both).
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
    /// box centres, where even clean boxes are read either way (docs/dlrm.md, "Fine boxes").
    pub min_clean_sigmas: f64,
    /// The noise of the encrypted pipeline the bit widths are chosen for.
    pub noise: NoiseModel,
    /// Dot models: the first top layer's weights, which read the pair features, are also
    /// rounded by error compensation (`compensate.rs`, GPTQ with the bootstrap noise the
    /// weights amplify) at every width; the candidate closest to the float layer wins. The
    /// pair features' hundreds of noisy columns leave those weights only a few integer levels,
    /// where rounding each to its nearest integer loses most (docs/dlrm.md). Off by default.
    pub compensated_rounding: bool,
    /// Sanitise the output: one last bootstrap puts the logit numerator on a grid of
    /// `2^lut_bits` boxes (the most bits up to `max_lut_bits` whose boxes stay
    /// `min_clean_sigmas` wide), so the response's noise no longer depends on the weights
    /// ([`OutputSanitiser`](crate::OutputSanitiser); docs/security.md). Costs one bootstrap.
    pub sanitise_output: bool,
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
            sanitise_output: false,
            compensated_rounding: false,
        }
    }
}

impl QuantizeConfig {
    /// Refuses settings out of the ranges the integer model and its tables allow.
    pub(crate) fn validate(&self) -> Result<()> {
        let bits_ok = |b: u32| (2..=MAX_VALUE_BITS).contains(&b);
        if !(bits_ok(self.input_bits)
            && bits_ok(self.max_weight_bits)
            && bits_ok(self.embedding_bits)
            && (1..=MAX_VALUE_BITS).contains(&self.activation_bits)
            && (1..=MAX_VALUE_BITS).contains(&self.square_bits)
            && (self.activation_bits..=MAX_LUT_BITS).contains(&self.max_lut_bits))
        {
            return Err(DlrmError::config(
                "bits must be 2..=16 (activation and square bits 1..=16), and activation_bits <= max_lut_bits <= 16",
            ));
        }
        if self.activation_bits + self.lookup_headroom_bits > MAX_VALUE_BITS
            || self.max_weight_bits + self.lookup_headroom_bits > MAX_VALUE_BITS
        {
            return Err(DlrmError::config(
                "activation_bits and max_weight_bits plus lookup_headroom_bits must be <= 16",
            ));
        }
        if !(self.range_margin >= 0.0
            && self.range_margin <= 10.0
            && self.activation_quantile > 0.0
            && self.activation_quantile <= 1.0
            && self.min_clean_sigmas >= 0.0)
        {
            return Err(DlrmError::config("margin, quantile or sigmas out of range"));
        }
        Ok(())
    }
}
