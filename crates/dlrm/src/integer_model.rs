//! The quantized integer model: its data (input quantizer, integer layers and tables, the dot
//! interaction's square table), its file format and the checks that make an untrusted model file
//! safe to run. Running it is in `reference.rs`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::activation::{ActivationTable, MAX_VALUE_BITS};
use crate::dot::{DotInteraction, DotLayout};
use crate::io::{read_json, write_json};
use crate::sanitiser::OutputSanitiser;
use crate::{DlrmError, FeatureRoles, Interaction, ModelConfig, NoiseModel, Result, TableConfig};

/// Newest version of the quantized model format this crate reads and writes. Version 2 changed
/// the dot interaction's identity (shared squares); version-1 files without a dot interaction
/// mean the same in both and are still read. Version 3 added the output sanitiser: a model
/// with one is written as version 3, a model without as version 2, byte for byte as before
/// (builds that only know version 2 would ignore the unknown field and answer unsanitised).
/// Version 4 added feature roles (`config.roles`): a model with a public feature is written as
/// version 4, any other as before, so its bytes and model id are unchanged.
pub const QUANTIZED_FORMAT_VERSION: u32 = 4;
/// The version a model without an output sanitiser is written as.
const UNSANITISED_FORMAT_VERSION: u32 = 2;
/// The version a model with an output sanitiser and no public feature is written as.
const SANITISED_FORMAT_VERSION: u32 = 3;
const QUANTIZED_FORMAT: &str = "dlrm-he/quantized-model";
/// How the client turns dense features into signed integers: column `j` becomes
/// `clamp(round(x_j / scales[j]), -2^(bits-1), 2^(bits-1) - 1)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputQuantizer {
    /// Width of the signed integer inputs.
    pub bits: u32,
    /// One scale per dense column: the real value of one integer step.
    pub scales: Vec<f64>,
}

impl InputQuantizer {
    /// The integer inputs of one row of dense features.
    ///
    /// ```
    /// let q = dlrm::InputQuantizer { bits: 4, scales: vec![0.5, 0.25] };
    /// assert_eq!(q.quantize(&[1.2, -9.0]), vec![2, -8]);
    /// ```
    pub fn quantize(&self, dense: &[f32]) -> Vec<i64> {
        let max = (1i64 << (self.bits - 1)) - 1;
        dense
            .iter()
            .zip(&self.scales)
            .map(|(&x, &s)| ((f64::from(x) / s).round() as i64).clamp(-max - 1, max))
            .collect()
    }
}

/// One dense layer on integers: `acc = W x + b`, then the activation table (none for the output
/// layer, whose accumulator is the logit numerator).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntLayer {
    /// Output width: one accumulator per row of `W`.
    pub rows: usize,
    /// Input width.
    pub cols: usize,
    /// Width of the signed weights.
    pub weight_bits: u32,
    /// Signed weights in `[-(2^(weight_bits-1) - 1), 2^(weight_bits-1) - 1]`, `rows x cols`,
    /// row-major.
    pub weights: Vec<i32>,
    /// One bias per row, in accumulator units.
    pub bias: Vec<i64>,
    /// The activation every accumulator goes through; `None` for the output layer.
    pub activation: Option<ActivationTable>,
}

impl IntLayer {
    /// `W x + b`.
    ///
    /// ```
    /// let layer = dlrm::IntLayer {
    ///     rows: 1, cols: 2, weight_bits: 3, weights: vec![3, -2], bias: vec![1], activation: None,
    /// };
    /// assert_eq!(layer.accumulate(&[4, 5]), vec![3]);
    /// ```
    pub fn accumulate(&self, x: &[i64]) -> Vec<i64> {
        self.weights
            .chunks_exact(self.cols)
            .zip(&self.bias)
            .map(|(row, &b)| {
                row.iter()
                    .zip(x)
                    .map(|(&w, &x)| i64::from(w) * x)
                    .sum::<i64>()
                    + b
            })
            .collect()
    }

