//! Coefficient-packed matrix-vector products (the Cheetah layout): a GLWE ciphertext holds a
//! block of the input vector in its coefficients, and one plaintext polynomial holds several
//! matrix rows, so one GLWE x plaintext product computes several inner products at once, with no
//! key material.
//!
//! With an input block `x(X) = sum_j x_j X^j` of length `n` and
//! `w(X) = sum_r sum_j W[r][j] X^(r n + n - 1 - j)` for `R = floor(N / n)` rows, coefficient
//! `r n + n - 1` of `x * w` is `sum_j W[r][j] x_j`; the other coefficients hold partial sums
//! that are never read. Inputs longer than `N` are split into blocks whose products add up in
//! the transform domain, so each output ciphertext costs one inverse transform.

use crate::error::{FheError, Result};
use crate::glwe_batch::CoefficientSlot;
use crate::sizes::PolynomialSize;

/// Where a matrix-vector product puts its inputs and outputs in GLWE coefficients.
///
/// ```
/// use fhe::{PackedMatVecLayout, PolynomialSize};
/// // 16 outputs of 100 inputs: 20 rows share each plaintext polynomial.
/// let layout = PackedMatVecLayout::new(16, 100, PolynomialSize(2048)).unwrap();
/// assert_eq!(layout.input_glwe_count(), 1);
/// assert_eq!(layout.output_glwe_count(), 1);
/// assert_eq!(layout.output_slot(1).coefficient, 199);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackedMatVecLayout {
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) polynomial_size: PolynomialSize,
    pub(crate) block_len: usize,
    pub(crate) input_glwes: usize,
    pub(crate) rows_per_glwe: usize,
    pub(crate) output_glwes: usize,
}

impl PackedMatVecLayout {
    /// The layout with the fewest input ciphertexts: input blocks as long as possible (at most
    /// `N`), balanced across the blocks.
    ///
    /// ```
    /// use fhe::{PackedMatVecLayout, PolynomialSize};
    /// let layout = PackedMatVecLayout::new(3, 5000, PolynomialSize(2048)).unwrap();
    /// assert_eq!((layout.input_glwe_count(), layout.block_len()), (3, 1667));
    /// assert!(PackedMatVecLayout::new(0, 5, PolynomialSize(2048)).is_err());
    /// ```
    pub fn new(rows: usize, cols: usize, polynomial_size: PolynomialSize) -> Result<Self> {
        let blocks = cols.div_ceil(polynomial_size.0.max(1));
        let block_len = if blocks == 0 {
            0
        } else {
            cols.div_ceil(blocks)
        };
        Self::with_block_len(rows, cols, polynomial_size, block_len)
    }

    /// A layout with input blocks of `block_len` coefficients: shorter blocks mean more input
    /// ciphertexts but more rows per plaintext polynomial, hence fewer products and inverse
    /// transforms on the server.
    ///
    /// ```
    /// use fhe::{PackedMatVecLayout, PolynomialSize};
    /// let layout = PackedMatVecLayout::with_block_len(8, 300, PolynomialSize(2048), 100).unwrap();
    /// assert_eq!(layout.input_glwe_count(), 3);
    /// assert_eq!(layout.rows_per_glwe(), 20);
    /// assert!(PackedMatVecLayout::with_block_len(8, 300, PolynomialSize(2048), 4096).is_err());
    /// ```
    pub fn with_block_len(
        rows: usize,
        cols: usize,
        polynomial_size: PolynomialSize,
        block_len: usize,
    ) -> Result<Self> {
        if rows == 0 || cols == 0 {
            return Err(FheError::InvalidArgument(format!(
                "a packed matrix needs at least one row and one column, got {rows} x {cols}"
            )));
        }
        if block_len == 0 || block_len > polynomial_size.0 {
            return Err(FheError::OutOfRange {
                what: "input block length",
                value: block_len as i128,
                min: 1,
                max: polynomial_size.0 as i128,
            });
        }
        let rows_per_glwe = polynomial_size.0 / block_len;
        Ok(PackedMatVecLayout {
            rows,
            cols,
            polynomial_size,
            block_len,
            input_glwes: cols.div_ceil(block_len),
            rows_per_glwe,
            output_glwes: rows.div_ceil(rows_per_glwe),
        })
    }

