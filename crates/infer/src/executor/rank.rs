//! Ranked requests on the prepared model: the user's private part once (the bottom MLP, the
//! private tables' lookups, the first top layer's private columns and bias, and that layer's
//! blind rotations), then per candidate the public tables' lookups in the clear and their
//! share of the first top layer, a plaintext that selects where each rotated table is read (a
//! sample extraction: no bootstrap), and every layer after it, the candidates' bootstraps of
//! one layer in one parallel batch. Dot models rotate the square table instead and run the
//! whole top MLP per candidate (`rank_dot.rs`). The integer reference is
//! [`dlrm::QuantizedModel::rank`].

use std::time::Instant;

use dlrm::{IntTable, Interaction, QuantizedModel, TableConfig};
use embed::{EmbeddingTable, PackedTables};
use fhe::{Encoding, LweBatch, LweDenseLayer, RotatedTables, ServerKey};
use rayon::prelude::*;

use super::rank_dot::RankedDot;
use super::{ServerModel, append_lookups, may_start, never};
use crate::error::{InferError, Result};
use crate::interface::lookup_values;
use crate::plan::FhePlan;
use crate::rank_wire::{RankLogits, RankRequest, RankResponse, check_candidates};
use crate::scales::{encoding, shifted_bias};
use crate::timings::StageTimings;

/// What a ranked request computed once, that every candidate reads.
enum Once<'a> {
    Concat {
        public_weights: &'a [i64],
        /// The first top layer's accumulators without the public columns.
        accumulators: LweBatch,
        /// Their blind rotations, with a table after the layer.
        rotated: Option<RotatedTables>,
    },
    Dot {
        dot: &'a RankedDot,
        /// The first top layer's accumulators without the candidates' shares.
        accumulators: LweBatch,
        /// The square table rotated by every private vector entry.
        rotated: RotatedTables,
    },
}

/// Ciphertexts of one layer bootstrapped together across candidates: enough to keep every
/// thread busy, few enough to bound the memory a request holds (16 KiB each on 2_2).
const CIPHERTEXTS_PER_BATCH: usize = 4096;

/// What a ranked request needs beyond a single row's stages.
pub(super) struct RankedPart {
    /// The private tables, packed for the request's encrypted query.
    private_tables: Option<PackedTables>,
    /// The public tables, looked up in the clear, in table order.
    public_tables: Vec<(TableConfig, IntTable)>,
    dim: usize,
    /// The first top layer's accumulator unit, at which the public share is added.
    unit: Encoding,
    first: FirstLayer,
}

/// How the first top layer's accumulators are shared between the request and its candidates.
enum FirstLayer {
    /// Candidates differ by a plaintext only: the public embeddings' columns.
    Concat {
        /// The first top layer on its private columns (the bottom output, then the private
        /// tables' embeddings), with the layer's bias.
        private_first: LweDenseLayer,
        /// The first top layer's weights on its public columns, row by row.
        public_weights: Vec<i64>,
    },
    /// Candidates differ by ciphertexts: the pairs of a private and a public vector.
    Dot(Box<RankedDot>),
}