    /// What multiplies the bootstrap noise of the inputs in accumulator `r`: the L2 norm of
    /// row `r` with each weight counted `noises[j]` times, `noises[j]` being the number of
    /// independent bootstrap outputs input `j` sums (see [`QuantizedModel::column_noises`]).
    ///
    /// ```
    /// let layer = dlrm::IntLayer {
    ///     rows: 1, cols: 3, weight_bits: 4, weights: vec![3, 4, 7], bias: vec![0], activation: None,
    /// };
    /// assert_eq!(layer.noise_norm(0, &[1.0, 1.0, 0.0]), 5.0);
    /// assert_eq!(layer.noise_norm(0, &[0.0, 4.0, 0.0]), 8.0);
    /// ```
    pub fn noise_norm(&self, r: usize, noises: &[f64]) -> f64 {
        let row = &self.weights[r * self.cols..(r + 1) * self.cols];
        row.iter()
            .zip(noises)
            .map(|(&w, &n)| f64::from(w) * f64::from(w) * n)
            .sum::<f64>()
            .sqrt()
    }

    /// The largest [`IntLayer::noise_norm`] over the rows.
    pub fn max_noise_norm(&self, noises: &[f64]) -> f64 {
        (0..self.rows)
            .map(|r| self.noise_norm(r, noises))
            .fold(0.0, f64::max)
    }
}

/// An integer embedding table: stored rows (`V` rows, or the stacked `l * p` codebook rows of a
/// digit table) of signed integers; a lookup sums the id's parts exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntTable {
    /// Width of the signed values: each is in `[-(2^(value_bits-1) - 1), 2^(value_bits-1) - 1]`.
    pub value_bits: u32,
    /// `stored_rows x d`, row-major.
    pub values: Vec<i32>,
}

impl IntTable {
    /// The exact integer embedding of `id`: the sum of its parts' stored rows.
    ///
    /// ```
    /// use dlrm::{DigitCode, EmbeddingKind, IntTable, TableConfig};
    /// let spec = TableConfig { rows: 4, kind: EmbeddingKind::Digits(DigitCode { base: 2, digits: 2 }) };
    /// // Codebook 0 rows (digit 0, 1), then codebook 1 rows; d = 1.
    /// let table = IntTable { value_bits: 8, values: vec![0, 1, 0, 10] };
    /// assert_eq!(table.lookup(&spec, 1, 3), vec![11]);
    /// ```
    pub fn lookup(&self, spec: &TableConfig, dim: usize, id: u32) -> Vec<i64> {
        let mut sum = vec![0i64; dim];
        for part in 0..spec.parts() {
            let row = spec.stored_row(id, part);
            for (s, &v) in sum.iter_mut().zip(&self.values[row * dim..(row + 1) * dim]) {
                *s += i64::from(v);
            }
        }
        sum
    }

    /// The largest magnitude a lookup can return in any coordinate: the sum over the parts of
    /// their codebooks' largest magnitude.
    ///
    /// ```
    /// use dlrm::{DigitCode, EmbeddingKind, IntTable, TableConfig};
    /// let spec = TableConfig { rows: 4, kind: EmbeddingKind::Digits(DigitCode { base: 2, digits: 2 }) };
    /// let table = IntTable { value_bits: 8, values: vec![0, -3, 0, 10] };
    /// assert_eq!(table.largest_sum(&spec, 1), 13);
    /// ```
    pub fn largest_sum(&self, spec: &TableConfig, dim: usize) -> i64 {
        let rows = spec.stored_rows();
        let part_rows = rows / spec.parts().max(1);
        self.values
            .chunks(part_rows.max(1) * dim.max(1))
            .map(|part| part.iter().map(|v| i64::from(*v).abs()).max().unwrap_or(0))
            .sum()
    }
}

