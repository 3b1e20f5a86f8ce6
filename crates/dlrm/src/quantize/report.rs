//! What the quantizer chose, for the user to see where precision goes, and its printed form
//! (the text `dlrm-he quantize` prints).

use std::fmt;

use serde::{Deserialize, Serialize};

/// What the quantizer chose for one layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerChoice {
    /// `bottom.K`, `top.K` or `output`.
    pub name: String,
    /// Bits of the weights on bootstrap-fed and client inputs.
    pub weight_bits: u32,
    /// Bits of the weights on embedding columns, where the layer reads them.
    pub lookup_weight_bits: Option<u32>,
    /// `None` for the output layer, unless it is sanitised (the sanitiser's table bits).
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
    /// Whether the kept weights were rounded by error compensation
    /// ([`QuantizeConfig::compensated_rounding`](crate::QuantizeConfig::compensated_rounding))
    /// rather than each to its nearest integer.
    #[serde(default)]
    pub compensated: bool,
}

/// What [`quantize`](crate::quantize) chose, for the user to see where precision goes.
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
    /// Log2 of the number of boxes of the square table.
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
    /// The width tried.
    pub bits: u32,
    /// Mean squared difference between the integer and the float logits on the first 4000
    /// calibration rows.
    pub logit_mse: f64,
}

/// The width searches, then one line per layer, each line ending in a newline.
impl fmt::Display for QuantizeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(kept) = self.embedding_bits {
            writeln!(
                f,
                "embedding width: squared logit error by bits: {}; kept {kept} bits",
                width_trials(&self.embedding_widths)
            )?;
        }
        if let Some(square) = &self.square {
            writeln!(
                f,
                "dot interaction: square width: squared logit error by bits: {}; square table {} bits, boxes of 2^{}, unit {:.2}{}, wrong-box rate {:.4}",
                width_trials(&self.square_widths),
                square.lut_bits,
                square.box_shift,
                square.square_unit,
                if square.box_shift == 0 && square.square_unit == 1.0 {
                    " (exact squares)"
                } else {
                    ""
                },
                square.wrong_box_rate
            )?;
        }
        if !self.square_tables.is_empty() {
            writeln!(
                f,
                "dot interaction: square table boxes: squared logit error by table bits: {}",
                width_trials(&self.square_tables)
            )?;
        }
        for c in &self.layers {
            let lut = c.lut_bits.map_or("-".to_string(), |b| b.to_string());
            let lookups = c
                .lookup_weight_bits
                .map_or(String::new(), |b| format!(" ({b} on embeddings)"));
            let compensated = if c.compensated { ", compensated" } else { "" };
            writeln!(
                f,
                "{:>9}: weights {} bits{lookups}{compensated}, table {lut:>2} bits, max noisy row norm {:>6.1}, wrong-box rate {:.4}, clamped {:.4}",
                c.name, c.weight_bits, c.max_noisy_row_norm, c.wrong_box_rate, c.clamped_fraction
            )?;
        }
        Ok(())
    }
}

/// A width search's trials as `bits error, ...`.
fn width_trials(trials: &[WidthTrial]) -> String {
    let trials: Vec<String> = trials
        .iter()
        .map(|t| format!("{} {:.4}", t.bits, t.logit_mse))
        .collect();
    trials.join(", ")
}
