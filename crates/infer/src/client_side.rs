//! The two client-side steps every caller needs: encrypting a request and reading the logit
//! numerator out of a response (the `client` crate builds key files and raw-row mapping on top).

use fhe::ClientKey;

use crate::error::{InferError, Result};
use crate::interface::ModelInterface;
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
    if key.parameters().id() != interface.parameter_set {
        return Err(fhe::FheError::ParameterSetMismatch {
            expected: interface.parameter_set,
            found: key.parameters().id(),
        }
        .into());
    }
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
    if dense.iter().any(|x| !x.is_finite()) {
        return Err(InferError::Malformed {
            what: "row",
            reason: "a dense feature is not a finite number".into(),
        });
    }
    let inputs = interface.input.quantize(dense);
    let coefficients = interface.dense_layout()?.place_inputs(&inputs)?;
    let dense = key.encrypt_glwe_batch(&coefficients, interface.dense_encoding())?;
    let query = match interface.lookup_plan()? {
        Some(plan) => {
            let ids: Vec<u64> = ids.iter().map(|&id| u64::from(id)).collect();
            Some(plan.encrypt_query(key, &ids)?)
        }
        None => None,
    };
    Ok(Request {
        model_id: interface.model_id.clone(),
        parameter_set: interface.parameter_set,
        dense,
        query,
    })
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
    if response.model_id != interface.model_id {
        return Err(InferError::ModelMismatch {
            what: "response",
            expected: interface.model_id.clone(),
            found: response.model_id.clone(),
        });
    }
    let numerators = key.decrypt_lwe_batch(&response.logit, interface.output_encoding())?;
    numerators
        .first()
        .copied()
        .ok_or_else(|| InferError::Malformed {
            what: "response",
            reason: "no ciphertext".into(),
        })
}
