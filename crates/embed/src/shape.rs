//! The public description of a table: its size, its dimension, how ids are sent (one-hot, or
//! digits for compositional tables) and a bound on its entries. Client and server agree on
//! shapes before anything is packed or encrypted.

use serde::{Deserialize, Serialize};

use crate::error::{EmbedError, Result};

/// How a row index is presented to the server: `count` digits in base `base`, each sent as a
/// one-hot vector of length `base`. One-hot mode is one digit in base `rows`.
///
/// ```
/// use embed::DigitScheme;
/// assert_eq!(DigitScheme::for_rows(10_000_000, 8).unwrap(), DigitScheme { base: 8, count: 8 });
/// assert_eq!(DigitScheme::one_hot(26), DigitScheme { base: 26, count: 1 });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DigitScheme {
    /// The base `p` of the digits (length of each one-hot vector).
    pub base: u64,
    /// The number `l` of digits.
    pub count: u32,
}

impl DigitScheme {
    /// One digit in base `rows`: the plain one-hot baseline.
    ///
    /// ```
    /// use embed::DigitScheme;
    /// assert_eq!(DigitScheme::one_hot(5).input_len(), 5);
    /// ```
    pub fn one_hot(rows: u64) -> Self {
        DigitScheme {
            base: rows,
            count: 1,
        }
    }

    /// The fewest base-`base` digits that can address `rows` rows.
    ///
    /// ```
    /// use embed::DigitScheme;
    /// assert_eq!(DigitScheme::for_rows(1460, 16).unwrap().count, 3);
    /// assert!(DigitScheme::for_rows(10, 1).is_err());
    /// ```
    pub fn for_rows(rows: u64, base: u64) -> Result<Self> {
        if base < 2 {
            return Err(EmbedError::InvalidArgument(format!(
                "a digit base must be at least 2, got {base}"
            )));
        }
        let mut count = 1;
        let mut capacity = base;
        while capacity < rows {
            capacity = capacity.saturating_mul(base);
            count += 1;
        }
        Ok(DigitScheme { base, count })
    }

    /// Number of one-hot coefficients the client sends, `base * count`.
    ///
    /// ```
    /// use embed::DigitScheme;
    /// assert_eq!(DigitScheme { base: 8, count: 8 }.input_len(), 64);
    /// ```
    pub fn input_len(self) -> usize {
        self.base as usize * self.count as usize
    }

    /// The digits of `id`, least significant first.
    ///
    /// ```
    /// use embed::DigitScheme;
    /// assert_eq!(DigitScheme { base: 10, count: 3 }.digits(472), vec![2, 7, 4]);
    /// ```
    pub fn digits(self, id: u64) -> Vec<u64> {
        let mut rest = id;
        (0..self.count)
            .map(|_| {
                let digit = rest % self.base;
                rest /= self.base;
                digit
            })
            .collect()
    }
}

/// The public description of one table: its size, how ids are sent, and a bound on the absolute
/// value of its entries (sums of codebook rows for digit tables), which fixes the encoding.
///
/// ```
/// use embed::{DigitScheme, TableShape};
/// let shape = TableShape::digits(10_131_227, 16, 8, 127).unwrap();
/// assert_eq!(shape.digits, DigitScheme { base: 8, count: 8 });
/// assert_eq!(shape.input_len(), 64);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TableShape {
    /// Number of rows `V` (valid ids are `0..rows`).
    pub rows: u64,
    /// Embedding dimension `d`.
    pub dim: usize,
    /// How ids are sent.
    pub digits: DigitScheme,
    /// Bound on the absolute value of every table (or codebook) entry.
    pub max_abs_value: i64,
}

impl TableShape {
    /// A table looked up with a one-hot vector of length `rows`.
    ///
    /// ```
    /// use embed::TableShape;
    /// assert_eq!(TableShape::one_hot(100, 4, 7).unwrap().input_len(), 100);
    /// assert!(TableShape::one_hot(0, 4, 7).is_err());
    /// ```
    pub fn one_hot(rows: u64, dim: usize, max_abs_value: i64) -> Result<Self> {
        Self::new(rows, dim, DigitScheme::one_hot(rows), max_abs_value)
    }

    /// A compositional table: `count` codebooks of `base` rows, `E[i] = sum_j C_j[digit_j(i)]`.
    ///
    /// ```
    /// use embed::TableShape;
    /// assert_eq!(TableShape::digits(583, 16, 8, 127).unwrap().digits.count, 4);
    /// ```
    pub fn digits(rows: u64, dim: usize, base: u64, max_abs_value: i64) -> Result<Self> {
        Self::new(rows, dim, DigitScheme::for_rows(rows, base)?, max_abs_value)
    }

    fn new(rows: u64, dim: usize, digits: DigitScheme, max_abs_value: i64) -> Result<Self> {
        if rows == 0 || dim == 0 || digits.base == 0 || digits.count == 0 {
            return Err(EmbedError::InvalidArgument(format!(
                "a table needs rows, a dimension and digits, got {rows} x {dim} with {digits:?}"
            )));
        }
        if max_abs_value < 0 {
            return Err(EmbedError::InvalidArgument(format!(
                "a value bound cannot be negative, got {max_abs_value}"
            )));
        }
        Ok(TableShape {
            rows,
            dim,
            digits,
            max_abs_value,
        })
    }

    /// Number of one-hot coefficients one lookup sends.
    ///
    /// ```
    /// use embed::TableShape;
    /// assert_eq!(TableShape::digits(1000, 2, 10, 1).unwrap().input_len(), 30);
    /// ```
    pub fn input_len(&self) -> usize {
        self.digits.input_len()
    }

    /// Largest absolute value of a lookup output: one codebook entry per digit.
    pub(crate) fn max_output(&self) -> u128 {
        u128::from(self.digits.count) * self.max_abs_value as u128
    }

    /// Worst-case L1 norm of the weights behind one output: every one-hot coefficient carries
    /// fresh noise, weighted by a table entry.
    pub(crate) fn max_weight_l1(&self) -> u128 {
        self.input_len() as u128 * self.max_abs_value as u128
    }
}
