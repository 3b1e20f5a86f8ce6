//! GLWE ciphertext batches: seeded, as a client uploads them, and expanded, ready for
//! polynomial products; their wire format, and gathering ciphertexts from several batches.

use serde::{Deserialize, Serialize};
use tfhe::core_crypto::prelude::*;
use tfhe::named::Named;
use tfhe_versionable::{Versionize, VersionsDispatch};

use crate::error::{FheError, Result};
use crate::parameter_set::ParameterSetId;
use crate::params::{FheParameters, check_parameter_set};
use crate::wire::{self, HEADER_ALLOWANCE, expect_dimension};

/// A coefficient of one GLWE ciphertext of a batch.
///
/// ```
/// use fhe::CoefficientSlot;
/// let slot = CoefficientSlot { glwe: 0, coefficient: 2047 };
/// assert_eq!(slot.coefficient, 2047);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CoefficientSlot {
    /// Index of the GLWE ciphertext in its batch.
    pub glwe: usize,
    /// Index of the coefficient in that ciphertext's polynomials.
    pub coefficient: usize,
}

/// GLWE ciphertexts in seeded form, as a client uploads them: only the bodies and the seed of the
/// masks travel (16 KiB per ciphertext for the 2_2 set, half the expanded size).
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(SeededGlweBatchVersions)]
pub struct SeededGlweBatch {
    pub(crate) parameter_set: ParameterSetId,
    pub(crate) list: SeededGlweCiphertextListOwned<u64>,
}

/// Version dispatch of [`SeededGlweBatch`].
#[derive(VersionsDispatch)]
pub enum SeededGlweBatchVersions {
    /// First version.
    V0(SeededGlweBatch),
}

impl Named for SeededGlweBatch {
    const NAME: &'static str = "dlrm_he::fhe::SeededGlweBatch";
}

impl SeededGlweBatch {
    /// Number of GLWE ciphertexts.
    ///
    /// ```
    /// use fhe::{ClientKey, Encoding, KeySeed, ParameterSetId, ScaleLog};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let encoding = Encoding::new(ScaleLog(40)).unwrap();
    /// let batch = key.encrypt_glwe_batch(&vec![1; 2 * 2048], encoding).unwrap();
    /// assert_eq!(batch.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.list.glwe_ciphertext_count().0
    }

    /// Whether the batch holds no ciphertext.
    ///
    /// ```
    /// use fhe::{ClientKey, Encoding, KeySeed, ParameterSetId, ScaleLog};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let encoding = Encoding::new(ScaleLog(40)).unwrap();
    /// assert!(key.encrypt_glwe_batch(&[], encoding).unwrap().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The parameter set of the ciphertexts.
    ///
    /// ```
    /// use fhe::{ClientKey, Encoding, KeySeed, ParameterSetId, ScaleLog};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let batch = key.encrypt_glwe_batch(&[], Encoding::new(ScaleLog(40)).unwrap()).unwrap();
    /// assert_eq!(batch.parameter_set(), ParameterSetId::default());
    /// ```
    pub fn parameter_set(&self) -> ParameterSetId {
        self.parameter_set
    }

    /// Expands the masks from their seed.
    ///
    /// ```
    /// use fhe::{ClientKey, Encoding, KeySeed, ParameterSetId, ScaleLog};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let encoding = Encoding::new(ScaleLog(40)).unwrap();
    /// let batch = key.encrypt_glwe_batch(&vec![3; 2048], encoding).unwrap();
    /// let expanded = batch.decompress();
    /// assert_eq!(key.decrypt_glwe_batch(&expanded, encoding).unwrap(), vec![3; 2048]);
    /// ```
    pub fn decompress(&self) -> GlweBatch {
        GlweBatch {
            parameter_set: self.parameter_set,
            list: self.list.clone().decompress_into_glwe_ciphertext_list(),
        }
    }

    /// Serialises the batch in the versioned wire format.
    ///
    /// ```
    /// use fhe::{ClientKey, Encoding, KeySeed, ParameterSetId, ScaleLog, SeededGlweBatch};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let batch = key.encrypt_glwe_batch(&vec![1; 2048], Encoding::new(ScaleLog(40)).unwrap()).unwrap();
    /// let bytes = batch.to_bytes().unwrap();
    /// assert!(bytes.len() < 17 * 1024);
    /// let back = SeededGlweBatch::from_bytes(&bytes, ParameterSetId::default(), 1).unwrap();
    /// assert_eq!(back.len(), 1);
    /// ```
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let params = self.parameter_set.parameters();
        wire::encode(
            self,
            "seeded GLWE batch",
            Self::size_limit(params, self.len()),
        )
    }

    /// Reads a batch of at most `max_count` ciphertexts of parameter set `expected`.
    ///
    /// ```
    /// use fhe::{ClientKey, Encoding, FheError, KeySeed, ParameterSetId, ScaleLog, SeededGlweBatch};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let batch = key.encrypt_glwe_batch(&vec![1; 4096], Encoding::new(ScaleLog(40)).unwrap()).unwrap();
    /// let bytes = batch.to_bytes().unwrap();
    /// assert!(SeededGlweBatch::from_bytes(&bytes, ParameterSetId::default(), 1).is_err());
    /// let truncated = &bytes[..bytes.len() - 1];
    /// assert!(matches!(
    ///     SeededGlweBatch::from_bytes(truncated, ParameterSetId::default(), 2),
    ///     Err(FheError::Decode { .. })
    /// ));
    /// ```
    pub fn from_bytes(bytes: &[u8], expected: ParameterSetId, max_count: usize) -> Result<Self> {
        let params = expected.parameters();
        let batch: SeededGlweBatch = wire::decode(
            bytes,
            "seeded GLWE batch",
            Self::size_limit(params, max_count),
        )?;
        check_parameter_set(expected, batch.parameter_set)?;
        let what = "seeded GLWE batch";
        let list = &batch.list;
        expect_dimension(what, "GLWE size", params.glwe_size().0, list.glwe_size().0)?;
        expect_dimension(
            what,
            "polynomial size",
            params.polynomial_size().0,
            list.polynomial_size().0,
        )?;
        if list.ciphertext_modulus() != params.ciphertext_modulus() {
            return Err(FheError::Malformed {
                what,
                reason: "ciphertext modulus differs from the parameter set".into(),
            });
        }
        let words = list.as_ref().len();
        let polynomial_size = params.polynomial_size().0;
        if !words.is_multiple_of(polynomial_size) || words / polynomial_size > max_count {
            return Err(FheError::Malformed {
                what,
                reason: format!(
                    "{words} words is not a whole number of at most {max_count} ciphertexts"
                ),
            });
        }
        Ok(batch)
    }

    fn size_limit(params: FheParameters, count: usize) -> u64 {
        (count * params.polynomial_size().0) as u64 * 8 + HEADER_ALLOWANCE
    }
}

