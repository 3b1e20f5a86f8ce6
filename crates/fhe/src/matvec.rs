//! Plaintext matrix x encrypted vector products in the coefficient-packed layout of
//! `matvec_layout.rs`: the matrix is transformed once, each product costs one plaintext x GLWE
//! product per non-zero tile, accumulated in the NTT domain, and one inverse transform per
//! output ciphertext.

use std::sync::Arc;

use rayon::prelude::*;
use tfhe::core_crypto::prelude::*;
use tfhe_ntt::native64::Plan32;

use crate::error::{FheError, Result};
use crate::glwe_batch::{CoefficientSlot, GlweBatch};
use crate::lwe_batch::LweBatch;
use crate::matvec_layout::PackedMatVecLayout;
use crate::ntt::{self, MAX_ACCUMULATED_L1_NORM, NttAccumulator, NttGlwe, NttPolynomial};
use crate::ntt_glwe_batch::NttGlweBatch;
use crate::parameter_set::ParameterSetId;
use crate::params::{FheParameters, check_parameter_set};
use crate::sample_extraction::extraction_list;

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
    /// and time (docs/embed.md gives the figure for a MiniLM prompt).
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
