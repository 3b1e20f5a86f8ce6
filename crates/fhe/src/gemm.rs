//! Dense layers on LWE ciphertexts: `out = W x + b` with a plaintext integer matrix `W`, computed
//! as a wrapping-`u64` GEMM over the ciphertext words (masks and bodies alike, since the
//! decryption is linear).

use rayon::prelude::*;

use crate::encoding::Encoding;
use crate::error::{FheError, Result};
use crate::lwe_batch::LweBatch;

/// Ciphertext words processed together: a block of every input ciphertext stays in cache while
/// all output rows are accumulated over it.
const WORD_BLOCK: usize = 64;

/// A dense layer with signed integer weights (row-major `outputs x inputs`) and an integer bias
/// added to the bodies at the input encoding's scale.
///
/// ```
/// use fhe::{ClientKey, Encoding, KeySeed, LweDenseLayer, ParameterSetId, ScaleLog};
/// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
/// let encoding = Encoding::new(ScaleLog(40)).unwrap();
/// let layer = LweDenseLayer::new(2, 3, vec![1, 2, 3, -1, 0, 4], vec![10, -10], encoding).unwrap();
/// let x = key.encrypt_lwe_batch(&[5, 6, 7], encoding).unwrap();
/// let y = layer.apply(&x).unwrap();
/// assert_eq!(key.decrypt_lwe_batch(&y, encoding).unwrap(), vec![5 + 12 + 21 + 10, -5 + 28 - 10]);
/// ```
pub struct LweDenseLayer {
    outputs: usize,
    inputs: usize,
    weights: Vec<i64>,
    encoded_bias: Vec<u64>,
}

impl LweDenseLayer {
    /// A layer of `outputs x inputs` weights (row-major) and `outputs` biases, the biases encoded
    /// with `encoding` (the scale of the inputs).
    ///
    /// ```
    /// use fhe::{Encoding, LweDenseLayer, ScaleLog};
    /// let encoding = Encoding::new(ScaleLog(40)).unwrap();
    /// assert!(LweDenseLayer::new(2, 2, vec![1, 2, 3], vec![0, 0], encoding).is_err());
    /// assert!(LweDenseLayer::new(1, 1, vec![1], vec![1 << 30], encoding).is_err());
    /// ```
    pub fn new(
        outputs: usize,
        inputs: usize,
        weights: Vec<i64>,
        bias: Vec<i64>,
        encoding: Encoding,
    ) -> Result<Self> {
        if weights.len() != outputs * inputs {
            return Err(FheError::LengthMismatch {
                what: "dense-layer weights",
                expected: outputs * inputs,
                found: weights.len(),
            });
        }
        if bias.len() != outputs {
            return Err(FheError::LengthMismatch {
                what: "dense-layer bias",
                expected: outputs,
                found: bias.len(),
            });
        }
        let encoded_bias = bias
            .iter()
            .map(|&b| encoding.encode(b))
            .collect::<Result<Vec<u64>>>()?;
        Ok(LweDenseLayer {
            outputs,
            inputs,
            weights,
            encoded_bias,
        })
    }

