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

use std::sync::Arc;

use rayon::prelude::*;
use tfhe::core_crypto::prelude::*;
use tfhe_ntt::native64::Plan32;

use crate::ciphertext::{CoefficientSlot, GlweBatch, LweBatch, extraction_list};
use crate::error::{FheError, Result};
use crate::keys::check_parameter_set;
use crate::ntt::{self, MAX_ACCUMULATED_L1_NORM, NttAccumulator, NttGlwe, NttPolynomial};
use crate::params::{FheParameters, ParameterSetId};
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
    rows: usize,
    cols: usize,
    polynomial_size: PolynomialSize,
    block_len: usize,
    input_glwes: usize,
    rows_per_glwe: usize,
    output_glwes: usize,
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

/// A plaintext integer matrix laid out for [`PackedMatVecLayout`] and transformed once: one
/// plaintext polynomial per (output ciphertext, input ciphertext) pair, with all-zero tiles
/// dropped (block-diagonal matrices such as packed embedding tables skip them entirely).
pub struct PackedMatrix {
    parameter_set: ParameterSetId,
    layout: PackedMatVecLayout,
    plan: Arc<Plan32>,
    /// `tiles[g * input_glwe_count + b]`: rows of output ciphertext `g` against input block `b`.
    tiles: Vec<Option<NttPolynomial>>,
}

impl PackedMatrix {
    /// Builds the matrix from `weight(row, col)`. Fails if the layout's polynomial size is not
    /// the parameter set's, or if the weights are so large that transform-domain accumulation
    /// could leave the exact range (see the `ntt` module).
    ///
    /// ```
    /// use fhe::{ClientKey, Encoding, KeySeed, PackedMatVecLayout, PackedMatrix, ParameterSetId, ScaleLog};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let params = key.parameters();
    /// // y = W x with W[r][c] = r - c, 3 x 4.
    /// let layout = PackedMatVecLayout::new(3, 4, params.polynomial_size()).unwrap();
    /// let matrix = PackedMatrix::from_fn(&params, layout, |r, c| r as i64 - c as i64).unwrap();
    /// let encoding = Encoding::new(ScaleLog(40)).unwrap();
    /// let x = [1, 2, 3, 4];
    /// let query = key.encrypt_glwe_batch(&layout.place_inputs(&x).unwrap(), encoding).unwrap();
    /// let products = matrix.apply(&query.decompress().to_ntt().unwrap()).unwrap();
    /// let slots: Vec<_> = (0..3).map(|r| layout.output_slot(r)).collect();
    /// let y = key.decrypt_lwe_batch(&products.extract(&slots).unwrap(), encoding).unwrap();
    /// assert_eq!(y, vec![-20, -10, 0]);
    /// ```
    pub fn from_fn<F>(params: &FheParameters, layout: PackedMatVecLayout, weight: F) -> Result<Self>
    where
        F: Fn(usize, usize) -> i64 + Sync,
    {
        let n = params.polynomial_size().0;
        if layout.polynomial_size != params.polynomial_size() {
            return Err(FheError::LengthMismatch {
                what: "layout polynomial size",
                expected: n,
                found: layout.polynomial_size.0,
            });
        }
        let plan = ntt::plan(n)?;
        let blocks = layout.input_glwes;
        let tiles: Vec<Option<NttPolynomial>> = (0..layout.output_glwes * blocks)
            .into_par_iter()
            .map(|tile| {
                let (group, block) = (tile / blocks, tile % blocks);
                let mut coefficients = vec![0i64; n];
                let mut any_nonzero = false;
                for local_row in 0..layout.rows_per_glwe {
                    let row = group * layout.rows_per_glwe + local_row;
                    if row >= layout.rows {
                        break;
                    }
                    for local_col in 0..layout.block_len {
                        let col = block * layout.block_len + local_col;
                        if col >= layout.cols {
                            break;
                        }
                        let value = weight(row, col);
                        if value != 0 {
                            any_nonzero = true;
                            coefficients
                                [local_row * layout.block_len + layout.block_len - 1 - local_col] =
                                value;
                        }
                    }
                }
                any_nonzero.then(|| NttPolynomial::new(&plan, &coefficients))
            })
            .collect();
        for group_tiles in tiles.chunks(blocks) {
            let l1_norm: u128 = group_tiles
                .iter()
                .flatten()
                .map(NttPolynomial::l1_norm)
                .sum();
            if l1_norm > MAX_ACCUMULATED_L1_NORM {
                return Err(FheError::OutOfRange {
                    what: "sum of weight L1 norms of one output ciphertext",
                    value: l1_norm as i128,
                    min: 0,
                    max: MAX_ACCUMULATED_L1_NORM as i128,
                });
            }
        }
        Ok(PackedMatrix {
            parameter_set: params.id(),
            layout,
            plan,
            tiles,
        })
    }

