//! Model architecture and training configuration, with the named presets.

use serde::{Deserialize, Serialize};

use crate::{DigitCode, DlrmError, FeatureRoles, Result};

/// Largest layer width, table size or embedding dimension a configuration may ask for: model
/// files are untrusted, and this bounds what loading one can allocate.
pub const MAX_WIDTH: usize = 1 << 16;
/// Largest table, in rows.
pub const MAX_TABLE_ROWS: usize = 1 << 28;

/// How the bottom output and the embeddings are combined before the top MLP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interaction {
    /// `[bottom | e_0 | ... | e_{T-1}]` (as HE-LRM uses; linear, so it runs under encryption).
    Concat,
    /// The original DLRM: bottom output followed by the pairwise dot products of
    /// `[bottom, e_0, ..., e_{T-1}]`, in the reference order (pairs `(i, j)`, `j < i`, by `i`).
    Dot,
}

/// How one table stores its rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EmbeddingKind {
    /// One `dim`-vector per id (`V x d`).
    Full,
    /// `E[i] = sum_j C_j[d_j(i)]` with `l` codebooks of `p x d`.
    Digits(DigitCode),
}

/// One embedding table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableConfig {
    /// Vocabulary size `V` (ids are `0..V`).
    pub rows: usize,
    /// How the rows are stored.
    #[serde(flatten)]
    pub kind: EmbeddingKind,
}

impl TableConfig {
    /// Rows of the stored parameter matrix: `V` for a full table, `l * p` for digits.
    ///
    /// ```
    /// use dlrm::{DigitCode, EmbeddingKind, TableConfig};
    /// let t = TableConfig { rows: 1000, kind: EmbeddingKind::Digits(DigitCode { base: 10, digits: 3 }) };
    /// assert_eq!(t.stored_rows(), 30);
    /// ```
    pub fn stored_rows(&self) -> usize {
        match self.kind {
            EmbeddingKind::Full => self.rows,
            EmbeddingKind::Digits(code) => code.codebook_rows(),
        }
    }

    /// Parts summed to form one row: 1 for a full table, `l` for digits.
    ///
    /// ```
    /// use dlrm::{EmbeddingKind, TableConfig};
    /// assert_eq!(TableConfig { rows: 5, kind: EmbeddingKind::Full }.parts(), 1);
    /// ```
    pub fn parts(&self) -> usize {
        match self.kind {
            EmbeddingKind::Full => 1,
            EmbeddingKind::Digits(code) => code.digits as usize,
        }
    }

    /// Row of the stored matrix used by part `part` for `id`.
    ///
    /// ```
    /// use dlrm::{DigitCode, EmbeddingKind, TableConfig};
    /// let t = TableConfig { rows: 100, kind: EmbeddingKind::Digits(DigitCode { base: 10, digits: 2 }) };
    /// assert_eq!((t.stored_row(47, 0), t.stored_row(47, 1)), (7, 14));
    /// ```
    pub fn stored_row(&self, id: u32, part: usize) -> usize {
        match self.kind {
            EmbeddingKind::Full => id as usize,
            EmbeddingKind::Digits(code) => {
                let digit = (id / code.base.pow(part as u32)) % code.base;
                code.stacked_row(part, digit)
            }
        }
    }
}

/// The architecture of a DLRM.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Width of the dense input.
    pub dense_features: usize,
    /// Output widths of the bottom MLP's layers (each followed by ReLU).
    pub bottom: Vec<usize>,
    /// Embedding dimension `d`.
    pub embedding_dim: usize,
    /// One embedding table per categorical feature, in input order.
    pub tables: Vec<TableConfig>,
    /// How the bottom output and the embeddings are combined.
    pub interaction: Interaction,
    /// Output widths of the top MLP's layers; ReLU after all but the last, which must be 1.
    pub top: Vec<usize>,
    /// Which features are the client's (private) and which the server's (public); absent
    /// (all private) unless some feature is public, so all-private files are unchanged.
    #[serde(default, skip_serializing_if = "FeatureRoles::all_private")]
    pub roles: FeatureRoles,
}