impl RankedPart {
    /// `None` for a model without a public table.
    pub(super) fn new(model: &QuantizedModel, plan: &FhePlan) -> Result<Option<Self>> {
        let c = &model.config;
        let public = c.roles.public_tables(c.tables.len());
        if public.is_empty() {
            return Ok(None);
        }
        let private = c.roles.private_tables(c.tables.len());
        let (b, d) = (c.bottom_output(), c.embedding_dim);
        let layer = &plan.layers[plan.bottom_layers];
        let first = match c.interaction {
            Interaction::Dot => FirstLayer::Dot(Box::new(RankedDot::new(model, plan)?)),
            Interaction::Concat => {
                let columns = |tables: &[usize]| -> Vec<usize> {
                    tables
                        .iter()
                        .flat_map(|&t| b + t * d..b + (t + 1) * d)
                        .collect()
                };
                let private_columns: Vec<usize> = (0..b).chain(columns(&private)).collect();
                let first = &model.top[0];
                let weights = |columns: &[usize]| -> Vec<i64> {
                    (0..first.rows)
                        .flat_map(|r| {
                            columns
                                .iter()
                                .map(move |&col| i64::from(first.weights[r * first.cols + col]))
                        })
                        .collect()
                };
                let boxes = layer.activation.map(|a| (a.lo, a.box_shift));
                let (bias, bias_encoding) = shifted_bias(&first.bias, boxes, layer.input_scale_log);
                FirstLayer::Concat {
                    private_first: LweDenseLayer::new(
                        first.rows,
                        private_columns.len(),
                        weights(&private_columns),
                        bias,
                        bias_encoding,
                    )?,
                    public_weights: weights(&columns(&public)),
                }
            }
        };
        let private_tables = match plan.interface.private_lookup_plan()? {
            None => None,
            Some(lookup_plan) => {
                let tables = private
                    .iter()
                    .map(|&t| {
                        EmbeddingTable::new(plan.interface.tables[t], lookup_values(model, t).1)
                    })
                    .collect::<embed::Result<Vec<_>>>()?;
                Some(PackedTables::new(lookup_plan, tables)?)
            }
        };
        Ok(Some(RankedPart {
            private_tables,
            public_tables: (public.iter())
                .map(|&t| (c.tables[t], model.tables[t].clone()))
                .collect(),
            dim: d,
            unit: encoding(layer.input_scale_log),
            first,
        }))
    }

    /// One candidate's public vectors (its public tables' embeddings), in table order.
    fn public_vectors(&self, ids: &[u32]) -> Vec<Vec<i64>> {
        (self.public_tables.iter().zip(ids))
            .map(|((spec, table), &id)| table.lookup(spec, self.dim, id))
            .collect()
    }
}

/// The concat public columns' share of the first top layer's accumulators for one candidate.
fn public_share(public_weights: &[i64], vectors: &[Vec<i64>]) -> Vec<i64> {
    let values = vectors.concat();
    public_weights
        .chunks_exact(values.len())
        .map(|row| row.iter().zip(&values).map(|(w, v)| w * v).sum())
        .collect()
}

impl ServerModel {
    /// Runs a ranked request with the client's server key: one encrypted logit numerator per
    /// candidate, in request order.
    ///
    /// ```
    /// use dlrm::{FeatureRoles, Role};
    /// use fhe::{ClientKey, KeySeed, ParameterSetId};
    /// let roles = FeatureRoles { dense: vec![], tables: vec![Role::Private, Role::Public] };
    /// let model = infer::testing::tiny_model().with_roles(roles)?;
    /// let server = infer::ServerModel::new(&model, ParameterSetId::default())?;
    /// let client_key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let server_key = client_key.compressed_server_key(KeySeed(2)).decompress();
    /// let candidates = vec![vec![1], vec![7], vec![4]];
    /// let request = infer::encrypt_rank_request(
    ///     &client_key, server.interface(), &[0.5, -1.0], &[3], &candidates, 10)?;
    /// let (response, _timings) = server.rank(&server_key, &request)?;
    /// let numerators = infer::decrypt_rank_response(&client_key, server.interface(), &response)?;
    /// let exact = model.rank(&model.quantize_input(&[0.5, -1.0]), &[3], &candidates)?;
    /// assert_eq!(numerators, exact); // the tiny model is exact by construction
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rank(
        &self,
        key: &ServerKey,
        request: &RankRequest,
    ) -> Result<(RankResponse, StageTimings)> {
        self.rank_until(key, request, &never)
    }