    /// The layout the matrix was built for.
    ///
    /// ```
    /// use fhe::{PackedMatVecLayout, PackedMatrix, ParameterSetId};
    /// let params = ParameterSetId::default().parameters();
    /// let layout = PackedMatVecLayout::new(2, 2, params.polynomial_size()).unwrap();
    /// let matrix = PackedMatrix::from_fn(&params, layout, |_, _| 1).unwrap();
    /// assert_eq!(matrix.layout(), layout);
    /// ```
    pub fn layout(&self) -> PackedMatVecLayout {
        self.layout
    }

    /// Number of non-zero plaintext polynomials kept (the products one application costs).
    ///
    /// ```
    /// use fhe::{PackedMatVecLayout, PackedMatrix, ParameterSetId};
    /// let params = ParameterSetId::default().parameters();
    /// let layout = PackedMatVecLayout::new(2, 4096, params.polynomial_size()).unwrap();
    /// // Block-diagonal: row 0 reads the first block only, row 1 the second only.
    /// let matrix = PackedMatrix::from_fn(&params, layout, |r, c| i64::from(r == c / 2048)).unwrap();
    /// assert_eq!(matrix.product_count(), 2);
    /// ```
    pub fn product_count(&self) -> usize {
        self.tiles.iter().flatten().count()
    }

    /// Computes `W x` for the input ciphertexts (transformed with [`GlweBatch::to_ntt`]): one
    /// output GLWE per group of rows, each output at [`PackedMatVecLayout::output_slot`].
    /// Output ciphertexts are computed in parallel.
    ///
    /// ```
    /// use fhe::{ClientKey, Encoding, KeySeed, PackedMatVecLayout, PackedMatrix, ParameterSetId, ScaleLog};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let params = key.parameters();
    /// let layout = PackedMatVecLayout::new(1, 2, params.polynomial_size()).unwrap();
    /// let matrix = PackedMatrix::from_fn(&params, layout, |_, _| 1).unwrap();
    /// let encoding = Encoding::new(ScaleLog(40)).unwrap();
    /// let query = key.encrypt_glwe_batch(&vec![0; 4096], encoding).unwrap();
    /// // Two input ciphertexts where the layout expects one.
    /// assert!(matrix.apply(&query.decompress().to_ntt().unwrap()).is_err());
    /// ```
    pub fn apply(&self, inputs: &NttGlweBatch) -> Result<GlweBatch> {
        self.apply_many(&[inputs])
    }

    /// [`PackedMatrix::apply`] for several inputs at once (the tokens of a prompt, the rows of
    /// a batch), in one batch: the outputs of input `i` are ciphertexts
    /// `i * output_glwe_count .. (i + 1) * output_glwe_count`. Every output ciphertext is
    /// computed in parallel and written in place.
    ///
    /// ```
    /// use fhe::{ClientKey, Encoding, KeySeed, PackedMatVecLayout, PackedMatrix, ParameterSetId, ScaleLog};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let params = key.parameters();
    /// let layout = PackedMatVecLayout::new(2, 3, params.polynomial_size()).unwrap();
    /// let matrix = PackedMatrix::from_fn(&params, layout, |r, c| (r * 3 + c) as i64).unwrap();
    /// let encoding = Encoding::new(ScaleLog(40)).unwrap();
    /// let queries: Vec<_> = [[1, 0, 0], [0, 0, 1]]
    ///     .iter()
    ///     .map(|x| key.encrypt_glwe_batch(&layout.place_inputs(x).unwrap(), encoding).unwrap().decompress().to_ntt().unwrap())
    ///     .collect();
    /// let outputs = matrix.apply_many(&[&queries[0], &queries[1]]).unwrap();
    /// assert_eq!(outputs.len(), 2 * layout.output_glwe_count());
    /// let second = layout.output_glwe_count();
    /// let slots: Vec<_> = (0..2).map(|r| layout.output_slot(r)).collect();
    /// let shifted: Vec<_> = slots.iter().map(|s| fhe::CoefficientSlot { glwe: s.glwe + second, ..*s }).collect();
    /// assert_eq!(key.decrypt_lwe_batch(&outputs.extract(&slots).unwrap(), encoding).unwrap(), vec![0, 3]);
    /// assert_eq!(key.decrypt_lwe_batch(&outputs.extract(&shifted).unwrap(), encoding).unwrap(), vec![2, 5]);
    /// ```
    pub fn apply_many(&self, inputs: &[&NttGlweBatch]) -> Result<GlweBatch> {
        self.check_inputs(inputs)?;
        let params = self.parameter_set.parameters();
        let outputs_per_input = self.layout.output_glwes;
        let glwe_words = params.glwe_polynomial_count() * params.polynomial_size().0;
        let mut words = vec![0u64; inputs.len() * outputs_per_input * glwe_words];
        words
            .par_chunks_mut(glwe_words)
            .enumerate()
            .for_each(|(index, output)| self.output_into(inputs, index, output));
        Ok(GlweBatch {
            parameter_set: self.parameter_set,
            list: GlweCiphertextList::from_container(
                words,
                params.glwe_size(),
                params.tfhe_polynomial_size(),
                params.ciphertext_modulus(),
            ),
        })
    }