impl ModelConfig {
    /// Checks sizes and consistency (the bottom output must be `d` wide for `dot`).
    ///
    /// ```
    /// let c = dlrm::ModelPreset::Uci.config(5, &[2, 4, 2]);
    /// assert!(c.validate().is_ok());
    /// ```
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(DlrmError::config(reason));
        if self.bottom.is_empty() || self.top.is_empty() {
            return bad("bottom and top MLPs need at least one layer each".into());
        }
        if self.top.last() != Some(&1) {
            return bad("the top MLP must end in one output (the logit)".into());
        }
        let widths = [self.dense_features, self.embedding_dim]
            .into_iter()
            .chain(self.bottom.iter().copied())
            .chain(self.top.iter().copied());
        for w in widths {
            if w == 0 || w > MAX_WIDTH {
                return bad(format!("width {w} outside 1..={MAX_WIDTH}"));
            }
        }
        if self.tables.len() > MAX_WIDTH {
            return bad(format!("{} tables", self.tables.len()));
        }
        for (t, table) in self.tables.iter().enumerate() {
            if table.rows == 0 || table.rows > MAX_TABLE_ROWS {
                return bad(format!("table {t}: {} rows", table.rows));
            }
            if let EmbeddingKind::Digits(code) = table.kind {
                code.check(table.rows)?;
                if code.codebook_rows() > MAX_TABLE_ROWS {
                    return bad(format!("table {t}: codebooks too large"));
                }
            }
        }
        self.roles.check(self.dense_features, self.tables.len())?;
        if self.interaction == Interaction::Dot && self.bottom_output() != self.embedding_dim {
            return bad(format!(
                "dot interaction needs the bottom output ({}) to equal d ({})",
                self.bottom_output(),
                self.embedding_dim
            ));
        }
        Ok(())
    }

    /// Width of the bottom MLP's output.
    pub fn bottom_output(&self) -> usize {
        *self.bottom.last().expect("validated: bottom is not empty")
    }

    /// Width of the interaction output (the top MLP's input).
    ///
    /// ```
    /// use dlrm::{Interaction, ModelPreset};
    /// let mut c = ModelPreset::CriteoDlrm.config(13, &[10; 26]);
    /// assert_eq!(c.interaction_output(), 16 + 27 * 26 / 2);
    /// c.interaction = Interaction::Concat;
    /// assert_eq!(c.interaction_output(), 16 + 26 * 16);
    /// ```
    pub fn interaction_output(&self) -> usize {
        let tables = self.tables.len();
        match self.interaction {
            Interaction::Concat => self.bottom_output() + tables * self.embedding_dim,
            Interaction::Dot => self.bottom_output() + (tables + 1) * tables / 2,
        }
    }

    /// Hidden activations of the model (what costs a bootstrap each under encryption).
    ///
    /// ```
    /// let c = dlrm::ModelPreset::Uci.config(5, &[2; 8]);
    /// assert!(c.activations() < 50);
    /// ```
    pub fn activations(&self) -> usize {
        self.bottom.iter().sum::<usize>() + self.top[..self.top.len() - 1].iter().sum::<usize>()
    }

    /// Stored embedding parameters (all tables).
    ///
    /// ```
    /// let c = dlrm::ModelPreset::Uci.config(5, &[2, 4]);
    /// assert_eq!(c.embedding_parameters(), 6 * c.embedding_dim);
    /// ```
    pub fn embedding_parameters(&self) -> usize {
        self.tables
            .iter()
            .map(TableConfig::stored_rows)
            .sum::<usize>()
            * self.embedding_dim
    }
}

/// How a preset stores its tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EmbeddingPolicy {
    /// Every table full.
    Full,
    /// Digit tables where they are cheaper: a table stays full when `V <= max_inputs`, otherwise
    /// it gets the fewest digits (the most parameters, closest to a full table) whose lookup
    /// sends at most `max_inputs` one-hot coefficients; if none does, the cheapest code.
    Digits {
        /// Most one-hot coefficients the client may send for one table.
        max_inputs: usize,
    },
}

impl EmbeddingPolicy {
    /// The storage of a table of `rows` ids.
    ///
    /// ```
    /// use dlrm::{DigitCode, EmbeddingKind, EmbeddingPolicy};
    /// let p = EmbeddingPolicy::Digits { max_inputs: 256 };
    /// assert_eq!(p.kind_for(200), EmbeddingKind::Full);
    /// assert_eq!(p.kind_for(10_131), EmbeddingKind::Digits(DigitCode { base: 101, digits: 2 }));
    /// ```
    pub fn kind_for(&self, rows: usize) -> EmbeddingKind {
        match *self {
            Self::Full => EmbeddingKind::Full,
            Self::Digits { max_inputs } if rows <= max_inputs => EmbeddingKind::Full,
            Self::Digits { max_inputs } => {
                let codes = (2..=64).map(|l| DigitCode::smallest(rows, l));
                let cheapest = codes
                    .clone()
                    .min_by_key(DigitCode::codebook_rows)
                    .expect("non-empty range");
                EmbeddingKind::Digits(
                    codes
                        .into_iter()
                        .find(|c| c.codebook_rows() <= max_inputs)
                        .unwrap_or(cheapest),
                )
            }
        }
    }
}

/// The named architectures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelPreset {
    /// UCI heart disease, sized for encrypted latency: 16 activations.
    Uci,
    /// Criteo, sized for encrypted serving: bottom 13-32-16, d = 16, concat, top 64-16-1, digit
    /// tables above 256 rows.
    CriteoSmall,
    /// The reference Kaggle DLRM: bottom 13-512-256-64-16, d = 16, dot, top 512-256-1.
    CriteoDlrm,
    /// Criteo for ranked requests: `criteo-small` with a one-hidden-layer head (top 64-1), so
    /// that a candidate costs no bootstrap (the head's blind rotations run once per request,
    /// docs/rank.md); with 26 tables the illustrative 13/13 roles are set.
    CriteoRank,
}

