//! The output sanitiser's grid, chosen when [`QuantizeConfig::sanitise_output`] asks for one:
//! the most table bits (up to `max_lut_bits`, and at most the numerator's bits) whose boxes
//! keep half a box `min_clean_sigmas` noise deviations wide, as for a hidden layer's table.

use crate::integer_model::IntLayer;
use crate::sanitiser::OutputSanitiser;

use super::config::QuantizeConfig;

/// The sanitiser chosen for an output layer, and what the report shows of it.
pub(super) struct SanitiserChoice {
    pub(super) sanitiser: OutputSanitiser,
    /// Probability that the bootstrap reads a neighbouring box for a numerator at a box centre.
    pub(super) wrong_box_rate: f64,
    /// Calibration numerators outside the boxes (clamped).
    pub(super) clamped_fraction: f64,
}

/// The sanitiser of `output` (its numerator of `acc_bits` signed bits, its row norm over
/// the bootstrap-fed columns `norm`), judged on the calibration inputs `x`.
pub(super) fn choose_sanitiser(
    output: &IntLayer,
    acc_bits: u32,
    norm: f64,
    x: &[Vec<i64>],
    config: &QuantizeConfig,
) -> SanitiserChoice {
    let noise = &config.noise;
    let sd = noise.bootstrap_input_sd(norm);
    let clean = |lut_bits: u32| noise.box_width(lut_bits) / 2.0 >= config.min_clean_sigmas * sd;
    let most = config.max_lut_bits.min(acc_bits).max(1);
    let lut_bits = (1..=most).rev().find(|&b| clean(b)).unwrap_or(1);
    let sanitiser = OutputSanitiser::spanning(acc_bits.max(lut_bits), lut_bits)
        .expect("1 <= lut_bits <= acc_bits <= 62, as the output layer's choice guarantees");
    let half = (1i64 << sanitiser.box_shift) / 2;
    let clamped = x
        .iter()
        .map(|row| output.accumulate(row)[0])
        .filter(|&n| n < sanitiser.lo - half || n >= sanitiser.hi() + half)
        .count();
    SanitiserChoice {
        wrong_box_rate: noise.wrong_box_rate(sd, lut_bits),
        clamped_fraction: clamped as f64 / x.len().max(1) as f64,
        sanitiser,
    }
}
