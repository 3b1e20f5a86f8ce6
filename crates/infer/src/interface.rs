//! The public contract of a served model: everything a client needs to build requests and read
//! responses (input quantizer, layouts, encodings, table shapes), and nothing it must not see
//! (no weights, no table entries).

use dlrm::{DotLayout, EmbeddingKind, InputQuantizer, QuantizedModel};
use embed::{DigitScheme, LookupPlan, PackingOptions, TableShape};
use fhe::{Encoding, PackedMatVecLayout, ParameterSetId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{InferError, Result, malformed};
use crate::scales::encoding;

const INTERFACE_FORMAT: &str = "dlrm-he/model-interface";
/// Newest version of the interface description this crate writes and reads. Version 2 added
/// feature roles: an interface with a public feature is written as version 2, any other as
/// version 1, byte for byte as before.
pub const INTERFACE_FORMAT_VERSION: u32 = 2;
/// The version an interface whose features are all private is written as.
const ALL_PRIVATE_INTERFACE_VERSION: u32 = 1;
/// Bounds on an interface read from the network: they keep a hostile description from making
/// a client allocate without limit.
const MAX_FEATURES: usize = 1 << 12;
const MAX_TABLES: usize = 1 << 10;
const MAX_TABLE_ROWS: u64 = 1 << 32;
const MAX_DIM: usize = 1 << 12;

/// What a client needs to talk to one model under one parameter set.
///
/// ```
/// # fn main() -> Result<(), infer::InferError> {
/// let model = infer::testing::tiny_model();
/// let interface = infer::ModelInterface::for_model(&model, fhe::ParameterSetId::default())?;
/// assert_eq!(interface.dense_features, 2);
/// assert_eq!(interface.tables.len(), 2);
/// let json = serde_json::to_string(&interface).unwrap();
/// assert_eq!(infer::ModelInterface::from_json(json.as_bytes())?, interface);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelInterface {
    /// Name of the description format, `dlrm-he/model-interface`.
    pub format: String,
    /// Version of the description format: when written by this build,
    /// [`INTERFACE_FORMAT_VERSION`] for a model with a public feature, 1 for any other.
    pub format_version: u32,
    /// SHA-256 of the quantized model file's canonical JSON: requests carry it, so a request
    /// for another model (or another version of this one) is refused.
    pub model_id: String,
    /// The parameter set requests must be encrypted under.
    pub parameter_set: ParameterSetId,
    /// How the client turns dense features into integers.
    pub input: InputQuantizer,
    /// Width of a request's dense input.
    pub dense_features: usize,
    /// Rows of the first bottom layer (the coefficient-packed product the dense GLWEs feed).
    pub first_layer_rows: usize,
    /// Encoding scale (log2) of the dense inputs.
    pub dense_scale_log: u32,
    /// One per categorical feature: rows, dimension and how ids are sent (digits).
    pub tables: Vec<TableShape>,
    /// Encoding scale (log2) of the one-hot query and of the embedding outputs.
    pub lookup_scale_log: u32,
    /// Encoding scale (log2) of the returned logit numerator.
    pub output_scale_log: u32,
    /// `logit = numerator x logit_scale`.
    pub logit_scale: f64,
    /// Which features the client encrypts (private) and which the server knows per candidate
    /// (public) in a ranked request; absent when all are private. A single-row request still
    /// carries every feature encrypted.
    #[serde(default, skip_serializing_if = "dlrm::FeatureRoles::all_private")]
    pub roles: dlrm::FeatureRoles,
}

