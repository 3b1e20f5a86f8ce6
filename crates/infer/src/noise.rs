//! Which noise model a parameter set has: what `dlrm`'s quantizer budgets for and `simulate`
//! draws (`dlrm` knows no parameter set), and the check that a model is served on a set at
//! most as noisy as the one it was quantized for.

use dlrm::{NoiseModel, QuantizedModel};
use fhe::ParameterSetId;

use crate::error::{InferError, Result};

/// The noise model of `parameter_set`.
///
/// ```
/// use fhe::ParameterSetId;
/// assert_eq!(infer::noise_model(ParameterSetId::default()), dlrm::NoiseModel::TFHE_2_2);
/// assert_eq!(infer::noise_model(ParameterSetId::ALL[1]).polynomial_size, 8192);
/// ```
pub fn noise_model(parameter_set: ParameterSetId) -> NoiseModel {
    match parameter_set {
        ParameterSetId::Tfhe1_8Message2Carry2KsPbsTUniform2M128 => NoiseModel::TFHE_2_2,
        ParameterSetId::Tfhe1_8Message3Carry3KsPbsTUniform2M128 => NoiseModel::TFHE_3_3,
    }
}

/// Refuses to serve `model` on a set whose bootstraps are coarser than those it was quantized
/// for: its bit widths would misread far more often than its reference and `simulate` say. A
/// finer set is fine (less noise than budgeted).
pub(crate) fn check_model_noise(
    model: &QuantizedModel,
    parameter_set: ParameterSetId,
) -> Result<()> {
    let set = noise_model(parameter_set);
    if model.noise.polynomial_size <= set.polynomial_size {
        return Ok(());
    }
    let quantized_for = (ParameterSetId::ALL.into_iter())
        .find(|&other| noise_model(other).polynomial_size == model.noise.polynomial_size)
        .map_or_else(
            || format!("polynomial size {}", model.noise.polynomial_size),
            |other| other.name().to_owned(),
        );
    Err(InferError::Unsupported(format!(
        "the model was quantized for the bootstraps of {quantized_for}, noisier on {}: serve it on \
         the set it was quantized for (keys and `--parameter-set`), or quantize it again with \
         `--parameter-set {}`",
        parameter_set.name(),
        parameter_set.name()
    )))
}