/// A quantized DLRM.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuantizedModel {
    /// Name of the file format, `dlrm-he/quantized-model`.
    pub format: String,
    /// Version of the file format: when written by this build, [`QUANTIZED_FORMAT_VERSION`]
    /// for a model with a public feature, otherwise 3 for a model with an output sanitiser and
    /// 2 for one without.
    pub format_version: u32,
    /// Architecture (table kinds say how ids become stored rows).
    pub config: ModelConfig,
    /// How the client turns dense features into integers.
    pub input: InputQuantizer,
    /// The bottom MLP, every layer with an activation.
    pub bottom: Vec<IntLayer>,
    /// One integer table per table of the configuration.
    pub tables: Vec<IntTable>,
    /// The top MLP; the last layer has no activation (see `output_sanitiser`).
    pub top: Vec<IntLayer>,
    /// `logit = logit numerator x logit_scale`.
    pub logit_scale: f64,
    /// The logit numerator stays within `(-2^(bits-1), 2^(bits-1))` on calibration data with
    /// margin: the encrypted executor encodes the output with this many bits.
    pub output_acc_bits: u32,
    /// The noise the bit widths were chosen for, and that `simulate` adds.
    pub noise: NoiseModel,
    /// The dot interaction's square table: present exactly for dot models, whose bottom
    /// output and tables share one integer unit.
    #[serde(default)]
    pub dot: Option<DotInteraction>,
    /// The output sanitiser, when the quantizer was asked for one (format version 3): the
    /// logit numerator is the centre of its box on this grid, computed by one last bootstrap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_sanitiser: Option<OutputSanitiser>,
}