impl ModelInterface {
    /// The interface of `model` under `parameter_set`.
    pub fn for_model(model: &QuantizedModel, parameter_set: ParameterSetId) -> Result<Self> {
        model.validate()?;
        let c = &model.config;
        let first = model
            .bottom
            .first()
            .ok_or_else(|| InferError::Unsupported("a model without a bottom MLP".into()))?;
        let tables = c
            .tables
            .iter()
            .enumerate()
            .map(|(t, spec)| {
                let digits = match spec.kind {
                    EmbeddingKind::Full => DigitScheme::one_hot(spec.rows as u64),
                    EmbeddingKind::Digits(code) => DigitScheme {
                        base: u64::from(code.base),
                        count: code.digits,
                    },
                };
                let (dim, values) = lookup_values(model, t);
                TableShape {
                    rows: spec.rows as u64,
                    dim,
                    digits,
                    max_abs_value: values.iter().map(|v| v.abs()).max().unwrap_or(0),
                }
            })
            .collect::<Vec<TableShape>>();
        // The lookup outputs feed the first top layer (concat) or the squares (dot). Tables'
        // norms feed the pair features at the top layer's scale: the lookup then runs at the
        // lower of the two scales and the executor multiplies up to each.
        let top_scale = crate::scales::input_scale_log(model, &model.top[0], model.top.len() == 1)?;
        let lookup_scale = match &model.dot {
            None => top_scale,
            Some(dot) if tables.iter().any(|t: &TableShape| t.dim > c.embedding_dim) => {
                crate::scales::activation_input_scale_log(&dot.square)?.min(top_scale)
            }
            Some(dot) => crate::scales::activation_input_scale_log(&dot.square)?,
        };
        let interface = ModelInterface {
            format: INTERFACE_FORMAT.into(),
            format_version: if c.roles.all_private() {
                ALL_PRIVATE_INTERFACE_VERSION
            } else {
                INTERFACE_FORMAT_VERSION
            },
            model_id: model_id(model),
            parameter_set,
            input: model.input.clone(),
            dense_features: c.dense_features,
            first_layer_rows: first.rows,
            dense_scale_log: crate::scales::input_scale_log(model, first, false)?,
            tables,
            lookup_scale_log: lookup_scale,
            output_scale_log: crate::scales::output_scale_log(model)?,
            logit_scale: model.logit_scale,
            roles: c.roles.clone(),
        };
        interface.validate()?;
        Ok(interface)
    }

