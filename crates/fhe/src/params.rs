//! Parameter sets resolved: a [`ParameterSetId`] parsed from its name and its numbers read from
//! the audited TFHE-rs constants. This crate only chooses encodings (scales, lookup-table
//! contents), which do not affect security.

use std::str::FromStr;

use tfhe::core_crypto::prelude::{
    CiphertextModulus, CiphertextModulusLog, DecompositionBaseLog, DecompositionLevelCount,
    DynamicDistribution, GlweDimension, GlweSize, LweDimension as TfheLweDimension,
    PolynomialSize as TfhePolynomialSize,
};
use tfhe::shortint::parameters::ClassicPBSParameters;
use tfhe::shortint::parameters::v1_8::{
    V1_8_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128,
    V1_8_PARAM_MESSAGE_3_CARRY_3_KS_PBS_TUNIFORM_2M128,
};

use crate::error::FheError;
use crate::parameter_set::ParameterSetId;
use crate::sizes::{LweDimension, PolynomialSize};

impl ParameterSetId {
    /// The parameters, read from the `tfhe` crate.
    ///
    /// ```
    /// use fhe::{LweDimension, ParameterSetId, PolynomialSize};
    /// let params = ParameterSetId::default().parameters();
    /// assert_eq!(params.small_lwe_dimension(), LweDimension(918));
    /// assert_eq!(params.polynomial_size(), PolynomialSize(2048));
    /// assert_eq!(params.big_lwe_dimension(), LweDimension(2048));
    /// ```
    pub fn parameters(self) -> FheParameters {
        let tfhe = match self {
            ParameterSetId::Tfhe1_8Message2Carry2KsPbsTUniform2M128 => {
                V1_8_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128
            }
            ParameterSetId::Tfhe1_8Message3Carry3KsPbsTUniform2M128 => {
                V1_8_PARAM_MESSAGE_3_CARRY_3_KS_PBS_TUNIFORM_2M128
            }
        };
        FheParameters { id: self, tfhe }
    }
}

impl FromStr for ParameterSetId {
    type Err = FheError;

    fn from_str(name: &str) -> Result<Self, FheError> {
        ParameterSetId::ALL
            .into_iter()
            .find(|id| id.name() == name)
            .ok_or_else(|| FheError::InvalidArgument(format!("unknown parameter set `{name}`")))
    }
}

/// The numbers of a parameter set, as this crate uses them: a KS-PBS set where fresh and
/// bootstrapped ciphertexts live under the big key (the GLWE key seen as an LWE key of dimension
/// `k * N`), and the keyswitch goes to the small key of dimension `n` before each bootstrap.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FheParameters {
    id: ParameterSetId,
    tfhe: ClassicPBSParameters,
}

impl FheParameters {
    /// The identifier of this set.
    ///
    /// ```
    /// use fhe::ParameterSetId;
    /// assert_eq!(ParameterSetId::default().parameters().id(), ParameterSetId::default());
    /// ```
    pub fn id(&self) -> ParameterSetId {
        self.id
    }

    /// Polynomial size `N` of the GLWE ciphertexts (and of the bootstrap accumulator).
    ///
    /// ```
    /// use fhe::{ParameterSetId, PolynomialSize};
    /// assert_eq!(ParameterSetId::default().parameters().polynomial_size(), PolynomialSize(2048));
    /// ```
    pub fn polynomial_size(&self) -> PolynomialSize {
        PolynomialSize(self.tfhe.polynomial_size.0)
    }

    /// Dimension `n` of the small LWE key (bootstrap input, after the keyswitch).
    ///
    /// ```
    /// use fhe::{LweDimension, ParameterSetId};
    /// assert_eq!(ParameterSetId::default().parameters().small_lwe_dimension(), LweDimension(918));
    /// ```
    pub fn small_lwe_dimension(&self) -> LweDimension {
        LweDimension(self.tfhe.lwe_dimension.0)
    }

