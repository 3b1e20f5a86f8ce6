//! The dot interaction's square table: how many boxes, how wide, and which square each returns.

use crate::activation::ActivationTable;
use crate::dot::DotInteraction;

use super::config::QuantizeConfig;
use super::grids::boxes_spanning;
use super::report::SquareChoice;

/// Noise deviations inside half a square-table box. The squares' inputs are small integers, in
/// single-integer boxes or a few per box, so they sit at or near box centres, where clean
/// boxes are rarely misread; `min_clean_sigmas` is for the MLP's accumulators, which lie
/// anywhere in their boxes.
const SQUARE_CLEAN_SIGMAS: f64 = 3.0;

/// The square table. It covers every sum and entry the model can produce (twice the largest
/// bottom output or embedding sum, `largest_vector`), so nothing is ever clamped: in
/// single-integer boxes (exact squares) when the fewest boxes that allow it stay clean for the
/// noisiest input (one bootstrap output), else in the most boxes that do. It returns squares in
/// at most `2^square_bits` levels.
pub(super) fn square_table(largest_vector: i64, config: &QuantizeConfig) -> DotInteraction {
    let noise = &config.noise;
    let sd = noise.bootstrap_input_sd(1.0);
    let clean_bits = (2..=config.max_lut_bits)
        .rev()
        .find(|&bits| noise.box_width(bits) / 2.0 >= SQUARE_CLEAN_SIGMAS * sd)
        .unwrap_or(2);
    let bound = 2 * largest_vector;
    // The fewest boxes that give every sum its own box (wider boxes, fewer misreads), else
    // the most that stay clean.
    let lut_bits = (1..=clean_bits)
        .find(|&bits| (1i64 << bits) > 2 * bound)
        .unwrap_or_else(|| {
            // Boxes of several integers: no single-integer table stays clean.
            (clean_bits + config.square_finer_bits).min(config.max_lut_bits)
        });
    let (lo, box_shift) = boxes_spanning(-bound, bound, lut_bits);
    let centres: Vec<i64> = (0..1i64 << lut_bits)
        .map(|k| lo + (k << box_shift))
        .collect();
    // Levels over the squares the model can produce (the boxes may reach further).
    let largest = bound.unsigned_abs().pow(2).max(1);
    let levels = (1u64 << config.square_bits) - 1;
    let square_unit = (largest as f64 / levels as f64).max(1.0);
    let square = ActivationTable {
        lo,
        box_shift,
        lut_bits,
        output_bits: config.square_bits,
        // Each box returns the mean square of the integers it holds (`centre + delta`, delta
        // in `[-half, half)`): the centre's square alone is biased by `-centre` per read once
        // boxes hold several integers.
        entries: centres
            .iter()
            .map(|&c| {
                let half = (1i64 << box_shift) >> 1;
                let held = (-half..(1i64 << box_shift) - half).map(|delta| (c + delta).pow(2));
                let mean = held.sum::<i64>() as f64 / (1u64 << box_shift) as f64;
                (mean / square_unit).round().min(levels as f64) as u32
            })
            .collect(),
    };
    DotInteraction {
        square,
        square_unit,
    }
}

/// What the report says of the square table `dot`, whose pair features have `pair_scales`.
pub(super) fn square_choice(
    dot: &DotInteraction,
    pair_scales: Vec<f64>,
    config: &QuantizeConfig,
) -> SquareChoice {
    let table = &dot.square;
    // The noisiest square input sums one bootstrap output.
    let sd = config.noise.bootstrap_input_sd(1.0);
    SquareChoice {
        lut_bits: table.lut_bits,
        box_shift: table.box_shift,
        wrong_box_rate: config.noise.wrong_box_rate(sd, table.lut_bits),
        square_unit: dot.square_unit,
        pair_scales,
    }
}