    /// [`PackedMatrix::apply_many`] then [`GlweBatch::extract`] of `slots` (indexed like the
    /// batch `apply_many` returns), without keeping the output ciphertexts: each one is computed
    /// into a reused buffer, its requested coefficients extracted, and the buffer reused. For a
    /// large one-hot table most of an output is never read, and keeping them all costs memory
    /// and time (1.5 GB for a 128-token MiniLM prompt).
    ///
    /// ```
    /// use fhe::{ClientKey, CoefficientSlot, Encoding, KeySeed, PackedMatVecLayout, PackedMatrix, ParameterSetId, ScaleLog};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let params = key.parameters();
    /// let layout = PackedMatVecLayout::new(2, 3, params.polynomial_size()).unwrap();
    /// let matrix = PackedMatrix::from_fn(&params, layout, |r, c| (r * 3 + c) as i64).unwrap();
    /// let encoding = Encoding::new(ScaleLog(40)).unwrap();
    /// let queries: Vec<_> = [[1, 0, 0], [0, 0, 1]]
    ///     .iter()
    ///     .map(|x| key.encrypt_glwe_batch(&layout.place_inputs(x).unwrap(), encoding).unwrap().decompress().to_ntt().unwrap())
    ///     .collect();
    /// let second = layout.output_glwe_count();
    /// let slots: Vec<CoefficientSlot> = (0..2)
    ///     .map(|r| CoefficientSlot { glwe: second + layout.output_slot(r).glwe, ..layout.output_slot(r) })
    ///     .chain([layout.output_slot(1)])
    ///     .collect();
    /// let outputs = matrix.apply_many_extract(&[&queries[0], &queries[1]], &slots).unwrap();
    /// assert_eq!(key.decrypt_lwe_batch(&outputs, encoding).unwrap(), vec![2, 5, 3]);
    /// let beyond = CoefficientSlot { glwe: 2 * second, coefficient: 0 };
    /// assert!(matrix.apply_many_extract(&[&queries[0], &queries[1]], &[beyond]).is_err());
    /// ```
    pub fn apply_many_extract(
        &self,
        inputs: &[&NttGlweBatch],
        slots: &[CoefficientSlot],
    ) -> Result<LweBatch> {
        self.check_inputs(inputs)?;
        let params = self.parameter_set.parameters();
        let outputs = inputs.len() * self.layout.output_glwes;
        let (mut list, lwe_size) = extraction_list(params, slots, outputs)?;
        // Each requested LWE, grouped by the output ciphertext it is extracted from.
        let mut wanted: Vec<Vec<(usize, &mut [u64])>> = (0..outputs).map(|_| Vec::new()).collect();
        for (words, slot) in list.as_mut().chunks_mut(lwe_size.0).zip(slots) {
            wanted[slot.glwe].push((slot.coefficient, words));
        }
        let glwe_words = params.glwe_polynomial_count() * params.polynomial_size().0;
        wanted
            .into_par_iter()
            .enumerate()
            .filter(|(_, lwes)| !lwes.is_empty())
            .for_each_init(
                || vec![0u64; glwe_words],
                |buffer, (index, lwes)| {
                    self.output_into(inputs, index, buffer);
                    let glwe = GlweCiphertext::from_container(
                        &buffer[..],
                        params.tfhe_polynomial_size(),
                        params.ciphertext_modulus(),
                    );
                    for (coefficient, words) in lwes {
                        let mut lwe =
                            LweCiphertext::from_container(words, params.ciphertext_modulus());
                        extract_lwe_sample_from_glwe_ciphertext(
                            &glwe,
                            &mut lwe,
                            MonomialDegree(coefficient),
                        );
                    }
                },
            );
        Ok(LweBatch {
            parameter_set: self.parameter_set,
            list,
        })
    }