impl ModelPreset {
    /// Every preset with its command-line name.
    pub const ALL: [(&'static str, ModelPreset); 4] = [
        ("uci", Self::Uci),
        ("criteo-small", Self::CriteoSmall),
        ("criteo-dlrm", Self::CriteoDlrm),
        ("criteo-rank", Self::CriteoRank),
    ];

    /// A preset by its command-line name.
    ///
    /// ```
    /// assert_eq!(dlrm::ModelPreset::from_name("uci"), Some(dlrm::ModelPreset::Uci));
    /// ```
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|&(_, p)| p)
    }

    /// The table storage policy of the preset.
    pub fn embedding_policy(self) -> EmbeddingPolicy {
        match self {
            Self::Uci | Self::CriteoDlrm => EmbeddingPolicy::Full,
            Self::CriteoSmall | Self::CriteoRank => EmbeddingPolicy::Digits { max_inputs: 256 },
        }
    }

    /// The architecture for a dataset with `dense_features` inputs and these table sizes.
    ///
    /// ```
    /// let c = dlrm::ModelPreset::CriteoSmall.config(13, &[10_131, 3]);
    /// assert_eq!(c.bottom, vec![32, 16]);
    /// ```
    pub fn config(self, dense_features: usize, table_rows: &[usize]) -> ModelConfig {
        self.config_with_policy(dense_features, table_rows, self.embedding_policy())
    }

    /// Like [`ModelPreset::config`] with another table policy.
    ///
    /// ```
    /// use dlrm::{EmbeddingKind, EmbeddingPolicy, ModelPreset};
    /// let c = ModelPreset::CriteoSmall.config_with_policy(13, &[10_131], EmbeddingPolicy::Full);
    /// assert_eq!(c.tables[0].kind, EmbeddingKind::Full);
    /// ```
    pub fn config_with_policy(
        self,
        dense_features: usize,
        table_rows: &[usize],
        policy: EmbeddingPolicy,
    ) -> ModelConfig {
        let (bottom, embedding_dim, interaction, top) = match self {
            Self::Uci => (vec![8, 4], 4, Interaction::Concat, vec![4, 1]),
            Self::CriteoSmall => (vec![32, 16], 16, Interaction::Concat, vec![64, 16, 1]),
            Self::CriteoRank => (vec![32, 16], 16, Interaction::Concat, vec![64, 1]),
            Self::CriteoDlrm => (
                vec![512, 256, 64, 16],
                16,
                Interaction::Dot,
                vec![512, 256, 1],
            ),
        };
        let tables = table_rows
            .iter()
            .map(|&rows| TableConfig {
                rows,
                kind: policy.kind_for(rows),
            })
            .collect();
        ModelConfig {
            dense_features,
            bottom,
            embedding_dim,
            tables,
            interaction,
            top,
            roles: match (self, table_rows.len()) {
                (Self::CriteoRank, 26) => FeatureRoles::criteo_illustrative(),
                _ => FeatureRoles::default(),
            },
        }
    }

    /// The training settings the preset was tuned with.
    ///
    /// ```
    /// assert!(dlrm::ModelPreset::Uci.train_config().epochs > 0);
    /// ```
    pub fn train_config(self) -> TrainConfig {
        match self {
            Self::Uci => TrainConfig {
                epochs: 40,
                batch_size: 16,
                learning_rate: 1e-3,
                weight_decay: 0.1,
                patience: None,
                seed: 7,
            },
            Self::CriteoSmall | Self::CriteoDlrm | Self::CriteoRank => TrainConfig {
                epochs: 4,
                batch_size: 1024,
                learning_rate: 2e-3,
                weight_decay: 0.0,
                patience: Some(1),
                seed: 7,
            },
        }
    }
}

/// Training settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the training split (at most, with `patience`).
    pub epochs: usize,
    /// Rows per optimiser step.
    pub batch_size: usize,
    /// AdamW step size.
    pub learning_rate: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Stop after this many epochs without a better validation log loss (keeping the best
    /// weights); `None` trains every epoch and keeps the last weights.
    pub patience: Option<usize>,
    /// Seeds initialisation and shuffling: a run is reproducible for a given thread count.
    pub seed: u64,
}

impl TrainConfig {
    /// Checks that the settings can train.
    ///
    /// ```
    /// let mut t = dlrm::ModelPreset::Uci.train_config();
    /// t.batch_size = 0;
    /// assert!(t.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 || self.batch_size > 1 << 20 {
            return Err(DlrmError::config("batch size must be in 1..=2^20"));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(DlrmError::config("learning rate must be positive"));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(DlrmError::config("weight decay must be >= 0"));
        }
        Ok(())
    }
}