    /// Number of outputs.
    ///
    /// ```
    /// use fhe::{Encoding, LweDenseLayer, ScaleLog};
    /// let encoding = Encoding::new(ScaleLog(40)).unwrap();
    /// assert_eq!(LweDenseLayer::new(2, 1, vec![1, 1], vec![0, 0], encoding).unwrap().outputs(), 2);
    /// ```
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// Number of inputs.
    ///
    /// ```
    /// use fhe::{Encoding, LweDenseLayer, ScaleLog};
    /// let encoding = Encoding::new(ScaleLog(40)).unwrap();
    /// assert_eq!(LweDenseLayer::new(2, 1, vec![1, 1], vec![0, 0], encoding).unwrap().inputs(), 1);
    /// ```
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Applies the layer. Each output's noise is the inputs' noise weighted by that row of `W`
    /// (its L2 norm for independent noises), so keep weights small.
    ///
    /// ```
    /// use fhe::{ClientKey, Encoding, KeySeed, LweDenseLayer, ParameterSetId, ScaleLog};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let encoding = Encoding::new(ScaleLog(40)).unwrap();
    /// let layer = LweDenseLayer::new(1, 2, vec![1, 1], vec![0], encoding).unwrap();
    /// let wrong_width = key.encrypt_lwe_batch(&[1, 2, 3], encoding).unwrap();
    /// assert!(layer.apply(&wrong_width).is_err());
    /// ```
    pub fn apply(&self, input: &LweBatch) -> Result<LweBatch> {
        if input.len() != self.inputs {
            return Err(FheError::LengthMismatch {
                what: "dense-layer input ciphertexts",
                expected: self.inputs,
                found: input.len(),
            });
        }
        let params = input.parameter_set.parameters();
        let lwe_words = params.big_lwe_dimension().ciphertext_words();
        let in_words = input.words();
        let word_blocks = lwe_words.div_ceil(WORD_BLOCK);
        // Each task owns one block of words of every output; the blocks are scattered into the
        // row-major result afterwards (a cheap copy next to the multiply-adds).
        let blocks: Vec<Vec<u64>> = (0..word_blocks)
            .into_par_iter()
            .map(|block| {
                let start = block * WORD_BLOCK;
                let width = WORD_BLOCK.min(lwe_words - start);
                let mut out = vec![0u64; self.outputs * width];
                accumulate_block(
                    &mut out,
                    &self.weights,
                    self.inputs,
                    in_words,
                    lwe_words,
                    start,
                );
                out
            })
            .collect();
        let mut words = vec![0u64; self.outputs * lwe_words];
        for (block, values) in blocks.iter().enumerate() {
            let start = block * WORD_BLOCK;
            let width = WORD_BLOCK.min(lwe_words - start);
            for (out, values) in words
                .chunks_exact_mut(lwe_words)
                .zip(values.chunks_exact(width))
            {
                out[start..start + width].copy_from_slice(values);
            }
        }
        for (out, &bias) in words.chunks_exact_mut(lwe_words).zip(&self.encoded_bias) {
            let body = &mut out[lwe_words - 1];
            *body = body.wrapping_add(bias);
        }
        Ok(LweBatch::from_words(input.parameter_set, words))
    }
}

/// Accumulates `out[o][..] = sum_j W[o][j] * x_j[start..start + width]` for every output row
/// `o`, where `width = out.len() / outputs`. On AVX-512 machines the loop is compiled with the
/// 64-bit vector multiply, faster than the default x86-64 code (docs/fhe.md).
fn accumulate_block(
    out: &mut [u64],
    weights: &[i64],
    inputs: usize,
    in_words: &[u64],
    lwe_words: usize,
    start: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512dq")
    {
        // SAFETY: the CPU supports the features the function is compiled for (checked above).
        unsafe { accumulate_block_avx512(out, weights, inputs, in_words, lwe_words, start) };
        return;
    }
    accumulate_block_body(out, weights, inputs, in_words, lwe_words, start);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
fn accumulate_block_avx512(
    out: &mut [u64],
    weights: &[i64],
    inputs: usize,
    in_words: &[u64],
    lwe_words: usize,
    start: usize,
) {
    accumulate_block_body(out, weights, inputs, in_words, lwe_words, start);
}

#[inline(always)]
fn accumulate_block_body(
    out: &mut [u64],
    weights: &[i64],
    inputs: usize,
    in_words: &[u64],
    lwe_words: usize,
    start: usize,
) {
    let outputs = weights.len() / inputs.max(1);
    let width = out.len() / outputs.max(1);
    for (row, out) in weights
        .chunks_exact(inputs.max(1))
        .zip(out.chunks_exact_mut(width))
    {
        for (j, &w) in row.iter().enumerate() {
            if w != 0 {
                let x = &in_words[j * lwe_words + start..j * lwe_words + start + width];
                let w = w as u64;
                for (a, &x) in out.iter_mut().zip(x) {
                    *a = a.wrapping_add(w.wrapping_mul(x));
                }
            }
        }
    }
}