    /// Writes output ciphertext `index` (input-major, as in [`PackedMatrix::apply_many`]) into
    /// `output`: zeros when its row group has no tile.
    fn output_into(&self, inputs: &[&NttGlweBatch], index: usize, output: &mut [u64]) {
        let params = self.parameter_set.parameters();
        let blocks = self.layout.input_glwes;
        let (input, group) = (
            index / self.layout.output_glwes,
            index % self.layout.output_glwes,
        );
        let group_tiles = &self.tiles[group * blocks..(group + 1) * blocks];
        let products: Vec<(&NttGlwe, &NttPolynomial)> = inputs[input]
            .glwes
            .iter()
            .zip(group_tiles)
            .filter_map(|(glwe, tile)| tile.as_ref().map(|tile| (glwe, tile)))
            .collect();
        if products.is_empty() {
            output.fill(0);
            return;
        }
        let mut accumulator = NttAccumulator::new(&self.plan, params.glwe_polynomial_count());
        accumulator.add_products(&self.plan, &products);
        accumulator.finish_into(&self.plan, output);
    }

    fn check_inputs(&self, inputs: &[&NttGlweBatch]) -> Result<()> {
        for input in inputs {
            check_parameter_set(self.parameter_set, input.parameter_set)?;
            if input.glwes.len() != self.layout.input_glwes {
                return Err(FheError::LengthMismatch {
                    what: "input ciphertexts of a packed product",
                    expected: self.layout.input_glwes,
                    found: input.glwes.len(),
                });
            }
        }
        Ok(())
    }
}

/// GLWE ciphertexts transformed once to the NTT domain, the input of [`PackedMatrix::apply`].
pub struct NttGlweBatch {
    parameter_set: ParameterSetId,
    glwes: Vec<NttGlwe>,
}

impl NttGlweBatch {
    /// Number of ciphertexts.
    ///
    /// ```
    /// use fhe::{ClientKey, Encoding, KeySeed, ParameterSetId, ScaleLog};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let query = key.encrypt_glwe_batch(&vec![0; 2048], Encoding::new(ScaleLog(40)).unwrap()).unwrap();
    /// assert_eq!(query.decompress().to_ntt().unwrap().len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.glwes.len()
    }

    /// Whether the batch is empty.
    ///
    /// ```
    /// use fhe::{ClientKey, Encoding, KeySeed, ParameterSetId, ScaleLog};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let query = key.encrypt_glwe_batch(&[], Encoding::new(ScaleLog(40)).unwrap()).unwrap();
    /// assert!(query.decompress().to_ntt().unwrap().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.glwes.is_empty()
    }

    /// Splits the batch into consecutive batches of `lengths` ciphertexts (which must add up to
    /// the batch's length), moving the ciphertexts: one product per part of a query.
    ///
    /// ```
    /// use fhe::{ClientKey, Encoding, KeySeed, ParameterSetId, ScaleLog};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let query = key.encrypt_glwe_batch(&vec![0; 3 * 2048], Encoding::new(ScaleLog(40)).unwrap()).unwrap();
    /// let parts = query.decompress().to_ntt().unwrap().split(&[1, 2]).unwrap();
    /// assert_eq!((parts[0].len(), parts[1].len()), (1, 2));
    /// assert!(query.decompress().to_ntt().unwrap().split(&[1, 1]).is_err());
    /// ```
    pub fn split(self, lengths: &[usize]) -> Result<Vec<NttGlweBatch>> {
        let total: usize = lengths.iter().sum();
        if total != self.glwes.len() {
            return Err(FheError::LengthMismatch {
                what: "ciphertexts split into parts",
                expected: self.glwes.len(),
                found: total,
            });
        }
        let mut glwes = self.glwes.into_iter();
        Ok(lengths
            .iter()
            .map(|&length| NttGlweBatch {
                parameter_set: self.parameter_set,
                glwes: glwes.by_ref().take(length).collect(),
            })
            .collect())
    }
}

impl GlweBatch {
    /// Transforms every ciphertext to the NTT domain once (in parallel), so that any number of
    /// plaintext products can reuse it.
    ///
    /// ```
    /// use fhe::{ClientKey, Encoding, KeySeed, ParameterSetId, ScaleLog};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let query = key.encrypt_glwe_batch(&vec![1; 2048], Encoding::new(ScaleLog(40)).unwrap()).unwrap();
    /// assert_eq!(query.decompress().to_ntt().unwrap().len(), 1);
    /// ```
    pub fn to_ntt(&self) -> Result<NttGlweBatch> {
        let params = self.parameter_set.parameters();
        let plan = ntt::plan(params.polynomial_size().0)?;
        let glwe_words = params.glwe_polynomial_count() * params.polynomial_size().0;
        let glwes = self
            .list
            .as_ref()
            .par_chunks_exact(glwe_words)
            .map(|words| NttGlwe::new(&plan, words))
            .collect();
        Ok(NttGlweBatch {
            parameter_set: self.parameter_set,
            glwes,
        })
    }
}
