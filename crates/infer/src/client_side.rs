//! The two client-side steps every caller needs: encrypting a request and reading the logit
//! numerator out of a response (the `client` crate builds key files and raw-row mapping on top).

use embed::LookupPlan;
use fhe::{ClientKey, SeededGlweBatch};

use crate::error::{InferError, Result};
use crate::interface::ModelInterface;
use crate::rank_wire::{RankLogits, RankRequest, RankResponse, check_candidates};
use crate::wire::{Request, Response};

/// Encrypts one row (raw dense features, already-mapped categorical ids) for the model of
/// `interface`: the dense features quantized and placed in GLWE coefficients, the ids as
/// digit one-hots.
///
/// ```
/// use fhe::{ClientKey, KeySeed, ParameterSetId};
/// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
/// let model = infer::testing::tiny_model();
/// let interface = infer::ModelInterface::for_model(&model, ParameterSetId::default()).unwrap();
/// let request = infer::encrypt_request(&key, &interface, &[0.5, -1.0], &[3, 7]).unwrap();
/// assert_eq!(request.dense.len(), 1);
/// assert!(infer::encrypt_request(&key, &interface, &[0.5], &[3, 7]).is_err());
/// assert!(infer::encrypt_request(&key, &interface, &[0.5, -1.0], &[5, 7]).is_err()); // table 0 has 5 rows
/// ```
pub fn encrypt_request(
    key: &ClientKey,
    interface: &ModelInterface,
    dense: &[f32],
    ids: &[u32],
) -> Result<Request> {
    check_key(key, interface)?;
    if dense.len() != interface.dense_features || ids.len() != interface.tables.len() {
        return Err(InferError::Malformed {
            what: "row",
            reason: format!(
                "{} dense features and {} ids, the model takes {} and {}",
                dense.len(),
                ids.len(),
                interface.dense_features,
                interface.tables.len()
            ),
        });
    }
    let dense = encrypt_dense(key, interface, dense)?;
    let query = encrypt_query(key, interface.lookup_plan()?, ids)?;
    Ok(Request {
        model_id: interface.model_id.clone(),
        parameter_set: interface.parameter_set,
        dense,
        query,
    })
}

/// Encrypts a ranked request: the user's dense features and `private_ids` (one per private
/// table, in table order) once, and per candidate its ids of the public tables (in table
/// order), sent in the clear. At most `max_candidates` candidates.
///
/// ```
/// use dlrm::{FeatureRoles, Role};
/// use fhe::{ClientKey, KeySeed, ParameterSetId};
/// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
/// let roles = FeatureRoles { dense: vec![], tables: vec![Role::Private, Role::Public] };
/// let model = infer::testing::tiny_model().with_roles(roles).unwrap();
/// let interface = infer::ModelInterface::for_model(&model, ParameterSetId::default()).unwrap();
/// let candidates = vec![vec![1], vec![7]];
/// let request = infer::encrypt_rank_request(&key, &interface, &[0.5, -1.0], &[3], &candidates, 100).unwrap();
/// assert_eq!(request.candidates.len(), 2);
/// assert!(infer::encrypt_rank_request(&key, &interface, &[0.5, -1.0], &[3], &[vec![99]], 100).is_err());
/// ```
pub fn encrypt_rank_request(
    key: &ClientKey,
    interface: &ModelInterface,
    dense: &[f32],
    private_ids: &[u32],
    candidates: &[Vec<u32>],
    max_candidates: usize,
) -> Result<RankRequest> {
    check_key(key, interface)?;
    let private = interface.roles.private_tables(interface.tables.len());
    if dense.len() != interface.dense_features || private_ids.len() != private.len() {
        return Err(InferError::Malformed {
            what: "row",
            reason: format!(
                "{} dense features and {} private ids, the model takes {} and {}",
                dense.len(),
                private_ids.len(),
                interface.dense_features,
                private.len()
            ),
        });
    }
    for (&id, &t) in private_ids.iter().zip(&private) {
        if u64::from(id) >= interface.tables[t].rows {
            return Err(InferError::Malformed {
                what: "row",
                reason: format!(
                    "id {id} of table {t}, which has {} rows",
                    interface.tables[t].rows
                ),
            });
        }
    }
    check_candidates(interface, candidates, max_candidates)?;
    let encrypted = encrypt_dense(key, interface, dense)?;
    let query = encrypt_query(key, interface.private_lookup_plan()?, private_ids)?;
    Ok(RankRequest {
        model_id: interface.model_id.clone(),
        parameter_set: interface.parameter_set,
        dense: encrypted,
        query,
        candidates: candidates.to_vec(),
    })
}