/// GLWE ciphertexts with their masks expanded, ready for polynomial products.
#[derive(Clone)]
pub struct GlweBatch {
    pub(crate) parameter_set: ParameterSetId,
    pub(crate) list: GlweCiphertextListOwned<u64>,
}

impl GlweBatch {
    /// Number of GLWE ciphertexts.
    ///
    /// ```
    /// use fhe::{ClientKey, Encoding, KeySeed, ParameterSetId, ScaleLog};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let batch = key.encrypt_glwe_batch(&vec![0; 2048], Encoding::new(ScaleLog(40)).unwrap()).unwrap();
    /// assert_eq!(batch.decompress().len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.list.glwe_ciphertext_count().0
    }

    /// Whether the batch holds no ciphertext.
    ///
    /// ```
    /// use fhe::{ClientKey, Encoding, KeySeed, ParameterSetId, ScaleLog};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let batch = key.encrypt_glwe_batch(&[], Encoding::new(ScaleLog(40)).unwrap()).unwrap();
    /// assert!(batch.decompress().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The parameter set of the ciphertexts.
    ///
    /// ```
    /// use fhe::{ClientKey, Encoding, KeySeed, ParameterSetId, ScaleLog};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let batch = key.encrypt_glwe_batch(&[], Encoding::new(ScaleLog(40)).unwrap()).unwrap();
    /// assert_eq!(batch.decompress().parameter_set(), ParameterSetId::default());
    /// ```
    pub fn parameter_set(&self) -> ParameterSetId {
        self.parameter_set
    }

    /// The ciphertexts `range` of each part, in order, as one batch (one allocation, one copy).
    ///
    /// ```
    /// use fhe::{ClientKey, Encoding, GlweBatch, KeySeed, ParameterSetId, ScaleLog};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let encoding = Encoding::new(ScaleLog(40)).unwrap();
    /// let values: Vec<i64> = (0..3 * 2048).map(|i| i / 2048).collect();
    /// let batch = key.encrypt_glwe_batch(&values, encoding).unwrap().decompress();
    /// let gathered = GlweBatch::gather(&[(&batch, 2..3), (&batch, 0..1)]).unwrap();
    /// let decrypted = key.decrypt_glwe_batch(&gathered, encoding).unwrap();
    /// assert_eq!((decrypted[0], decrypted[2048]), (2, 0));
    /// assert!(GlweBatch::gather(&[(&batch, 2..4)]).is_err());
    /// ```
    pub fn gather(parts: &[(&GlweBatch, std::ops::Range<usize>)]) -> Result<GlweBatch> {
        let (first, _) = parts.first().ok_or_else(|| {
            FheError::InvalidArgument("gathering ciphertexts from no batch".into())
        })?;
        let parameter_set = first.parameter_set;
        let params = parameter_set.parameters();
        let glwe_words = params.glwe_polynomial_count() * params.polynomial_size().0;
        let mut total = 0;
        for (batch, range) in parts {
            check_parameter_set(parameter_set, batch.parameter_set)?;
            if range.start > range.end || range.end > batch.len() {
                return Err(FheError::OutOfRange {
                    what: "end of a gathered range",
                    value: range.end as i128,
                    min: range.start as i128,
                    max: batch.len() as i128,
                });
            }
            total += range.len();
        }
        let mut words = Vec::with_capacity(total * glwe_words);
        for (batch, range) in parts {
            words.extend_from_slice(
                &batch.list.as_ref()[range.start * glwe_words..range.end * glwe_words],
            );
        }
        Ok(GlweBatch {
            parameter_set,
            list: GlweCiphertextList::from_container(
                words,
                params.glwe_size(),
                params.tfhe_polynomial_size(),
                params.ciphertext_modulus(),
            ),
        })
    }
}
