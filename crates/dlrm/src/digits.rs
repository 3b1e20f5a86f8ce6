//! Digit decomposition of embedding ids: `i = sum_j d_j p^j`, the structure the encrypted lookup
//! exploits (the client sends `l` one-hots of length `p` instead of one of length `V`).

use serde::{Deserialize, Serialize};

use crate::{DlrmError, Result};

/// Base `p` and number of digits `l` of a digit-decomposed table (`p^l >= V`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigitCode {
    /// The base `p`: length of each digit's one-hot.
    pub base: u32,
    /// The number of digits `l`.
    pub digits: u32,
}

impl DigitCode {
    /// A code for a table of `rows` ids, checking `base >= 2`, `digits >= 1` and `base^digits >= rows`.
    ///
    /// ```
    /// use dlrm::DigitCode;
    /// assert!(DigitCode::new(10, 3, 1000).is_ok());
    /// assert!(DigitCode::new(10, 3, 1001).is_err());
    /// ```
    pub fn new(base: u32, digits: u32, rows: usize) -> Result<Self> {
        let code = Self { base, digits };
        code.check(rows)?;
        Ok(code)
    }

    /// Checks that this code can address `rows` ids.
    ///
    /// ```
    /// use dlrm::DigitCode;
    /// let code = DigitCode { base: 2, digits: 4 };
    /// assert!(code.check(16).is_ok() && code.check(17).is_err());
    /// ```
    pub fn check(&self, rows: usize) -> Result<()> {
        if self.base < 2 || self.digits == 0 || self.digits > 64 {
            return Err(DlrmError::config(format!(
                "digit code needs base >= 2 and 1..=64 digits, got base {} digits {}",
                self.base, self.digits
            )));
        }
        if self.capacity() < rows as u128 {
            return Err(DlrmError::config(format!(
                "base {} with {} digits addresses {} ids, table has {rows}",
                self.base,
                self.digits,
                self.capacity()
            )));
        }
        Ok(())
    }

    /// How many ids the code can address, `p^l` (saturating).
    ///
    /// ```
    /// assert_eq!(dlrm::DigitCode { base: 3, digits: 2 }.capacity(), 9);
    /// ```
    pub fn capacity(&self) -> u128 {
        (self.base as u128).saturating_pow(self.digits)
    }

    /// The smallest code with `digits` digits for `rows` ids: `p = ceil(rows^(1/l))`, at least 2.
    ///
    /// ```
    /// let code = dlrm::DigitCode::smallest(10_131, 2);
    /// assert_eq!(code.base, 101);
    /// ```
    pub fn smallest(rows: usize, digits: u32) -> Self {
        let digits = digits.max(1);
        let mut base = ((rows.max(2) as f64).powf(1.0 / digits as f64).floor() as u32).max(2);
        while (base as u128).saturating_pow(digits) < rows as u128 {
            base += 1;
        }
        Self { base, digits }
    }

    /// Codebook rows of the code, `l * p`: the one-hot coefficients a lookup sends.
    ///
    /// ```
    /// assert_eq!(dlrm::DigitCode { base: 8, digits: 3 }.codebook_rows(), 24);
    /// ```
    pub fn codebook_rows(&self) -> usize {
        self.base as usize * self.digits as usize
    }

    /// Writes the digits of `id`, least significant first, into `out` (`out.len() == digits`).
    ///
    /// ```
    /// let code = dlrm::DigitCode { base: 10, digits: 3 };
    /// let mut d = [0; 3];
    /// code.decompose(472, &mut d);
    /// assert_eq!(d, [2, 7, 4]);
    /// ```
    pub fn decompose(&self, id: u32, out: &mut [u32]) {
        debug_assert_eq!(out.len(), self.digits as usize);
        let mut rest = id;
        for digit in out.iter_mut() {
            *digit = rest % self.base;
            rest /= self.base;
        }
    }

    /// The id whose digits (least significant first) are `digits`.
    ///
    /// ```
    /// let code = dlrm::DigitCode { base: 10, digits: 3 };
    /// assert_eq!(code.compose(&[2, 7, 4]), 472);
    /// ```
    pub fn compose(&self, digits: &[u32]) -> u64 {
        digits
            .iter()
            .rev()
            .fold(0u64, |acc, &d| acc * self.base as u64 + d as u64)
    }

    /// Row of codebook row-block `j` holding digit `d`, in the stacked `(l * p) x dim` layout.
    ///
    /// ```
    /// assert_eq!(dlrm::DigitCode { base: 8, digits: 3 }.stacked_row(2, 5), 21);
    /// ```
    pub fn stacked_row(&self, digit_index: usize, digit: u32) -> usize {
        digit_index * self.base as usize + digit as usize
    }
}