fn check_key(key: &ClientKey, interface: &ModelInterface) -> Result<()> {
    if key.parameters().id() != interface.parameter_set {
        return Err(fhe::FheError::ParameterSetMismatch {
            expected: interface.parameter_set,
            found: key.parameters().id(),
        }
        .into());
    }
    Ok(())
}

/// The dense features quantized and encrypted in the first layer's input coefficients.
fn encrypt_dense(
    key: &ClientKey,
    interface: &ModelInterface,
    dense: &[f32],
) -> Result<SeededGlweBatch> {
    if dense.iter().any(|x| !x.is_finite()) {
        return Err(InferError::Malformed {
            what: "row",
            reason: "a dense feature is not a finite number".into(),
        });
    }
    let inputs = interface.input.quantize(dense);
    let coefficients = interface.dense_layout()?.place_inputs(&inputs)?;
    Ok(key.encrypt_glwe_batch(&coefficients, interface.dense_encoding())?)
}

fn encrypt_query(
    key: &ClientKey,
    plan: Option<LookupPlan>,
    ids: &[u32],
) -> Result<Option<SeededGlweBatch>> {
    plan.map(|plan| {
        let ids: Vec<u64> = ids.iter().map(|&id| u64::from(id)).collect();
        Ok(plan.encrypt_query(key, &ids)?)
    })
    .transpose()
}

/// The logit numerator of a response, rounded to the output grid: the integer the reference
/// computes, moved only by the bootstrap misreads rounding cannot undo. Multiply by
/// `interface.logit_scale` for the logit.
///
/// Never the raw phase: the phase's low bits are the ciphertext's noise, and every decrypted
/// phase that reaches the server would be a linear equation in the secret key
/// (docs/security.md, the decryption-disclosure rule). Rounding leaves the server an unknown
/// error as wide as the output grid's step.
pub fn decrypt_response(
    key: &ClientKey,
    interface: &ModelInterface,
    response: &Response,
) -> Result<i64> {
    check_model(interface, &response.model_id)?;
    let numerators = key.decrypt_lwe_batch(&response.logit, interface.output_encoding())?;
    numerators
        .first()
        .copied()
        .ok_or_else(|| InferError::Malformed {
            what: "response",
            reason: "no ciphertext".into(),
        })
}

/// The logit numerators of a ranked request's answer, one per candidate in request order,
/// rounded to the output grid as [`decrypt_response`]'s.
pub fn decrypt_rank_response(
    key: &ClientKey,
    interface: &ModelInterface,
    response: &RankResponse,
) -> Result<Vec<i64>> {
    check_model(interface, &response.model_id)?;
    let encoding = interface.output_encoding();
    Ok(match &response.logits {
        RankLogits::Separate(lwes) => key.decrypt_lwe_batch(lwes, encoding)?,
        RankLogits::Packed(packed) => key.decrypt_packed(packed, encoding)?,
    })
}

fn check_model(interface: &ModelInterface, found: &str) -> Result<()> {
    if found != interface.model_id {
        return Err(InferError::ModelMismatch {
            what: "response",
            expected: interface.model_id.clone(),
            found: found.to_owned(),
        });
    }
    Ok(())
}
