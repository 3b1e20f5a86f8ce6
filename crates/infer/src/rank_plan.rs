//! The bootstrap counts of a ranked request (one user's private inputs, K candidates' public
//! inputs): what runs once per request and what runs per candidate, from the architecture and
//! its feature roles alone. `docs/rank.md` explains the split; the encrypted executor
//! (`ServerModel::rank`) runs exactly these.

use std::fmt;

use dlrm::{DotLayout, Interaction, ModelConfig, QuantizedModel};
use serde::Serialize;

use crate::error::{InferError, Result};

/// Bootstraps of a ranked request with `candidates` candidates: `once + candidates x
/// per_candidate`.
///
/// ```
/// let model = infer::testing::tiny_model();
/// let roles = dlrm::FeatureRoles { dense: vec![], tables: vec![dlrm::Role::Private, dlrm::Role::Public] };
/// let model = model.with_roles(roles).unwrap();
/// let plan = infer::RankPlan::for_model(&model, 10).unwrap();
/// // Bottom 3 + 2 and the first top layer's 3 blind rotations once; nothing per candidate
/// // (each candidate reads the rotated tables at its own offset).
/// assert_eq!((plan.once, plan.per_candidate, plan.total()), (8, 0, 8));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RankPlan {
    /// Candidates in the request.
    pub candidates: usize,
    /// Bootstraps run once: the bottom MLP's activations; for concat, the first top layer's
    /// blind rotations (or the sanitiser's, for a one-layer top MLP), which every candidate
    /// reads at its own offset; for the dot interaction, the bottom output's copies at the
    /// squares' scale, the squares of the sums of two private vectors, and one blind rotation
    /// of the square table per private vector entry, which gives the entry's square and every
    /// candidate's squares of its sums with public entries.
    pub once: usize,
    /// Bootstraps run per candidate: the top MLP's activations (for the dot interaction the
    /// first top layer's too, whose inputs now differ per candidate by ciphertexts); the output
    /// sanitiser's (unless it is a concat model's first top layer read).
    pub per_candidate: usize,
    /// Bootstraps of one single-row request with every feature encrypted (today's request).
    pub single_row: usize,
}

impl RankPlan {
    /// The counts for a quantized model (its roles and whether it sanitises its output).
    pub fn for_model(model: &QuantizedModel, candidates: usize) -> Result<Self> {
        Self::for_config(&model.config, model.output_sanitiser.is_some(), candidates)
    }

    /// The counts for an architecture with its roles (`sanitised`: whether the output is
    /// sanitised by one more bootstrap). Refuses `candidates == 0` and invalid configurations.
    ///
    /// ```
    /// let config = dlrm::ModelPreset::CriteoSmall.config(13, &[100; 26]);
    /// let all_private = infer::RankPlan::for_config(&config, false, 1).unwrap();
    /// assert_eq!(all_private.total(), all_private.single_row);
    /// assert!(infer::RankPlan::for_config(&config, false, 0).is_err());
    /// ```
    pub fn for_config(config: &ModelConfig, sanitised: bool, candidates: usize) -> Result<Self> {
        config.validate()?;
        if candidates == 0 {
            return Err(InferError::Unsupported(
                "a ranked request needs at least one candidate".into(),
            ));
        }
        let bottom: usize = config.bottom.iter().sum();
        let top = config.top[..config.top.len() - 1].iter().sum::<usize>() + usize::from(sanitised);
        let (mut once, mut per_candidate, mut single_row) = (bottom, top, bottom + top);
        // Concat: the first top layer's rows (or the sanitiser of a one-layer top) are blind-
        // rotated once and read at every candidate's plaintext offset.
        let first_reads = match config.top.len() {
            1 => usize::from(sanitised),
            _ => config.top[0],
        };
        if config.interaction == Interaction::Concat {
            once += first_reads;
            per_candidate -= first_reads;
        }
        if config.interaction == Interaction::Dot {
            let layout = DotLayout::of(config);
            let d = config.embedding_dim;
            let private = |v: usize| config.roles.vector_is_private(v);
            let squared = |v: usize| !layout.table_norms()[v];
            let vectors = config.tables.len() + 1;
            let public = (0..vectors).any(|v| !private(v));
            // The bottom output's copies; one blind rotation of the square table per entry of
            // a private vector that is squared entry by entry or meets a public vector (read at
            // offset 0 for its own square, at each candidate's public entries for the pairs);
            // the squares of the sums of two private vectors.
            let rotated = (0..vectors)
                .filter(|&v| private(v) && (squared(v) || public))
                .count();
            let private_pairs = dlrm::dot_pairs(vectors)
                .filter(|&(i, j)| private(i) && private(j))
                .count();
            once += d + rotated * d + private_pairs * d;
            single_row += d + layout.square_count();
        }
        Ok(Self {
            candidates,
            once,
            per_candidate,
            single_row,
        })
    }

    /// Bootstraps of the whole request: `once + candidates x per_candidate`.
    pub fn total(&self) -> usize {
        self.once + self.candidates * self.per_candidate
    }
}

impl fmt::Display for RankPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = self.candidates;
        write!(
            f,
            "ranked request, {k} candidate{}: {} bootstraps once + {} per candidate x {k} = {} \
             ({:.1} per candidate; {k} single-row request{} with every feature encrypted: {})",
            if k == 1 { "" } else { "s" },
            self.once,
            self.per_candidate,
            self.total(),
            self.total() as f64 / k as f64,
            if k == 1 { "" } else { "s" },
            k * self.single_row
        )
    }
}
