//! Ranked requests on the prepared model: the user's private part once (the bottom MLP, the
//! private tables' lookups, the first top layer's private columns and bias, and that layer's
//! blind rotations), then per candidate the public tables' lookups in the clear and their
//! share of the first top layer, a plaintext that selects where each rotated table is read (a
//! sample extraction: no bootstrap), and every layer after it, the candidates' bootstraps of
//! one layer in one parallel batch. The integer reference is [`dlrm::QuantizedModel::rank`].

use std::time::Instant;

use dlrm::{IntTable, Interaction, QuantizedModel, TableConfig};
use embed::{EmbeddingTable, OutputOrder, PackedTables};
use fhe::{Encoding, LweBatch, LweDenseLayer, ServerKey};
use rayon::prelude::*;

use super::{ServerModel, may_start, never};
use crate::error::{InferError, Result, malformed};
use crate::interface::lookup_values;
use crate::plan::FhePlan;
use crate::rank_wire::{RankRequest, RankResponse, check_candidates};
use crate::scales::{encoding, shifted_bias};
use crate::timings::StageTimings;

/// Ciphertexts of one layer bootstrapped together across candidates: enough to keep every
/// thread busy, few enough to bound the memory a request holds (16 KiB each on 2_2).
const CIPHERTEXTS_PER_BATCH: usize = 4096;

/// What a ranked request needs beyond a single row's stages.
pub(super) struct RankedPart {
    /// The private tables, packed for the request's encrypted query.
    private_tables: Option<PackedTables>,
    /// The first top layer on its private columns (the bottom output, then the private tables'
    /// embeddings), with the layer's bias.
    private_first: LweDenseLayer,
    /// The first top layer's weights on its public columns, row by row.
    public_weights: Vec<i64>,
    /// The public tables, looked up in the clear, in table order.
    public_tables: Vec<(TableConfig, IntTable)>,
    dim: usize,
    /// The first top layer's accumulator unit, at which the public share is added.
    unit: Encoding,
}

impl RankedPart {
    /// `None` for a model without a public table, or with the dot interaction (not built).
    pub(super) fn new(model: &QuantizedModel, plan: &FhePlan) -> Result<Option<Self>> {
        let c = &model.config;
        let public = c.roles.public_tables(c.tables.len());
        if public.is_empty() || c.interaction != Interaction::Concat {
            return Ok(None);
        }
        let private = c.roles.private_tables(c.tables.len());
        let (b, d) = (c.bottom_output(), c.embedding_dim);
        let columns = |tables: &[usize]| -> Vec<usize> {
            tables
                .iter()
                .flat_map(|&t| b + t * d..b + (t + 1) * d)
                .collect()
        };
        let private_columns: Vec<usize> = (0..b).chain(columns(&private)).collect();
        let public_columns = columns(&public);
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
        let layer = &plan.layers[plan.bottom_layers];
        let boxes = layer.activation.map(|a| (a.lo, a.box_shift));
        let (bias, bias_encoding) = shifted_bias(&first.bias, boxes, layer.input_scale_log);
        let private_first = LweDenseLayer::new(
            first.rows,
            private_columns.len(),
            weights(&private_columns),
            bias,
            bias_encoding,
        )?;
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
            private_first,
            public_weights: weights(&public_columns),
            public_tables: (public.iter())
                .map(|&t| (c.tables[t], model.tables[t].clone()))
                .collect(),
            dim: d,
            unit: encoding(layer.input_scale_log),
        }))
    }

    /// The public columns' share of the first top layer's accumulators for one candidate.
    fn public_share(&self, ids: &[u32]) -> Vec<i64> {
        let values: Vec<i64> = (self.public_tables.iter().zip(ids))
            .flat_map(|((spec, table), &id)| table.lookup(spec, self.dim, id))
            .collect();
        self.public_weights
            .chunks_exact(values.len())
            .map(|row| row.iter().zip(&values).map(|(w, v)| w * v).sum())
            .collect()
    }
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
    /// (no public table; the `dot` interaction's ranked executor is not built) when it does not.
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
            InferError::Unsupported(match self.interface().ranks() {
                true => "ranked requests of dot-interaction models are not built yet".into(),
                false => "the model has no public table: rank with single-row requests".into(),
            })
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
        timings.encode = started.elapsed();
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
        let (mut x, _) = self.bottom(key, &request.dense, timings, &mut None, abandoned)?;

        may_start(abandoned, "lookup")?;
        let started = Instant::now();
        match (&part.private_tables, &request.query) {
            (Some(tables), Some(query)) => {
                x.append(&tables.lookup(query, &OutputOrder::SlotMajor)?)?;
            }
            (None, None) => {}
            _ => return Err(malformed("rank request", "query present or missing")),
        }
        timings.lookup = started.elapsed();

        let started = Instant::now();
        let once = part.private_first.apply(&x)?;
        let (first, rest) = self.top_stages().split_first().expect("a top MLP");
        // The candidates' first top layer accumulators differ from `once` by a plaintext only:
        // one blind rotation per row, read at each candidate's offset.
        let rotated = (first.table.as_ref())
            .map(|table| key.keyswitch_blind_rotate(&once, table))
            .transpose()?;
        let per_batch = (CIPHERTEXTS_PER_BATCH / once.len().max(1)).max(1);
        let mut logits = Vec::with_capacity(request.candidates.len().div_ceil(per_batch));
        for group in request.candidates.chunks(per_batch) {
            may_start(abandoned, "top")?;
            let shares: Vec<Vec<i64>> =
                group.par_iter().map(|ids| part.public_share(ids)).collect();
            let mut x = match &rotated {
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
        timings.top = started.elapsed();
        Ok(RankResponse {
            model_id: self.interface().model_id.clone(),
            parameter_set: self.interface().parameter_set,
            logits: LweBatch::concat(&logits)?,
        })
    }
}