    /// [`ServerModel::rank`], asking `abandoned` between stages whether the caller still wants
    /// the answer (see [`ServerModel::infer_batch_bytes_until`]): a service decodes the request
    /// itself, so that it tells the sender's errors from its own.
    pub fn rank_until(
        &self,
        key: &ServerKey,
        request: &RankRequest,
        abandoned: &(dyn Fn() -> bool + Sync),
    ) -> Result<(RankResponse, StageTimings)> {
        let mut timings = StageTimings::default();
        let response = self.run_ranked(key, request, &mut timings, abandoned)?;
        Ok((response, timings))
    }

    /// Whether the model runs ranked requests: `Err(InferError::Unsupported)` with the reason
    /// (no public table) when it does not.
    ///
    /// ```
    /// use dlrm::{FeatureRoles, Role};
    /// let set = fhe::ParameterSetId::default();
    /// let all_private = infer::ServerModel::new(&infer::testing::tiny_model(), set)?;
    /// assert!(all_private.takes_ranked_requests().is_err());
    /// let roles = FeatureRoles { dense: vec![], tables: vec![Role::Private, Role::Public] };
    /// let ranked = infer::ServerModel::new(&infer::testing::tiny_model().with_roles(roles)?, set)?;
    /// assert!(ranked.takes_ranked_requests().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn takes_ranked_requests(&self) -> Result<()> {
        self.ranked_part().map(|_| ())
    }

    fn ranked_part(&self) -> Result<&RankedPart> {
        self.ranked.as_ref().ok_or_else(|| {
            InferError::Unsupported(
                "the model has no public table: rank with single-row requests".into(),
            )
        })
    }

    /// Runs a ranked request given as bytes (at most `max_candidates` candidates) and returns
    /// the answer as bytes, asking `abandoned` between stages whether the caller still wants it
    /// (see [`ServerModel::infer_batch_bytes_until`]). The timings include decoding and
    /// encoding.
    pub fn rank_bytes_until(
        &self,
        key: &ServerKey,
        bytes: &[u8],
        max_candidates: usize,
        abandoned: &(dyn Fn() -> bool + Sync),
    ) -> Result<(Vec<u8>, StageTimings)> {
        let started = Instant::now();
        let request = RankRequest::from_bytes(bytes, self.interface(), max_candidates)?;
        let decode = started.elapsed();
        let mut timings = StageTimings::default();
        let response = self.run_ranked(key, &request, &mut timings, abandoned)?;
        timings.decode += decode;
        let started = Instant::now();
        let bytes = response.to_bytes()?;
        timings.encode += started.elapsed();
        Ok((bytes, timings))
    }

    fn run_ranked(
        &self,
        key: &ServerKey,
        request: &RankRequest,
        timings: &mut StageTimings,
        abandoned: &(dyn Fn() -> bool + Sync),
    ) -> Result<RankResponse> {
        let part = self.ranked_part()?;
        self.check_request(key, &request.model_id, request.parameter_set)?;
        check_candidates(self.interface(), &request.candidates, usize::MAX)?;
        let (mut x, mut vectors) =
            self.bottom(key, &request.dense, timings, &mut None, abandoned)?;

        may_start(abandoned, "lookup")?;
        let (tables, query) = (part.private_tables.as_ref(), request.query.as_ref());
        append_lookups(tables, query, &mut x, &mut vectors, "rank request", timings)?;

        let (first, rest) = self.top_stages().split_first().expect("a top MLP");
        let once = match (&part.first, &self.dot, &vectors) {
            (
                FirstLayer::Concat {
                    private_first,
                    public_weights,
                },
                ..,
            ) => {
                let started = Instant::now();
                let accumulators = private_first.apply(&x)?;
                // The candidates' first top layer accumulators differ from these by a
                // plaintext only: one blind rotation per row, read at each candidate's offset.
                let rotated = (first.table.as_ref())
                    .map(|table| key.keyswitch_blind_rotate(&accumulators, table))
                    .transpose()?;
                timings.top += started.elapsed();
                Once::Concat {
                    public_weights,
                    accumulators,
                    rotated,
                }
            }
            (FirstLayer::Dot(dot), Some(stage), Some(vectors)) => {
                may_start(abandoned, "interaction")?;
                let started = Instant::now();
                let (accumulators, rotated) = dot.once(key, &stage.square, &x, vectors)?;
                timings.interaction = started.elapsed();
                Once::Dot {
                    dot,
                    accumulators,
                    rotated,
                }
            }
            _ => {
                return Err(InferError::Unsupported(
                    "a dot model without its interaction stage".into(),
                ));
            }
        };

        let started = Instant::now();
        let per_batch = (CIPHERTEXTS_PER_BATCH / first.dense.outputs().max(1)).max(1);
        let mut logits = Vec::with_capacity(request.candidates.len().div_ceil(per_batch));
        for group in request.candidates.chunks(per_batch) {
            may_start(abandoned, "top")?;
            let public: Vec<Vec<Vec<i64>>> = group
                .par_iter()
                .map(|ids| part.public_vectors(ids))
                .collect();
            let mut x = match &once {
                Once::Concat {
                    public_weights,
                    accumulators: once,
                    rotated,
                } => {
                    let shares: Vec<Vec<i64>> = (public.iter())
                        .map(|vectors| public_share(public_weights, vectors))
                        .collect();
                    match rotated {
                        Some(rotated) => rotated.read(&shares.concat(), part.unit)?,
                        None => {
                            let accumulators = (shares.iter())
                                .map(|share| {
                                    let mut accumulators = once.clone();
                                    accumulators.add_plaintexts(share, part.unit)?;
                                    Ok(accumulators)
                                })
                                .collect::<Result<Vec<_>>>()?;
                            LweBatch::concat(&accumulators)?
                        }
                    }
                }
                Once::Dot {
                    dot,
                    accumulators: once,
                    rotated,
                } => {
                    let accumulators = (public.par_iter())
                        .map(|vectors| dot.accumulators(rotated, once, vectors, part.unit))
                        .collect::<Result<Vec<_>>>()?;
                    let accumulators = LweBatch::concat(&accumulators)?;
                    match &first.table {
                        Some(table) => key.keyswitch_bootstrap(&accumulators, table)?,
                        None => accumulators,
                    }
                }
            };
            for stage in rest {
                may_start(abandoned, "top")?;
                let inputs = x.split_equal(x.len() / group.len())?;
                let outputs = (inputs.par_iter())
                    .map(|input| stage.dense.apply(input))
                    .collect::<fhe::Result<Vec<_>>>()?;
                x = LweBatch::concat(&outputs)?;
                if let Some(table) = &stage.table {
                    x = key.keyswitch_bootstrap(&x, table)?;
                }
            }
            logits.push(x);
        }
        timings.top += started.elapsed();
        let logits = LweBatch::concat(&logits)?;
        may_start(abandoned, "encode")?;
        let started = Instant::now();
        let logits = match packing_pays(key, logits.len()) {
            true => RankLogits::Packed(key.pack(&logits)?),
            false => RankLogits::Separate(logits),
        };
        timings.encode += started.elapsed();
        Ok(RankResponse {
            model_id: self.interface().model_id.clone(),
            parameter_set: self.interface().parameter_set,
            logits,
        })
    }
}

/// Whether `count` logits come back smaller packed: the key carries a packing key and the GLWE
/// ciphertexts they need take fewer bytes than one LWE ciphertext each (from two on, with the
/// 2_2 set).
fn packing_pays(key: &ServerKey, count: usize) -> bool {
    let params = key.parameters();
    let Some(packing) = params.packing() else {
        return false;
    };
    let packed = count.div_ceil(packing.scores_per_glwe()) * packing.glwe_bytes();
    let separate = count * params.big_lwe_dimension().ciphertext_words() * 8;
    key.has_packing_key() && packed < separate
}
