//! The byte formats of a ranked request and its answer, in the frame of `wire.rs` (magic, JSON
//! header, sections): the user's encrypted private inputs once, the candidates' public ids in
//! the clear, and the candidates' encrypted logit numerators back: packed, up to 2,048 to a
//! GLWE ciphertext, when the client sent a packing key; otherwise one LWE ciphertext each.
//!
//! Candidates travel as ids the client has already mapped through the model's vocabularies,
//! the same ids a single-row request encrypts: the service keeps no catalogue of its own, so
//! nothing on the server has to be loaded, versioned or kept in step with the backend's item
//! table, and a ranked request is answered by the same stateless code as a single row.

use fhe::{LweBatch, PackedLwes, ParameterSetId, SeededGlweBatch};

use crate::error::{InferError, Result, malformed};
use crate::interface::ModelInterface;
use crate::wire::{MAX_HEADER_BYTES, decode, decode_kinds, encode, encrypted_inputs};

const REQUEST_KIND: &str = "rank-request";
const RESPONSE_KIND: &str = "rank-response";
const PACKED_RESPONSE_KIND: &str = "rank-response-packed";

/// A ranked request: one user's private inputs, encrypted once, and K candidates' public ids.
pub struct RankRequest {
    /// The [`ModelInterface::model_id`] of the model the request is for.
    pub model_id: String,
    /// The parameter set the ciphertexts are encrypted under.
    pub parameter_set: ParameterSetId,
    /// The quantized dense features (all private), packed into GLWE coefficients.
    pub dense: SeededGlweBatch,
    /// The private tables' one-hot (digit) query; `None` when no table is private.
    pub query: Option<SeededGlweBatch>,
    /// Per candidate, one id per public table in table order, in the clear.
    pub candidates: Vec<Vec<u32>>,
}

/// The answer to a ranked request: one encrypted logit numerator per candidate, in request
/// order.
pub struct RankResponse {
    /// The [`ModelInterface::model_id`] of the model that answered.
    pub model_id: String,
    /// The parameter set the ciphertexts are encrypted under.
    pub parameter_set: ParameterSetId,
    /// The candidates' logit numerators.
    pub logits: RankLogits,
}

/// The candidates' encrypted logit numerators, in request order.
pub enum RankLogits {
    /// One big-key LWE ciphertext per candidate (16 KiB each with the 2_2 set).
    Separate(LweBatch),
    /// Packed under the client's packing key, up to 2,048 per GLWE ciphertext (32 KiB).
    Packed(PackedLwes),
}

