//! The noise figures of the encrypted executor, in one place: what the quantizer budgets for and
//! what the integer reference's `simulate` mode adds.
//!
//! Units are `1/(2N)` of the torus, the granularity of the modulus switch before a blind
//! rotation. With one padding bit a lookup table's `2^b` boxes share half the torus, `N` units,
//! so a box is `N / 2^b` units wide whatever the accumulator's integer scale: only the weights'
//! integer L2 norm and `lut_bits` decide how often a bootstrap reads the wrong box.

use serde::{Deserialize, Serialize};

/// Gaussian noise of the encrypted pipeline. Stored in quantized models; a 2_2 model is written
/// as before the packing noise existed:
///
/// ```
/// use dlrm::NoiseModel;
/// let json = serde_json::to_string(&NoiseModel::TFHE_2_2).unwrap();
/// assert!(!json.contains("packed_answer_sd"));
/// assert_eq!(serde_json::from_str::<NoiseModel>(&json).unwrap(), NoiseModel::TFHE_2_2);
/// let json = serde_json::to_string(&NoiseModel::TFHE_3_3).unwrap();
/// assert_eq!(serde_json::from_str::<NoiseModel>(&json).unwrap(), NoiseModel::TFHE_3_3);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoiseModel {
    /// TFHE polynomial size `N`.
    pub polynomial_size: u32,
    /// Standard deviation of a bootstrap's output, in `1/(2N)` units. A dense layer multiplies
    /// it by each row's weight L2 norm before the next bootstrap reads it.
    pub bootstrap_output_sd: f64,
    /// Standard deviation added by keyswitch plus (centred) modulus switch before each bootstrap.
    pub modulus_switch_sd: f64,
    /// Standard deviation the packing of a ranked answer adds to each logit, at most (a full
    /// packed ciphertext), in `1/(2N)` units: `fhe::PackingParameters::added_noise_sd`, checked
    /// against it by the `infer` tests. Written only when it differs from the 2_2 set's, so a
    /// 2_2 model's bytes (and model id) are those of the format before packing.
    #[serde(
        default = "NoiseModel::tfhe_2_2_packed_answer_sd",
        skip_serializing_if = "NoiseModel::is_tfhe_2_2_packed_answer_sd"
    )]
    pub packed_answer_sd: f64,
}

impl NoiseModel {
    /// Measured with the TFHE-rs 2_2 parameter set (N = 2048, centred modulus switch) on this
    /// project's executor; see `docs/fhe.md` and `TFHE_NOTES.md` section 5.
    pub const TFHE_2_2: Self = Self {
        polynomial_size: 2048,
        bootstrap_output_sd: 0.13,
        modulus_switch_sd: 4.8,
        packed_answer_sd: 0.0276,
    };

    /// The TFHE-rs 3_3 parameter set (N = 8192): the same modulus-switch noise in `1/(2N)`
    /// units over four times as many units, and a bootstrap output 15 times quieter
    /// (`TFHE_NOTES.md` sections 4 and 5). Bootstraps cost about 7.6 times the 2_2 set's
    /// (docs/dlrm.md); the set has no packing key.
    pub const TFHE_3_3: Self = Self {
        polynomial_size: 8192,
        bootstrap_output_sd: 0.0085,
        modulus_switch_sd: 4.9,
        packed_answer_sd: 0.0,
    };

    fn tfhe_2_2_packed_answer_sd() -> f64 {
        Self::TFHE_2_2.packed_answer_sd
    }

    fn is_tfhe_2_2_packed_answer_sd(sd: &f64) -> bool {
        *sd == Self::TFHE_2_2.packed_answer_sd
    }

    /// Noise read by a bootstrap whose input is a weighted sum of bootstrap outputs with weight
    /// L2 norm `norm`, in `1/(2N)` units.
    ///
    /// ```
    /// let n = dlrm::NoiseModel::TFHE_2_2;
    /// assert_eq!(n.bootstrap_input_sd(0.0), 4.8);
    /// assert!((n.bootstrap_input_sd(100.0) - 13.86).abs() < 0.01);
    /// ```
    pub fn bootstrap_input_sd(&self, norm: f64) -> f64 {
        (norm * self.bootstrap_output_sd).hypot(self.modulus_switch_sd)
    }

    /// Standard deviation, in accumulator units, of a weighted sum of bootstrap outputs with
    /// weight L2 norm `norm` when the accumulator's signed `acc_bits` bits span the torus (the
    /// output layer's logit numerator: no bootstrap rounds this noise away).
    ///
    /// ```
    /// let n = dlrm::NoiseModel::TFHE_2_2;
    /// assert!((n.accumulator_sd(10.0, 12) - 2.6).abs() < 1e-9);
    /// ```
    pub fn accumulator_sd(&self, norm: f64, acc_bits: u32) -> f64 {
        self.units_to_accumulator(norm * self.bootstrap_output_sd, acc_bits)
    }

    /// Standard deviation, in accumulator units as [`NoiseModel::accumulator_sd`]'s, that
    /// packing a ranked answer adds to a logit numerator.
    ///
    /// ```
    /// let n = dlrm::NoiseModel::TFHE_2_2;
    /// assert!((n.packed_answer_numerator_sd(12) - 0.0552).abs() < 1e-9);
    /// ```
    pub fn packed_answer_numerator_sd(&self, acc_bits: u32) -> f64 {
        self.units_to_accumulator(self.packed_answer_sd, acc_bits)
    }

    /// `sd` in `1/(2N)` units as accumulator units when its signed `acc_bits` bits span the
    /// torus.
    fn units_to_accumulator(&self, sd: f64, acc_bits: u32) -> f64 {
        sd * (1u64 << acc_bits) as f64 / self.polynomial_size as f64
    }

    /// Width of one of `2^lut_bits` boxes, in `1/(2N)` units.
    ///
    /// ```
    /// assert_eq!(dlrm::NoiseModel::TFHE_2_2.box_width(6), 32.0);
    /// ```
    pub fn box_width(&self, lut_bits: u32) -> f64 {
        self.polynomial_size as f64 / (1u64 << lut_bits) as f64
    }

    /// Probability that Gaussian noise of `sd` units moves a box centre into another box.
    ///
    /// ```
    /// let n = dlrm::NoiseModel::TFHE_2_2;
    /// assert!(n.wrong_box_rate(4.8, 6) < 0.001);
    /// assert!((n.wrong_box_rate(4.8, 7) - 0.095).abs() < 0.01);
    /// ```
    pub fn wrong_box_rate(&self, sd: f64, lut_bits: u32) -> f64 {
        erfc(self.box_width(lut_bits) / 2.0 / sd / std::f64::consts::SQRT_2)
    }
}

impl Default for NoiseModel {
    fn default() -> Self {
        Self::TFHE_2_2
    }
}

/// Complementary error function (Numerical Recipes' Chebyshev fit, relative error < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}