    /// Reads and checks an interface description (JSON, for example from `GET /v1/models`).
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > 1 << 20 {
            return Err(malformed("model interface", "larger than 1 MiB"));
        }
        let interface: Self = serde_json::from_slice(bytes)
            .map_err(|e| malformed("model interface", e.to_string()))?;
        interface.validate()?;
        Ok(interface)
    }

    /// Checks the description's consistency and bounds (it may come from the network).
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(malformed("model interface", reason));
        if self.format != INTERFACE_FORMAT
            || !(ALL_PRIVATE_INTERFACE_VERSION..=INTERFACE_FORMAT_VERSION)
                .contains(&self.format_version)
        {
            return bad(format!(
                "format {:?} version {}, this build reads {INTERFACE_FORMAT:?} versions 1 to {INTERFACE_FORMAT_VERSION}",
                self.format, self.format_version
            ));
        }
        if self.format_version < INTERFACE_FORMAT_VERSION && !self.roles.all_private() {
            return bad(format!(
                "feature roles need version {INTERFACE_FORMAT_VERSION}, the description says {}",
                self.format_version
            ));
        }
        if let Err(e) = self.roles.check(self.dense_features, self.tables.len()) {
            return bad(e.to_string());
        }
        if self.model_id.len() != 64 || !self.model_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return bad("model id is not a SHA-256 hex digest".into());
        }
        if !(1..=MAX_FEATURES).contains(&self.dense_features)
            || !(1..=MAX_FEATURES).contains(&self.first_layer_rows)
            || self.input.scales.len() != self.dense_features
            || !(1..=dlrm::MAX_VALUE_BITS).contains(&self.input.bits)
            || self
                .input
                .scales
                .iter()
                .any(|s| !(s.is_finite() && *s > 0.0))
        {
            return bad("dense input description out of range".into());
        }
        if self.tables.len() > MAX_TABLES
            || self.tables.iter().any(|t| {
                t.rows == 0
                    || t.rows > MAX_TABLE_ROWS
                    || !(1..=MAX_DIM).contains(&t.dim)
                    || t.digits.base == 0
                    || t.digits.count == 0
                    || t.digits.input_len() > 1 << 24
                    || t.max_abs_value < 0
            })
        {
            return bad("a table shape is out of range".into());
        }
        for scale in [
            self.dense_scale_log,
            self.lookup_scale_log,
            self.output_scale_log,
        ] {
            if !(1..=63).contains(&scale) {
                return bad(format!("scale 2^{scale} out of range"));
            }
        }
        if !(self.logit_scale.is_finite() && self.logit_scale > 0.0) {
            return bad("logit scale out of range".into());
        }
        Ok(())
    }

    /// Where the dense inputs go in the request's GLWE coefficients.
    pub fn dense_layout(&self) -> Result<PackedMatVecLayout> {
        let params = self.parameter_set.parameters();
        Ok(PackedMatVecLayout::new(
            self.first_layer_rows,
            self.dense_features,
            params.polynomial_size(),
        )?)
    }

    /// The packing of the categorical ids (one lookup per table, table order).
    pub fn lookup_plan(&self) -> Result<Option<LookupPlan>> {
        self.plan_for(self.tables.clone())
    }

    /// The packing of a ranked request's encrypted ids: one lookup per private table, in table
    /// order; `None` when no table is private.
    ///
    /// ```
    /// use dlrm::{FeatureRoles, Role};
    /// let roles = FeatureRoles { dense: vec![], tables: vec![Role::Public, Role::Private] };
    /// let model = infer::testing::tiny_model().with_roles(roles).unwrap();
    /// let interface = infer::ModelInterface::for_model(&model, fhe::ParameterSetId::default()).unwrap();
    /// let plan = interface.private_lookup_plan().unwrap().unwrap();
    /// assert_eq!(plan.output_count(), interface.tables[1].dim);
    /// ```
    pub fn private_lookup_plan(&self) -> Result<Option<LookupPlan>> {
        let private = self.roles.private_tables(self.tables.len());
        self.plan_for(private.iter().map(|&t| self.tables[t]).collect())
    }

    fn plan_for(&self, shapes: Vec<TableShape>) -> Result<Option<LookupPlan>> {
        if shapes.is_empty() {
            return Ok(None);
        }
        let options = PackingOptions {
            max_inputs_per_group: None,
            scale_log: Some(self.lookup_scale_log),
        };
        let params = self.parameter_set.parameters();
        Ok(Some(LookupPlan::one_lookup_per_table(
            &params, shapes, options,
        )?))
    }

    /// Whether the model takes ranked requests: some table is public.
    pub fn ranks(&self) -> bool {
        !self.roles.public_tables(self.tables.len()).is_empty()
    }

    /// Encoding of the dense inputs.
    pub fn dense_encoding(&self) -> Encoding {
        encoding(self.dense_scale_log)
    }

    /// Encoding of the returned logit numerator.
    pub fn output_encoding(&self) -> Encoding {
        encoding(self.output_scale_log)
    }

    /// GLWE ciphertexts of a request: dense inputs, then the lookup query.
    pub fn request_glwe_counts(&self) -> Result<(usize, usize)> {
        let query = self.lookup_plan()?.map_or(0, |p| p.query_glwe_count());
        Ok((self.dense_layout()?.input_glwe_count(), query))
    }

    /// GLWE ciphertexts of a ranked request: dense inputs, then the private tables' query.
    pub fn rank_request_glwe_counts(&self) -> Result<(usize, usize)> {
        let query = self
            .private_lookup_plan()?
            .map_or(0, |p| p.query_glwe_count());
        Ok((self.dense_layout()?.input_glwe_count(), query))
    }
}

/// SHA-256 (hex) of the model's canonical JSON.
///
/// ```
/// let model = infer::testing::tiny_model();
/// let id = infer::model_id(&model);
/// assert_eq!(id.len(), 64);
/// let mut other = model.clone();
/// other.logit_scale *= 2.0;
/// assert_ne!(infer::model_id(&other), id);
/// ```
pub fn model_id(model: &QuantizedModel) -> String {
    let json = serde_json::to_vec(model).expect("a quantized model always serialises");
    Sha256::digest(&json)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What table `t`'s lookup returns per row, and its values row by row: the stored entries,
/// then, for a dot model's small full table, the row's squared norm (`dlrm::DotLayout`).
pub(crate) fn lookup_values(model: &QuantizedModel, t: usize) -> (usize, Vec<i64>) {
    let d = model.config.embedding_dim;
    let values = model.tables[t].values.iter().map(|&v| i64::from(v));
    let with_norm = model
        .dot
        .as_ref()
        .filter(|_| DotLayout::of(&model.config).table_norms()[t + 1]);
    match with_norm {
        None => (d, values.collect()),
        Some(dot) => {
            let values: Vec<i64> = values.collect();
            let rows = values
                .chunks_exact(d.max(1))
                .flat_map(|row| row.iter().copied().chain([dot.squared_norm(row)]));
            (d + 1, rows.collect())
        }
    }
}
