//! The packing key: a TFHE-rs LWE packing keyswitching key from the big LWE key to a GLWE key of
//! its own, with which the server returns up to `N` big-key LWE ciphertexts as one GLWE
//! ciphertext (docs/rank.md).
//!
//! The output key has the parameter set's own GLWE parameters (dimension, polynomial size and
//! noise, those of the bootstrapping key), so the key is as secure as the bootstrapping key. Not
//! TFHE-rs's list-compression geometry (`k = 4, N = 256`, noise `2^43`): the noise of every key
//! row reaches every packed slot, and with that noise 256 scores come back with an error near
//! `2^-9` of the torus, 55 times a bootstrap's output noise; here it is about a fifth of it.

use tfhe::core_crypto::prelude::*;

use crate::error::{FheError, Result};
use crate::parameter_set::ParameterSetId;
use crate::params::FheParameters;
use crate::wire::expect_dimension;

/// Bits of each mask coefficient the packing keeps, in one level: where the rounding error of
/// the `n` coefficients equals the key noise the digits amplify (docs/rank.md).
const PACKING_BASE_LOG: usize = 21;

/// The numbers of the packing key and of the packed ciphertexts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PackingParameters {
    pub(crate) glwe_dimension: GlweDimension,
    pub(crate) polynomial_size: PolynomialSize,
    pub(crate) base_log: DecompositionBaseLog,
    pub(crate) level: DecompositionLevelCount,
    pub(crate) noise: DynamicDistribution<u64>,
    pub(crate) input_dimension: LweDimension,
}

impl FheParameters {
    /// The packing parameters of this set; `None` for the 3_3 set, whose big key of 8,192
    /// coefficients would make the packing key 512 MiB.
    ///
    /// ```
    /// use fhe::ParameterSetId;
    /// let packing = ParameterSetId::default().parameters().packing().unwrap();
    /// assert_eq!(packing.scores_per_glwe(), 2048);
    /// assert_eq!(packing.glwe_bytes(), 2 * 2048 * 8);
    /// assert!(ParameterSetId::ALL[1].parameters().packing().is_none());
    /// ```
    pub fn packing(&self) -> Option<PackingParameters> {
        if self.id() != ParameterSetId::Tfhe1_8Message2Carry2KsPbsTUniform2M128 {
            return None;
        }
        Some(PackingParameters {
            glwe_dimension: self.glwe_dimension(),
            polynomial_size: self.tfhe_polynomial_size(),
            base_log: DecompositionBaseLog(PACKING_BASE_LOG),
            level: DecompositionLevelCount(1),
            noise: self.glwe_noise(),
            input_dimension: self.tfhe_big_lwe_dimension(),
        })
    }
}

/// The packing parameters of `params`, or the error that says its set has none.
pub(crate) fn required_packing(params: FheParameters) -> Result<PackingParameters> {
    params.packing().ok_or_else(|| {
        FheError::InvalidArgument(format!(
            "parameter set {} has no packing key",
            params.id().name()
        ))
    })
}

impl PackingParameters {
    /// How many scores one packed GLWE ciphertext holds (its polynomial size).
    pub fn scores_per_glwe(&self) -> usize {
        self.polynomial_size.0
    }

    /// Bytes of one packed GLWE ciphertext: `(k + 1) N` words of 8 bytes.
    pub fn glwe_bytes(&self) -> usize {
        self.glwe_words() * 8
    }

    pub(crate) fn glwe_words(&self) -> usize {
        self.glwe_dimension.to_glwe_size().0 * self.polynomial_size.0
    }

    /// Words of the seeded packing key: one GLWE body per input key coefficient and level.
    pub(crate) fn seeded_key_words(&self) -> usize {
        self.input_dimension.0 * self.level.0 * self.polynomial_size.0
    }

    /// Bytes the packing key adds to a compressed server key.
    ///
    /// ```
    /// let packing = fhe::ParameterSetId::default().parameters().packing().unwrap();
    /// assert_eq!(packing.key_bytes(), 2048 * 2048 * 8);
    /// ```
    pub fn key_bytes(&self) -> usize {
        self.seeded_key_words() * 8
    }

    /// Standard deviation of the error packing adds to a value when `count` values share a GLWE
    /// ciphertext, as a fraction of the torus: the decomposition's rounding of the value's `n`
    /// mask coefficients (each times a key bit, half of them set on average), and the noise of
    /// every key row times the digits of all `count` values (a product of polynomials spreads
    /// each row's noise over every slot).
    ///
    /// ```
    /// let packing = fhe::ParameterSetId::default().parameters().packing().unwrap();
    /// let bits = -packing.added_noise_sd(2048).log2();
    /// assert!((16.5..18.0).contains(&bits), "{bits}");
    /// ```
    pub fn added_noise_sd(&self, count: usize) -> f64 {
        let n = self.input_dimension.0 as f64;
        let kept_bits = (self.base_log.0 * self.level.0) as i32;
        let rounding_variance = (n / 2.0) * 2f64.powi(-2 * kept_bits) / 12.0;
        let base = 2f64.powi(self.base_log.0 as i32);
        let digit_square = base * base / 12.0;
        let key_variance = match self.noise {
            DynamicDistribution::TUniform(t) => {
                (2f64.powi(2 * t.bound_log2() as i32 + 1) + 1.0) / 6.0 * 2f64.powi(-128)
            }
            DynamicDistribution::Gaussian(g) => g.std * g.std,
        };
        let slots = count.clamp(1, self.scores_per_glwe()) as f64;
        let key_term = slots * n * self.level.0 as f64 * digit_square * key_variance;
        (rounding_variance + key_term).sqrt()
    }
}

/// Checks a packing key read from untrusted bytes against the parameters it must have.
pub(crate) fn validate_packing_key(
    key: &SeededLwePackingKeyswitchKeyOwned<u64>,
    params: FheParameters,
    what: &'static str,
) -> Result<()> {
    let packing = params.packing().ok_or_else(|| FheError::Malformed {
        what,
        reason: format!(
            "a packing key, which set {} does not have",
            params.id().name()
        ),
    })?;
    expect_dimension(
        what,
        "packing input dimension",
        packing.input_dimension.0,
        key.input_key_lwe_dimension().0,
    )?;
    expect_dimension(
        what,
        "packing base log",
        packing.base_log.0,
        key.decomposition_base_log().0,
    )?;
    expect_dimension(
        what,
        "packing levels",
        packing.level.0,
        key.decomposition_level_count().0,
    )?;
    expect_dimension(
        what,
        "packing GLWE dimension",
        packing.glwe_dimension.0,
        key.output_glwe_size().to_glwe_dimension().0,
    )?;
    expect_dimension(
        what,
        "packing polynomial size",
        packing.polynomial_size.0,
        key.output_polynomial_size().0,
    )?;
    expect_dimension(
        what,
        "packing key length",
        packing.seeded_key_words(),
        key.as_ref().len(),
    )?;
    if key.ciphertext_modulus() != params.ciphertext_modulus() {
        return Err(FheError::Malformed {
            what,
            reason: "packing key modulus differs from the parameter set".into(),
        });
    }
    Ok(())
}