    /// Dimension `k * N` of the big LWE key: the dimension of every ciphertext this crate hands
    /// out (sample extractions, dense layers and bootstrap outputs).
    ///
    /// ```
    /// use fhe::{LweDimension, ParameterSetId};
    /// assert_eq!(ParameterSetId::default().parameters().big_lwe_dimension(), LweDimension(2048));
    /// ```
    pub fn big_lwe_dimension(&self) -> LweDimension {
        LweDimension(
            self.tfhe
                .glwe_dimension
                .to_equivalent_lwe_dimension(self.tfhe.polynomial_size)
                .0,
        )
    }

    /// Number of polynomials of a GLWE ciphertext, `k + 1`.
    ///
    /// ```
    /// use fhe::ParameterSetId;
    /// assert_eq!(ParameterSetId::default().parameters().glwe_polynomial_count(), 2);
    /// ```
    pub fn glwe_polynomial_count(&self) -> usize {
        self.tfhe.glwe_dimension.to_glwe_size().0
    }

    /// Upper bound on the absolute value of one fresh GLWE noise sample, when the noise
    /// distribution is bounded (TUniform); `None` for a Gaussian set. Used to size encodings so
    /// that linear results decrypt exactly with certainty, not just with high probability.
    ///
    /// ```
    /// use fhe::ParameterSetId;
    /// assert_eq!(ParameterSetId::default().parameters().fresh_noise_bound(), Some(1 << 17));
    /// ```
    pub fn fresh_noise_bound(&self) -> Option<u64> {
        match self.tfhe.glwe_noise_distribution {
            DynamicDistribution::TUniform(t) => Some(1u64 << t.bound_log2()),
            DynamicDistribution::Gaussian(_) => None,
        }
    }

    pub(crate) fn tfhe_polynomial_size(&self) -> TfhePolynomialSize {
        self.tfhe.polynomial_size
    }

    pub(crate) fn glwe_dimension(&self) -> GlweDimension {
        self.tfhe.glwe_dimension
    }

    pub(crate) fn glwe_size(&self) -> GlweSize {
        self.tfhe.glwe_dimension.to_glwe_size()
    }

    pub(crate) fn tfhe_small_lwe_dimension(&self) -> TfheLweDimension {
        self.tfhe.lwe_dimension
    }

    pub(crate) fn tfhe_big_lwe_dimension(&self) -> TfheLweDimension {
        self.tfhe
            .glwe_dimension
            .to_equivalent_lwe_dimension(self.tfhe.polynomial_size)
    }

    pub(crate) fn small_lwe_noise(&self) -> DynamicDistribution<u64> {
        self.tfhe.lwe_noise_distribution
    }

    pub(crate) fn glwe_noise(&self) -> DynamicDistribution<u64> {
        self.tfhe.glwe_noise_distribution
    }

    pub(crate) fn pbs_decomposition(&self) -> (DecompositionBaseLog, DecompositionLevelCount) {
        (self.tfhe.pbs_base_log, self.tfhe.pbs_level)
    }

    pub(crate) fn ks_decomposition(&self) -> (DecompositionBaseLog, DecompositionLevelCount) {
        (self.tfhe.ks_base_log, self.tfhe.ks_level)
    }

    pub(crate) fn ciphertext_modulus(&self) -> CiphertextModulus<u64> {
        self.tfhe.ciphertext_modulus
    }

    /// Modulus (as a power of two, `2N`) the bootstrap input is switched to.
    pub(crate) fn blind_rotation_modulus_log(&self) -> CiphertextModulusLog {
        self.tfhe
            .polynomial_size
            .to_blind_rotation_input_modulus_log()
    }
}

/// Checks that an object made for `found` may be used where `expected` is required.
pub(crate) fn check_parameter_set(
    expected: ParameterSetId,
    found: ParameterSetId,
) -> crate::error::Result<()> {
    if expected == found {
        Ok(())
    } else {
        Err(FheError::ParameterSetMismatch { expected, found })
    }
}
