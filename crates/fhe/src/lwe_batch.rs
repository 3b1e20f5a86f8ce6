//! LWE ciphertext batches under the big key, and their wire format.

use serde::{Deserialize, Serialize};
use tfhe::core_crypto::prelude::*;
use tfhe::named::Named;
use tfhe_versionable::{Versionize, VersionsDispatch};

use crate::encoding::Encoding;
use crate::error::{FheError, Result};
use crate::parameter_set::ParameterSetId;
use crate::params::{FheParameters, check_parameter_set};
use crate::wire::{self, HEADER_ALLOWANCE, expect_dimension};

/// LWE ciphertexts under the big key (dimension `k * N`), stored contiguously: the operand of
/// dense layers and bootstraps and the form in which results travel back to the client.
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(LweBatchVersions)]
pub struct LweBatch {
    pub(crate) parameter_set: ParameterSetId,
    pub(crate) list: LweCiphertextListOwned<u64>,
}

/// Version dispatch of [`LweBatch`].
#[derive(VersionsDispatch)]
pub enum LweBatchVersions {
    /// First version.
    V0(LweBatch),
}

impl Named for LweBatch {
    const NAME: &'static str = "dlrm_he::fhe::LweBatch";
}

impl LweBatch {
    /// Number of ciphertexts.
    ///
    /// ```
    /// use fhe::{ClientKey, Encoding, KeySeed, ParameterSetId, ScaleLog};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let lwes = key.encrypt_lwe_batch(&[1, 2, 3], Encoding::new(ScaleLog(40)).unwrap()).unwrap();
    /// assert_eq!(lwes.len(), 3);
    /// ```
    pub fn len(&self) -> usize {
        self.list.lwe_ciphertext_count().0
    }

    /// Whether the batch holds no ciphertext.
    ///
    /// ```
    /// use fhe::{ClientKey, Encoding, KeySeed, ParameterSetId, ScaleLog};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// assert!(key.encrypt_lwe_batch(&[], Encoding::new(ScaleLog(40)).unwrap()).unwrap().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The parameter set of the ciphertexts.
    ///
    /// ```
    /// use fhe::{ClientKey, Encoding, KeySeed, ParameterSetId, ScaleLog};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let lwes = key.encrypt_lwe_batch(&[1], Encoding::new(ScaleLog(40)).unwrap()).unwrap();
    /// assert_eq!(lwes.parameter_set(), ParameterSetId::default());
    /// ```
    pub fn parameter_set(&self) -> ParameterSetId {
        self.parameter_set
    }

    /// Appends the ciphertexts of `other` (for example the outputs of two lookups that a layer
    /// consumes together).
    ///
    /// ```
    /// use fhe::{ClientKey, Encoding, KeySeed, ParameterSetId, ScaleLog};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let encoding = Encoding::new(ScaleLog(40)).unwrap();
    /// let mut a = key.encrypt_lwe_batch(&[1, 2], encoding).unwrap();
    /// a.append(&key.encrypt_lwe_batch(&[3], encoding).unwrap()).unwrap();
    /// assert_eq!(key.decrypt_lwe_batch(&a, encoding).unwrap(), vec![1, 2, 3]);
    /// ```
    pub fn append(&mut self, other: &LweBatch) -> Result<()> {
        check_parameter_set(self.parameter_set, other.parameter_set)?;
        let lwe_size = self.list.lwe_size();
        let mut words = Vec::with_capacity(self.list.as_ref().len() + other.list.as_ref().len());
        words.extend_from_slice(self.list.as_ref());
        words.extend_from_slice(other.list.as_ref());
        self.list = LweCiphertextList::from_container(
            words,
            lwe_size,
            self.parameter_set.parameters().ciphertext_modulus(),
        );
        Ok(())
    }

