//! The output sanitiser: an identity lookup table on a coarse grid of the logit numerator, which
//! the encrypted executor evaluates as one last bootstrap so that the response is a fresh
//! bootstrap output rather than the last dense layer's raw accumulator (whose noise and mask
//! depend on the server's weights). docs/security.md says what it hides and what it does not.

use serde::{Deserialize, Serialize};

use crate::activation::{MAX_LUT_BITS, box_index, noisy_box_index};
use crate::{DlrmError, Result};

/// `2^lut_bits` boxes of width `2^box_shift` centred at `lo + k 2^box_shift` over the logit
/// numerator; the sanitised numerator is the centre of the box the numerator falls in (nearest
/// centre, ties upwards, clamped to the first and last box): an identity on the box centres.
///
/// ```
/// let s = dlrm::OutputSanitiser::spanning(8, 4).unwrap(); // 16 boxes of 16 over -128..128
/// assert_eq!((s.lo, s.box_shift), (-119, 4));
/// assert_eq!((s.apply(0), s.apply(1)), (-7, 9)); // the sign threshold is a box edge
/// assert_eq!(s.apply(s.centre(3)), s.centre(3));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputSanitiser {
    /// Centre of the first box, in numerator units.
    pub lo: i64,
    /// Log2 of the box width.
    pub box_shift: u32,
    /// Log2 of the number of boxes.
    pub lut_bits: u32,
}

impl OutputSanitiser {
    /// The `2^lut_bits` boxes that span a signed numerator of `acc_bits` bits
    /// (`-2^(acc_bits-1) + 1 ..= 2^(acc_bits-1)`), with an edge between 0 and 1: a
    /// numerator and its sanitised value are on the same side of the class threshold
    /// (`numerator > 0`). Needs `1 <= lut_bits <= acc_bits <= 62`.
    ///
    /// ```
    /// let s = dlrm::OutputSanitiser::spanning(3, 3).unwrap(); // boxes of one unit: exact
    /// assert!((-3..=4).all(|n| s.apply(n) == n));
    /// assert!(dlrm::OutputSanitiser::spanning(3, 4).is_err());
    /// ```
    pub fn spanning(acc_bits: u32, lut_bits: u32) -> Result<Self> {
        if !(1..=MAX_LUT_BITS).contains(&lut_bits) || lut_bits > acc_bits || acc_bits > 62 {
            return Err(DlrmError::config(format!(
                "an output sanitiser of {lut_bits} table bits over a {acc_bits}-bit numerator"
            )));
        }
        let box_shift = acc_bits - lut_bits;
        let width = 1i64 << box_shift;
        Ok(Self {
            lo: 1 + width / 2 - (1i64 << (acc_bits - 1)),
            box_shift,
            lut_bits,
        })
    }

    /// The box the numerator `acc` falls in (without noise).
    pub fn box_index(&self, acc: i64) -> usize {
        box_index(self.lo, self.box_shift, self.lut_bits, acc)
    }

    /// The box a bootstrap reads for a noisy real-valued numerator (used by `simulate`).
    pub fn noisy_box_index(&self, phase: f64) -> usize {
        noisy_box_index(self.lo, self.box_shift, self.lut_bits, phase)
    }

    /// Centre of box `k`: the numerator the sanitiser returns for it.
    pub fn centre(&self, k: usize) -> i64 {
        self.lo + ((k as i64) << self.box_shift)
    }

    /// The sanitised numerator: the centre of the box `acc` falls in.
    pub fn apply(&self, acc: i64) -> i64 {
        self.centre(self.box_index(acc))
    }

    /// The lookup table the bootstrap evaluates: entry `k` is box `k`'s centre.
    ///
    /// ```
    /// let s = dlrm::OutputSanitiser::spanning(4, 2).unwrap();
    /// assert_eq!(s.entries(), vec![-5, -1, 3, 7]);
    /// ```
    pub fn entries(&self) -> Vec<i64> {
        (0..1usize << self.lut_bits)
            .map(|k| self.centre(k))
            .collect()
    }

    /// Centre of the last box.
    pub fn hi(&self) -> i64 {
        self.centre((1usize << self.lut_bits) - 1)
    }

    /// Checks the grid against the output encoding of `output_acc_bits` signed bits (one
    /// padding bit of headroom: centres in `[-2^output_acc_bits, 2^output_acc_bits)` decode).
    pub(crate) fn validate(&self, output_acc_bits: u32) -> std::result::Result<(), String> {
        if !(1..=MAX_LUT_BITS).contains(&self.lut_bits) || self.lut_bits + self.box_shift > 62 {
            return Err(format!(
                "{} table bits with boxes of 2^{} do not fit a ciphertext",
                self.lut_bits, self.box_shift
            ));
        }
        let limit = 1i64 << output_acc_bits.min(62);
        if self.lo.unsigned_abs() > 1 << 60 || self.lo < -limit || self.hi() >= limit {
            return Err(format!(
                "box centres {}..={} outside the {output_acc_bits}-bit output",
                self.lo,
                self.hi()
            ));
        }
        Ok(())
    }
}