impl RankLogits {
    /// Number of logits.
    pub fn len(&self) -> usize {
        match self {
            RankLogits::Separate(lwes) => lwes.len(),
            RankLogits::Packed(packed) => packed.len(),
        }
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Checks `candidates` against the model's public tables: at least one and at most `max`
/// candidates, one id per public table each, every id within its table.
pub(crate) fn check_candidates(
    interface: &ModelInterface,
    candidates: &[Vec<u32>],
    max: usize,
) -> Result<()> {
    let public = interface.roles.public_tables(interface.tables.len());
    if public.is_empty() {
        return Err(InferError::Unsupported(
            "the model has no public table: rank candidates with single-row requests".into(),
        ));
    }
    if candidates.len() > max {
        return Err(InferError::TooManyCandidates {
            count: candidates.len(),
            max,
        });
    }
    if candidates.is_empty() {
        return Err(malformed(
            "candidates",
            "a ranked request needs at least one candidate".to_owned(),
        ));
    }
    for (k, ids) in candidates.iter().enumerate() {
        if ids.len() != public.len() {
            return Err(malformed(
                "candidates",
                format!(
                    "candidate {k} has {} ids, the model has {} public tables",
                    ids.len(),
                    public.len()
                ),
            ));
        }
        for (&id, &t) in ids.iter().zip(&public) {
            if u64::from(id) >= interface.tables[t].rows {
                return Err(malformed(
                    "candidates",
                    format!(
                        "candidate {k}: id {id} of table {t}, which has {} rows",
                        interface.tables[t].rows
                    ),
                ));
            }
        }
    }
    Ok(())
}

impl RankRequest {
    /// The request as bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut sections = vec![self.dense.to_bytes()?];
        if let Some(query) = &self.query {
            sections.push(query.to_bytes()?);
        }
        let ids = self
            .candidates
            .iter()
            .flatten()
            .flat_map(|id| id.to_le_bytes())
            .collect();
        sections.push(ids);
        Ok(encode(
            REQUEST_KIND,
            self.parameter_set,
            &self.model_id,
            &sections,
        ))
    }

    /// The largest ranked request a well-formed client sends for `interface` with at most
    /// `max_candidates` candidates: a service reads bodies under this limit.
    ///
    /// ```
    /// use dlrm::{FeatureRoles, Role};
    /// let roles = FeatureRoles { dense: vec![], tables: vec![Role::Private, Role::Public] };
    /// let model = infer::testing::tiny_model().with_roles(roles).unwrap();
    /// let interface = infer::ModelInterface::for_model(&model, fhe::ParameterSetId::default()).unwrap();
    /// let small = infer::RankRequest::max_bytes(&interface, 10).unwrap();
    /// assert_eq!(infer::RankRequest::max_bytes(&interface, 20).unwrap(), small + 10 * 4);
    /// ```
    pub fn max_bytes(interface: &ModelInterface, max_candidates: usize) -> Result<usize> {
        let (dense, query) = interface.rank_request_glwe_counts()?;
        let polynomial = interface.parameter_set.parameters().polynomial_size().0;
        let per_glwe = polynomial * std::mem::size_of::<u64>() + 1024;
        let public = interface.roles.public_tables(interface.tables.len()).len();
        Ok((dense + query) * per_glwe + max_candidates * public * 4 + MAX_HEADER_BYTES + 4096)
    }

    /// Reads a ranked request for the model of `interface` with at most `max_candidates`
    /// candidates, refusing other models, other parameter sets, wrong ciphertext counts, ids
    /// outside their tables and malformed bytes.
    pub fn from_bytes(
        bytes: &[u8],
        interface: &ModelInterface,
        max_candidates: usize,
    ) -> Result<Self> {
        let what = "rank request";
        let sections = decode(bytes, what, REQUEST_KIND, interface, 3)?;
        let counts = interface.rank_request_glwe_counts()?;
        let (dense, query) = encrypted_inputs(&sections, interface, counts, 1, what)?;
        let public = interface.roles.public_tables(interface.tables.len()).len();
        let ids = sections[sections.len() - 1];
        let per_candidate = 4 * public.max(1);
        if !ids.len().is_multiple_of(per_candidate) {
            return Err(malformed(
                what,
                format!(
                    "{} bytes of candidate ids, not a whole number of candidates",
                    ids.len()
                ),
            ));
        }
        if ids.len() / per_candidate > max_candidates {
            return Err(InferError::TooManyCandidates {
                count: ids.len() / per_candidate,
                max: max_candidates,
            });
        }
        let candidates: Vec<Vec<u32>> = ids
            .chunks_exact(per_candidate)
            .map(|candidate| {
                candidate
                    .chunks_exact(4)
                    .map(|id| u32::from_le_bytes(id.try_into().expect("four bytes")))
                    .collect()
            })
            .collect();
        check_candidates(interface, &candidates, max_candidates)?;
        Ok(RankRequest {
            model_id: interface.model_id.clone(),
            parameter_set: interface.parameter_set,
            dense,
            query,
            candidates,
        })
    }
}

impl RankResponse {
    /// The answer as bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let (kind, section) = match &self.logits {
            RankLogits::Separate(lwes) => (RESPONSE_KIND, lwes.to_bytes()?),
            RankLogits::Packed(packed) => (PACKED_RESPONSE_KIND, packed.to_bytes()?),
        };
        Ok(encode(kind, self.parameter_set, &self.model_id, &[section]))
    }

    /// Reads the answer of the model of `interface` to a request of `candidates` candidates,
    /// packed or not.
    pub fn from_bytes(bytes: &[u8], interface: &ModelInterface, candidates: usize) -> Result<Self> {
        let what = "rank response";
        let kinds = [RESPONSE_KIND, PACKED_RESPONSE_KIND];
        let (kind, sections) = decode_kinds(bytes, what, &kinds, interface, 1)?;
        let section = sections
            .first()
            .ok_or_else(|| malformed(what, "no ciphertext"))?;
        let set = interface.parameter_set;
        let logits = match kinds[kind] {
            PACKED_RESPONSE_KIND => {
                RankLogits::Packed(PackedLwes::from_bytes(section, set, candidates)?)
            }
            _ => RankLogits::Separate(LweBatch::from_bytes(section, set, candidates)?),
        };
        if logits.len() != candidates {
            return Err(malformed(
                what,
                format!("{} ciphertexts, expected {candidates}", logits.len()),
            ));
        }
        Ok(RankResponse {
            model_id: interface.model_id.clone(),
            parameter_set: interface.parameter_set,
            logits,
        })
    }
}