impl QuantizedModel {
    /// Checks the model's consistency: shapes, bit widths, tables, and that no accumulator can
    /// overflow `i64` (quantized model files are untrusted).
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(DlrmError::shape(format!("quantized model: {reason}")));
        let readable = (UNSANITISED_FORMAT_VERSION..=QUANTIZED_FORMAT_VERSION)
            .contains(&self.format_version)
            || (self.format_version == 1 && self.dot.is_none());
        if self.format_version < QUANTIZED_FORMAT_VERSION && !self.config.roles.all_private() {
            return bad(format!(
                "feature roles with a public feature need format version {QUANTIZED_FORMAT_VERSION}, the file says {} \
                 (an older build would ignore the roles)",
                self.format_version
            ));
        }
        if self.format_version < SANITISED_FORMAT_VERSION && self.output_sanitiser.is_some() {
            return bad(format!(
                "an output sanitiser needs format version 3, the file says {}",
                self.format_version
            ));
        }
        if self.format_version == 1 && self.dot.is_some() {
            return bad(
                "version 1 of the format computed the dot interaction as ((a + b)^2 - (a - b)^2) / 4; \
                 this build uses shared squares: quantize the model again"
                    .into(),
            );
        }
        if self.format != QUANTIZED_FORMAT || !readable {
            return bad(format!(
                "format {:?} version {}, this build reads {QUANTIZED_FORMAT:?} versions 1 to {QUANTIZED_FORMAT_VERSION}",
                self.format, self.format_version
            ));
        }
        let c = &self.config;
        c.validate()?;
        match (c.interaction, &self.dot) {
            (Interaction::Concat, None) => {}
            (Interaction::Dot, Some(dot)) => dot
                .validate()
                .or_else(|e| bad(format!("dot interaction: {e}")))?,
            _ => return bad("a square table belongs to dot models, and only to them".into()),
        }
        if !(1..=MAX_VALUE_BITS).contains(&self.input.bits)
            || self.input.scales.len() != c.dense_features
            || self
                .input
                .scales
                .iter()
                .any(|s| !(s.is_finite() && *s > 0.0))
        {
            return bad("input quantizer: bits or scales out of range".into());
        }
        if !(self.logit_scale.is_finite() && self.logit_scale > 0.0) || self.output_acc_bits > 62 {
            return bad("logit scale or output bits out of range".into());
        }
        if let Some(sanitiser) = &self.output_sanitiser {
            sanitiser
                .validate(self.output_acc_bits)
                .or_else(|e| bad(format!("output sanitiser: {e}")))?;
        }
        if self.tables.len() != c.tables.len() {
            return bad(format!(
                "{} tables, config has {}",
                self.tables.len(),
                c.tables.len()
            ));
        }
        for (t, (table, spec)) in self.tables.iter().zip(&c.tables).enumerate() {
            let limit = value_limit(table.value_bits);
            if !(1..=MAX_VALUE_BITS).contains(&table.value_bits)
                || table.values.len() != spec.stored_rows() * c.embedding_dim
                || table.values.iter().any(|v| i64::from(*v).abs() > limit)
            {
                return bad(format!("table {t}: size or values out of range"));
            }
        }
        // No accumulator can overflow: inputs, activations and table values are at most 16
        // bits, an embedding sums at most 64 parts (2^22), weights 16 bits, fan-in 2^16 and
        // biases 2^40, so |acc| < 2^16 * 2^15 * 2^22 + 2^40 < 2^53, exact even as f64.
        self.check_mlp("bottom", &self.bottom, c.dense_features, &c.bottom, true)?;
        self.check_mlp("top", &self.top, c.interaction_output(), &c.top, false)
    }

    fn check_mlp(
        &self,
        name: &str,
        layers: &[IntLayer],
        input: usize,
        widths: &[usize],
        all_activated: bool,
    ) -> Result<()> {
        let bad = |reason: String| Err(DlrmError::shape(format!("quantized {name}: {reason}")));
        if layers.len() != widths.len() {
            return bad(format!(
                "{} layers, config has {}",
                layers.len(),
                widths.len()
            ));
        }
        let mut fan_in = input;
        for (k, (layer, &out)) in layers.iter().zip(widths).enumerate() {
            let limit = value_limit(layer.weight_bits);
            if layer.rows != out
                || layer.cols != fan_in
                || layer.weights.len() != out * fan_in
                || layer.bias.len() != out
                || !(2..=MAX_VALUE_BITS).contains(&layer.weight_bits)
                || layer.weights.iter().any(|w| i64::from(*w).abs() > limit)
                || layer.bias.iter().any(|b| b.unsigned_abs() > 1 << 40)
            {
                return bad(format!("layer {k}: shape or values out of range"));
            }
            let last = k + 1 == layers.len();
            match (&layer.activation, all_activated || !last) {
                (Some(table), true) => {
                    table
                        .validate()
                        .or_else(|e| bad(format!("layer {k}: {e}")))?;
                }
                (None, false) => {}
                _ => return bad(format!("layer {k}: activation table present or missing")),
            }
            fan_in = out;
        }
        Ok(())
    }

    /// Quantizes the client's dense features.
    pub fn quantize_input(&self, dense: &[f32]) -> Vec<i64> {
        self.input.quantize(dense)
    }

    /// How many independent bootstrap outputs each input of layer `index` (bottom layers, then
    /// top layers) sums: none for the client's fresh inputs and the exact embedding sums, one
    /// for an activation, and for a dot pair feature the bootstrapped squares it sums
    /// ([`DotLayout::pair_noises`]).
    ///
    /// ```
    /// // UCI sizes: bottom 2-8-4, one table of dimension 4, top 8-4-1.
    /// let config = dlrm::ModelPreset::Uci.config(2, &[3]);
    /// let weights = dlrm::Dlrm::new(&config, 1).unwrap().to_weights().unwrap();
    /// let data = datasets::SplitData {
    ///     labels: vec![1, 0], dense: vec![0.5, -1.0, 1.5, 0.2], categorical: vec![0, 2],
    ///     dense_names: vec!["a".into(), "b".into()], categorical_names: vec!["c".into()],
    /// };
    /// let (model, _) = dlrm::quantize(&weights, &data, &dlrm::QuantizeConfig::default()).unwrap();
    /// assert_eq!(model.column_noises(0), vec![0.0; 2]);
    /// assert_eq!(model.column_noises(1), vec![1.0; 8]);
    /// assert_eq!(model.column_noises(2), [[1.0; 4], [0.0; 4]].concat());
    /// ```
    pub fn column_noises(&self, index: usize) -> Vec<f64> {
        column_noises(&self.config, index)
    }

    /// Writes the model as JSON.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.validate()?;
        write_json(path, self)
    }

    /// Reads and validates a model written by [`QuantizedModel::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let model: Self = read_json(path)?;
        model
            .validate()
            .map_err(|e| DlrmError::file(path, e.to_string()))?;
        Ok(model)
    }

    pub(crate) fn format_name() -> String {
        QUANTIZED_FORMAT.into()
    }

    /// The version a model is written as: the oldest that holds it.
    pub(crate) fn format_version_for(
        sanitiser: Option<&OutputSanitiser>,
        roles: &FeatureRoles,
    ) -> u32 {
        match (roles.all_private(), sanitiser) {
            (false, _) => QUANTIZED_FORMAT_VERSION,
            (true, Some(_)) => SANITISED_FORMAT_VERSION,
            (true, None) => UNSANITISED_FORMAT_VERSION,
        }
    }

    /// The model with other feature roles (they change no weight: which inputs are private is
    /// a serving decision), written as the oldest format version that holds them.
    ///
    /// ```
    /// let config = dlrm::ModelPreset::Uci.config(2, &[3, 4]);
    /// let weights = dlrm::Dlrm::new(&config, 1).unwrap().to_weights().unwrap();
    /// let data = datasets::SplitData {
    ///     labels: vec![1, 0], dense: vec![0.5, -1.0, 1.5, 0.2], categorical: vec![0, 2, 1, 3],
    ///     dense_names: vec!["a".into(), "b".into()], categorical_names: vec!["c".into(), "e".into()],
    /// };
    /// let (model, _) = dlrm::quantize(&weights, &data, &dlrm::QuantizeConfig::default()).unwrap();
    /// assert_eq!(model.format_version, 2);
    /// let roles = dlrm::FeatureRoles { dense: vec![], tables: vec![dlrm::Role::Private, dlrm::Role::Public] };
    /// let ranked = model.clone().with_roles(roles).unwrap();
    /// assert_eq!(ranked.format_version, dlrm::QUANTIZED_FORMAT_VERSION);
    /// assert!(model.with_roles(dlrm::FeatureRoles { dense: vec![], tables: vec![dlrm::Role::Public] }).is_err());
    /// ```
    pub fn with_roles(mut self, roles: FeatureRoles) -> Result<Self> {
        self.config.roles = roles;
        self.format_version =
            Self::format_version_for(self.output_sanitiser.as_ref(), &self.config.roles);
        self.validate()?;
        Ok(self)
    }
}

/// [`QuantizedModel::column_noises`] from the architecture alone (the quantizer needs it before
/// the model exists).
pub(crate) fn column_noises(config: &ModelConfig, index: usize) -> Vec<f64> {
    let widths: Vec<usize> = std::iter::once(config.dense_features)
        .chain(config.bottom.iter().copied())
        .chain(config.top.iter().copied())
        .collect();
    let bottom = config.bottom.len();
    if index == 0 {
        // The client's fresh encryptions.
        return vec![0.0; widths[0]];
    }
    if index != bottom {
        return vec![1.0; widths[index]];
    }
    // The first top layer: the bottom output, then the embedding sums or the pair features.
    let bottom_width = config.bottom_output();
    let rest = config.interaction_output() - bottom_width;
    let mut noises = vec![1.0; bottom_width];
    match config.interaction {
        Interaction::Concat => noises.extend(std::iter::repeat_n(0.0, rest)),
        Interaction::Dot => noises.extend(DotLayout::of(config).pair_noises()),
    }
    noises
}

/// Largest magnitude of a signed `bits`-bit value as this format uses it (`2^(bits-1) - 1`).
pub(crate) fn value_limit(bits: u32) -> i64 {
    (1i64 << (bits.clamp(1, 62) - 1)) - 1
}
