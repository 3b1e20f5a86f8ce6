//! The activation table a bootstrap evaluates, and the widths the quantized format allows.

use serde::{Deserialize, Serialize};

/// Widest integer (weights, inputs, table entries, activations) the format allows, in bits.
pub const MAX_VALUE_BITS: u32 = 16;
/// Most lookup-table boxes, as bits.
pub const MAX_LUT_BITS: u32 = 16;

/// The activation a bootstrap evaluates: it sees the accumulator only as one of `2^lut_bits`
/// boxes of width `2^box_shift` whose centres are `lo + k 2^box_shift`, the nearest centre
/// (ties upwards, clamped to the first and last box), and returns `entries[k]`, an integer in
/// `[0, 2^output_bits)` (ReLU, rescaling and clamping folded into the entries).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActivationTable {
    /// Centre of the first box, in accumulator units.
    pub lo: i64,
    /// Log2 of the box width.
    pub box_shift: u32,
    /// Log2 of the number of boxes.
    pub lut_bits: u32,
    /// Width of the entries: every entry is below `2^output_bits`.
    pub output_bits: u32,
    /// The output of each box, `2^lut_bits` of them.
    pub entries: Vec<u32>,
}

impl ActivationTable {
    /// The box a bootstrap reads for accumulator `acc` (without noise).
    ///
    /// ```
    /// let t = dlrm::ActivationTable { lo: -8, box_shift: 2, lut_bits: 2, output_bits: 2, entries: vec![0, 0, 1, 3] };
    /// assert_eq!((t.box_index(-8), t.box_index(-7), t.box_index(-6)), (0, 0, 1));
    /// assert_eq!((t.box_index(-100), t.box_index(100)), (0, 3));
    /// ```
    pub fn box_index(&self, acc: i64) -> usize {
        box_index(self.lo, self.box_shift, self.lut_bits, acc)
    }

    /// The box read for a noisy real-valued phase (used by `simulate`).
    ///
    /// ```
    /// let t = dlrm::ActivationTable { lo: -8, box_shift: 2, lut_bits: 2, output_bits: 2, entries: vec![0, 0, 1, 3] };
    /// assert_eq!(t.noisy_box_index(-6.1), 0);
    /// assert_eq!(t.noisy_box_index(-5.9), 1);
    /// ```
    pub fn noisy_box_index(&self, phase: f64) -> usize {
        noisy_box_index(self.lo, self.box_shift, self.lut_bits, phase)
    }

    /// The activation of accumulator `acc`: `entries[box_index(acc)]`.
    ///
    /// ```
    /// let t = dlrm::ActivationTable { lo: -8, box_shift: 2, lut_bits: 2, output_bits: 2, entries: vec![0, 0, 1, 3] };
    /// assert_eq!(t.apply(5), 3);
    /// ```
    pub fn apply(&self, acc: i64) -> i64 {
        i64::from(self.entries[self.box_index(acc)])
    }

    /// Centre of the last box: accumulators above `hi() + 2^(box_shift-1)` are clamped.
    pub fn hi(&self) -> i64 {
        self.lo + (last_box(self.lut_bits) << self.box_shift)
    }

    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
        if self.lut_bits == 0 || self.lut_bits > MAX_LUT_BITS {
            return Err(format!(
                "lut_bits {} outside 1..={MAX_LUT_BITS}",
                self.lut_bits
            ));
        }
        if self.output_bits == 0 || self.output_bits > MAX_VALUE_BITS || self.box_shift > 40 {
            return Err("output_bits or box_shift out of range".into());
        }
        if self.entries.len() != 1 << self.lut_bits {
            return Err(format!(
                "{} entries for {} lut bits",
                self.entries.len(),
                self.lut_bits
            ));
        }
        if self.entries.iter().any(|&e| e >> self.output_bits != 0) {
            return Err("an entry does not fit output_bits".into());
        }
        if self.lo.unsigned_abs() > 1 << 60 {
            return Err("lo out of range".into());
        }
        Ok(())
    }
}

/// The box of `2^lut_bits` boxes of width `2^box_shift` centred at `lo + k 2^box_shift` that
/// accumulator `acc` rounds to: the nearest centre, ties upwards, clamped to the first and last.
pub(crate) fn box_index(lo: i64, box_shift: u32, lut_bits: u32, acc: i64) -> usize {
    let half = (1i64 << box_shift) >> 1;
    let k = (acc.saturating_sub(lo).saturating_add(half)) >> box_shift;
    k.clamp(0, last_box(lut_bits)) as usize
}

/// [`box_index`] for a noisy real-valued phase.
pub(crate) fn noisy_box_index(lo: i64, box_shift: u32, lut_bits: u32, phase: f64) -> usize {
    let k = ((phase - lo as f64) / (1u64 << box_shift) as f64 + 0.5).floor();
    k.clamp(0.0, last_box(lut_bits) as f64) as usize
}

fn last_box(lut_bits: u32) -> i64 {
    (1i64 << lut_bits) - 1
}