    /// Joins `batches` in order into one (for example one layer's ciphertexts of several
    /// requests, bootstrapped in one parallel batch).
    ///
    /// ```
    /// use fhe::{ClientKey, Encoding, KeySeed, LweBatch, ParameterSetId, ScaleLog};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let encoding = Encoding::new(ScaleLog(40)).unwrap();
    /// let a = key.encrypt_lwe_batch(&[1, 2], encoding).unwrap();
    /// let b = key.encrypt_lwe_batch(&[3], encoding).unwrap();
    /// let joined = LweBatch::concat(&[a, b]).unwrap();
    /// assert_eq!(key.decrypt_lwe_batch(&joined, encoding).unwrap(), vec![1, 2, 3]);
    /// assert!(LweBatch::concat(&[]).is_err());
    /// ```
    pub fn concat(batches: &[LweBatch]) -> Result<LweBatch> {
        let first = batches.first().ok_or(FheError::LengthMismatch {
            what: "LWE batches joined",
            expected: 1,
            found: 0,
        })?;
        let mut words = Vec::with_capacity(batches.iter().map(|b| b.words().len()).sum());
        for batch in batches {
            check_parameter_set(first.parameter_set, batch.parameter_set)?;
            words.extend_from_slice(batch.words());
        }
        Ok(LweBatch::from_words(first.parameter_set, words))
    }

    /// Splits the batch into consecutive batches of `size` ciphertexts (the inverse of
    /// [`LweBatch::concat`] for equal parts); `size` must divide the length.
    ///
    /// ```
    /// use fhe::{ClientKey, Encoding, KeySeed, ParameterSetId, ScaleLog};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let encoding = Encoding::new(ScaleLog(40)).unwrap();
    /// let batch = key.encrypt_lwe_batch(&[1, 2, 3, 4], encoding).unwrap();
    /// let parts = batch.split_equal(2).unwrap();
    /// assert_eq!(key.decrypt_lwe_batch(&parts[1], encoding).unwrap(), vec![3, 4]);
    /// assert!(batch.split_equal(3).is_err());
    /// ```
    pub fn split_equal(&self, size: usize) -> Result<Vec<LweBatch>> {
        if size == 0 || !self.len().is_multiple_of(size) {
            return Err(FheError::LengthMismatch {
                what: "LWE batch split in equal parts",
                expected: size.max(1) * self.len().div_ceil(size.max(1)),
                found: self.len(),
            });
        }
        let lwe_words = self.list.lwe_size().0;
        Ok(self
            .words()
            .chunks_exact(size * lwe_words)
            .map(|part| LweBatch::from_words(self.parameter_set, part.to_vec()))
            .collect())
    }

    /// Adds ciphertext `i` of `other` to ciphertext `i` (wrapping, masks and bodies alike): a
    /// share computed once added to each of many per-candidate shares, for example.
    ///
    /// ```
    /// use fhe::{ClientKey, Encoding, KeySeed, ParameterSetId, ScaleLog};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let encoding = Encoding::new(ScaleLog(40)).unwrap();
    /// let mut a = key.encrypt_lwe_batch(&[1, 2], encoding).unwrap();
    /// a.add(&key.encrypt_lwe_batch(&[10, -5], encoding).unwrap()).unwrap();
    /// assert_eq!(key.decrypt_lwe_batch(&a, encoding).unwrap(), vec![11, -3]);
    /// assert!(a.add(&key.encrypt_lwe_batch(&[1], encoding).unwrap()).is_err());
    /// ```
    pub fn add(&mut self, other: &LweBatch) -> Result<()> {
        check_parameter_set(self.parameter_set, other.parameter_set)?;
        if other.len() != self.len() {
            return Err(FheError::LengthMismatch {
                what: "LWE ciphertexts added to a batch",
                expected: self.len(),
                found: other.len(),
            });
        }
        for (word, &o) in self.list.as_mut().iter_mut().zip(other.list.as_ref()) {
            *word = word.wrapping_add(o);
        }
        Ok(())
    }