    /// Number of matrix rows (outputs).
    ///
    /// ```
    /// use fhe::{PackedMatVecLayout, PolynomialSize};
    /// assert_eq!(PackedMatVecLayout::new(7, 9, PolynomialSize(2048)).unwrap().rows(), 7);
    /// ```
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of matrix columns (inputs).
    ///
    /// ```
    /// use fhe::{PackedMatVecLayout, PolynomialSize};
    /// assert_eq!(PackedMatVecLayout::new(7, 9, PolynomialSize(2048)).unwrap().cols(), 9);
    /// ```
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Input coefficients per input ciphertext (the row spacing `n` of the outputs).
    ///
    /// ```
    /// use fhe::{PackedMatVecLayout, PolynomialSize};
    /// assert_eq!(PackedMatVecLayout::new(7, 9, PolynomialSize(2048)).unwrap().block_len(), 9);
    /// ```
    pub fn block_len(&self) -> usize {
        self.block_len
    }

    /// Number of input GLWE ciphertexts.
    ///
    /// ```
    /// use fhe::{PackedMatVecLayout, PolynomialSize};
    /// assert_eq!(PackedMatVecLayout::new(1, 4097, PolynomialSize(2048)).unwrap().input_glwe_count(), 3);
    /// ```
    pub fn input_glwe_count(&self) -> usize {
        self.input_glwes
    }

    /// Rows computed by one plaintext polynomial, `floor(N / n)`.
    ///
    /// ```
    /// use fhe::{PackedMatVecLayout, PolynomialSize};
    /// assert_eq!(PackedMatVecLayout::new(1, 1000, PolynomialSize(2048)).unwrap().rows_per_glwe(), 2);
    /// ```
    pub fn rows_per_glwe(&self) -> usize {
        self.rows_per_glwe
    }

    /// Number of output GLWE ciphertexts.
    ///
    /// ```
    /// use fhe::{PackedMatVecLayout, PolynomialSize};
    /// assert_eq!(PackedMatVecLayout::new(5, 1000, PolynomialSize(2048)).unwrap().output_glwe_count(), 3);
    /// ```
    pub fn output_glwe_count(&self) -> usize {
        self.output_glwes
    }

    /// Where input `col` goes: the client writes `x[col]` there.
    ///
    /// ```
    /// use fhe::{CoefficientSlot, PackedMatVecLayout, PolynomialSize};
    /// let layout = PackedMatVecLayout::new(1, 4000, PolynomialSize(2048)).unwrap();
    /// assert_eq!(layout.input_slot(2001), CoefficientSlot { glwe: 1, coefficient: 1 });
    /// ```
    pub fn input_slot(&self, col: usize) -> CoefficientSlot {
        CoefficientSlot {
            glwe: col / self.block_len,
            coefficient: col % self.block_len,
        }
    }

    /// Where output `row` lands in the product ciphertexts.
    ///
    /// ```
    /// use fhe::{CoefficientSlot, PackedMatVecLayout, PolynomialSize};
    /// let layout = PackedMatVecLayout::new(5, 1000, PolynomialSize(2048)).unwrap();
    /// assert_eq!(layout.output_slot(3), CoefficientSlot { glwe: 1, coefficient: 1999 });
    /// ```
    pub fn output_slot(&self, row: usize) -> CoefficientSlot {
        CoefficientSlot {
            glwe: row / self.rows_per_glwe,
            coefficient: (row % self.rows_per_glwe) * self.block_len + self.block_len - 1,
        }
    }

    /// Places an input vector into the coefficients of the input ciphertexts
    /// (`input_glwe_count() * N` values, zero where no input goes), ready for
    /// [`crate::ClientKey::encrypt_glwe_batch`].
    ///
    /// ```
    /// use fhe::{PackedMatVecLayout, PolynomialSize};
    /// let layout = PackedMatVecLayout::new(1, 3, PolynomialSize(2048)).unwrap();
    /// let coefficients = layout.place_inputs(&[4, 5, 6]).unwrap();
    /// assert_eq!(&coefficients[..4], &[4, 5, 6, 0]);
    /// assert!(layout.place_inputs(&[1]).is_err());
    /// ```
    pub fn place_inputs(&self, inputs: &[i64]) -> Result<Vec<i64>> {
        if inputs.len() != self.cols {
            return Err(FheError::LengthMismatch {
                what: "matrix-vector input",
                expected: self.cols,
                found: inputs.len(),
            });
        }
        let n = self.polynomial_size.0;
        let mut coefficients = vec![0; self.input_glwes * n];
        for (col, &value) in inputs.iter().enumerate() {
            let slot = self.input_slot(col);
            coefficients[slot.glwe * n + slot.coefficient] = value;
        }
        Ok(coefficients)
    }
}
