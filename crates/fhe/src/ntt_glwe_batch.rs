//! GLWE ciphertexts transformed once to the NTT domain, so that any number of plaintext
//! products can reuse the transform.

use rayon::prelude::*;

use crate::error::{FheError, Result};
use crate::glwe_batch::GlweBatch;
use crate::ntt::{self, NttGlwe};
use crate::parameter_set::ParameterSetId;

/// GLWE ciphertexts transformed once to the NTT domain, the input of [`PackedMatrix::apply`](crate::PackedMatrix::apply).
pub struct NttGlweBatch {
    pub(crate) parameter_set: ParameterSetId,
    pub(crate) glwes: Vec<NttGlwe>,
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