    /// Adds the plaintext `values[i]` (encoded with `encoding`, reduced into its range) to
    /// ciphertext `i`: a bias, for example, after a product that has none.
    ///
    /// ```
    /// use fhe::{ClientKey, Encoding, KeySeed, ParameterSetId, ScaleLog};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let encoding = Encoding::new(ScaleLog(40)).unwrap();
    /// let mut a = key.encrypt_lwe_batch(&[1, 2], encoding).unwrap();
    /// a.add_plaintexts(&[10, -5], encoding).unwrap();
    /// assert_eq!(key.decrypt_lwe_batch(&a, encoding).unwrap(), vec![11, -3]);
    /// assert!(a.add_plaintexts(&[1], encoding).is_err());
    /// ```
    pub fn add_plaintexts(&mut self, values: &[i64], encoding: Encoding) -> Result<()> {
        if values.len() != self.len() {
            return Err(FheError::LengthMismatch {
                what: "plaintexts added to an LWE batch",
                expected: self.len(),
                found: values.len(),
            });
        }
        let lwe_words = self.list.lwe_size().0;
        for (words, &value) in self.list.as_mut().chunks_exact_mut(lwe_words).zip(values) {
            let body = &mut words[lwe_words - 1];
            *body = body.wrapping_add(encoding.encode(encoding.reduce(value))?);
        }
        Ok(())
    }

    /// Serialises the batch in the versioned wire format (16 KiB per ciphertext for 2_2).
    ///
    /// ```
    /// use fhe::{ClientKey, Encoding, KeySeed, LweBatch, ParameterSetId, ScaleLog};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let encoding = Encoding::new(ScaleLog(40)).unwrap();
    /// let bytes = key.encrypt_lwe_batch(&[-4], encoding).unwrap().to_bytes().unwrap();
    /// let back = LweBatch::from_bytes(&bytes, ParameterSetId::default(), 1).unwrap();
    /// assert_eq!(key.decrypt_lwe_batch(&back, encoding).unwrap(), vec![-4]);
    /// ```
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let params = self.parameter_set.parameters();
        wire::encode(self, "LWE batch", Self::size_limit(params, self.len()))
    }

    /// Reads a batch of at most `max_count` big-key ciphertexts of parameter set `expected`.
    ///
    /// ```
    /// use fhe::{LweBatch, ParameterSetId};
    /// assert!(LweBatch::from_bytes(&[1, 2, 3], ParameterSetId::default(), 10).is_err());
    /// ```
    pub fn from_bytes(bytes: &[u8], expected: ParameterSetId, max_count: usize) -> Result<Self> {
        let params = expected.parameters();
        let batch: LweBatch =
            wire::decode(bytes, "LWE batch", Self::size_limit(params, max_count))?;
        check_parameter_set(expected, batch.parameter_set)?;
        let what = "LWE batch";
        let lwe_words = params.big_lwe_dimension().ciphertext_words();
        expect_dimension(what, "LWE size", lwe_words, batch.list.lwe_size().0)?;
        let words = batch.list.as_ref().len();
        if !words.is_multiple_of(lwe_words) || words / lwe_words > max_count {
            return Err(FheError::Malformed {
                what,
                reason: format!(
                    "{words} words is not a whole number of at most {max_count} ciphertexts"
                ),
            });
        }
        if batch.list.ciphertext_modulus() != params.ciphertext_modulus() {
            return Err(FheError::Malformed {
                what,
                reason: "ciphertext modulus differs from the parameter set".into(),
            });
        }
        Ok(batch)
    }

    fn size_limit(params: FheParameters, count: usize) -> u64 {
        (count * params.big_lwe_dimension().ciphertext_words()) as u64 * 8 + HEADER_ALLOWANCE
    }

    /// Raw words of the ciphertexts, `len() * (k * N + 1)` of them.
    pub(crate) fn words(&self) -> &[u64] {
        self.list.as_ref()
    }

    pub(crate) fn from_words(parameter_set: ParameterSetId, words: Vec<u64>) -> Self {
        let params = parameter_set.parameters();
        LweBatch {
            parameter_set,
            list: LweCiphertextList::from_container(
                words,
                params.tfhe_big_lwe_dimension().to_lwe_size(),
                params.ciphertext_modulus(),
            ),
        }
    }
}
