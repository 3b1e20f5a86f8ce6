//! Ciphertext containers: seeded GLWE batches (client uploads), GLWE batches (server side) and
//! LWE batches under the big key (lookup outputs, dense-layer and bootstrap inputs/outputs), with
//! the client-side encryption and decryption.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tfhe::core_crypto::prelude::*;
use tfhe::named::Named;
use tfhe_versionable::{Versionize, VersionsDispatch};

use crate::encoding::Encoding;
use crate::error::{FheError, Result};
use crate::keys::{ClientKey, check_parameter_set};
use crate::params::{FheParameters, ParameterSetId};
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
    parameter_set: ParameterSetId,
    list: SeededGlweCiphertextListOwned<u64>,
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

    /// Expands the masks from their seed (about 0.16 ms per ciphertext).
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

    /// Sample extraction: turns the chosen coefficients into LWE ciphertexts under the big key,
    /// in the order of `slots` (so the order of `slots` is the output layout). About 1.2 us per
    /// coefficient.
    ///
    /// ```
    /// use fhe::{ClientKey, CoefficientSlot, Encoding, KeySeed, ParameterSetId, ScaleLog};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let encoding = Encoding::new(ScaleLog(40)).unwrap();
    /// let values: Vec<i64> = (0..2048).collect();
    /// let batch = key.encrypt_glwe_batch(&values, encoding).unwrap().decompress();
    /// let slots = [CoefficientSlot { glwe: 0, coefficient: 9 }, CoefficientSlot { glwe: 0, coefficient: 2 }];
    /// let lwes = batch.extract(&slots).unwrap();
    /// assert_eq!(key.decrypt_lwe_batch(&lwes, encoding).unwrap(), vec![9, 2]);
    /// ```
    pub fn extract(&self, slots: &[CoefficientSlot]) -> Result<LweBatch> {
        let params = self.parameter_set.parameters();
        let (mut list, lwe_size) = extraction_list(params, slots, self.len())?;
        list.as_mut()
            .par_chunks_mut(lwe_size.0)
            .zip(slots.par_iter())
            .for_each(|(words, slot)| {
                let mut lwe = LweCiphertext::from_container(words, params.ciphertext_modulus());
                extract_lwe_sample_from_glwe_ciphertext(
                    &self.list.get(slot.glwe),
                    &mut lwe,
                    MonomialDegree(slot.coefficient),
                );
            });
        Ok(LweBatch {
            parameter_set: self.parameter_set,
            list,
        })
    }
}

/// Checks that every slot names one of `glwe_count` ciphertexts and a coefficient of the
/// polynomial, and returns the zeroed LWE list the extracted samples go into, with its LWE size.
pub(crate) fn extraction_list(
    params: FheParameters,
    slots: &[CoefficientSlot],
    glwe_count: usize,
) -> Result<(LweCiphertextListOwned<u64>, LweSize)> {
    let polynomial_size = params.polynomial_size().0;
    let index_below = |what, index: usize, count: usize| {
        if index < count {
            Ok(())
        } else {
            Err(FheError::OutOfRange {
                what,
                value: index as i128,
                min: 0,
                max: count as i128 - 1,
            })
        }
    };
    for slot in slots {
        index_below("GLWE index of a slot", slot.glwe, glwe_count)?;
        index_below(
            "coefficient index of a slot",
            slot.coefficient,
            polynomial_size,
        )?;
    }
    let lwe_size = params.tfhe_big_lwe_dimension().to_lwe_size();
    let list = LweCiphertextList::new(
        0u64,
        lwe_size,
        LweCiphertextCount(slots.len()),
        params.ciphertext_modulus(),
    );
    Ok((list, lwe_size))
}

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

/// Client-side encryption and decryption.
impl ClientKey {
    /// Encrypts `coefficients` (a multiple of `N` of them, `N` per ciphertext) as seeded GLWE
    /// ciphertexts under the GLWE key, each coefficient encoded with `encoding`.
    ///
    /// ```
    /// use fhe::{ClientKey, Encoding, KeySeed, ParameterSetId, ScaleLog};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let encoding = Encoding::new(ScaleLog(40)).unwrap();
    /// assert!(key.encrypt_glwe_batch(&[1, 2, 3], encoding).is_err()); // not a multiple of N
    /// let batch = key.encrypt_glwe_batch(&vec![5; 2048], encoding).unwrap();
    /// assert_eq!(batch.len(), 1);
    /// ```
    pub fn encrypt_glwe_batch(
        &self,
        coefficients: &[i64],
        encoding: Encoding,
    ) -> Result<SeededGlweBatch> {
        let params = self.parameters();
        let polynomial_size = params.polynomial_size().0;
        if !coefficients.len().is_multiple_of(polynomial_size) {
            return Err(FheError::LengthMismatch {
                what: "GLWE coefficients (a multiple of the polynomial size)",
                expected: coefficients.len().next_multiple_of(polynomial_size),
                found: coefficients.len(),
            });
        }
        let encoded = coefficients
            .iter()
            .map(|&value| encoding.encode(value))
            .collect::<Result<Vec<u64>>>()?;
        let mut seeder = new_seeder();
        let mut list = SeededGlweCiphertextList::new(
            0u64,
            params.glwe_size(),
            params.tfhe_polynomial_size(),
            GlweCiphertextCount(coefficients.len() / polynomial_size),
            seeder.seed().into(),
            params.ciphertext_modulus(),
        );
        encrypt_seeded_glwe_ciphertext_list(
            self.glwe_key(),
            &mut list,
            &PlaintextList::from_container(encoded),
            params.glwe_noise(),
            seeder.as_mut(),
        );
        Ok(SeededGlweBatch {
            parameter_set: params.id(),
            list,
        })
    }

    /// Decrypts every coefficient of every ciphertext of `batch` with `encoding`.
    ///
    /// ```
    /// use fhe::{ClientKey, Encoding, KeySeed, ParameterSetId, ScaleLog};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let encoding = Encoding::new(ScaleLog(40)).unwrap();
    /// let batch = key.encrypt_glwe_batch(&vec![-2; 2048], encoding).unwrap().decompress();
    /// assert_eq!(key.decrypt_glwe_batch(&batch, encoding).unwrap(), vec![-2; 2048]);
    /// ```
    pub fn decrypt_glwe_batch(&self, batch: &GlweBatch, encoding: Encoding) -> Result<Vec<i64>> {
        let params = self.parameters();
        check_parameter_set(params.id(), batch.parameter_set)?;
        let mut phases = PlaintextList::new(
            0u64,
            PlaintextCount(batch.len() * params.polynomial_size().0),
        );
        decrypt_glwe_ciphertext_list(self.glwe_key(), &batch.list, &mut phases);
        Ok(phases.iter().map(|p| encoding.decode(*p.0)).collect())
    }

    /// Encrypts each value as an LWE ciphertext under the big key.
    ///
    /// ```
    /// use fhe::{ClientKey, Encoding, KeySeed, ParameterSetId, ScaleLog};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let encoding = Encoding::new(ScaleLog(50)).unwrap();
    /// let lwes = key.encrypt_lwe_batch(&[7, -7], encoding).unwrap();
    /// assert_eq!(key.decrypt_lwe_batch(&lwes, encoding).unwrap(), vec![7, -7]);
    /// ```
    pub fn encrypt_lwe_batch(&self, values: &[i64], encoding: Encoding) -> Result<LweBatch> {
        let params = self.parameters();
        let encoded = values
            .iter()
            .map(|&value| encoding.encode(value))
            .collect::<Result<Vec<u64>>>()?;
        let mut list = LweCiphertextList::new(
            0u64,
            params.tfhe_big_lwe_dimension().to_lwe_size(),
            LweCiphertextCount(values.len()),
            params.ciphertext_modulus(),
        );
        if values.is_empty() {
            // The generator cannot fork zero streams; an empty batch needs no randomness.
            return Ok(LweBatch {
                parameter_set: params.id(),
                list,
            });
        }
        let mut seeder = new_seeder();
        let mut generator = EncryptionRandomGenerator::<DefaultRandomGenerator>::new(
            seeder.seed(),
            seeder.as_mut(),
        );
        encrypt_lwe_ciphertext_list(
            &self.glwe_key().as_lwe_secret_key(),
            &mut list,
            &PlaintextList::from_container(encoded),
            params.glwe_noise(),
            &mut generator,
        );
        Ok(LweBatch {
            parameter_set: params.id(),
            list,
        })
    }

    /// Decrypts big-key LWE ciphertexts and rounds with `encoding`.
    ///
    /// ```
    /// use fhe::{ClientKey, Encoding, KeySeed, ParameterSetId, ScaleLog};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let encoding = Encoding::new(ScaleLog(30)).unwrap();
    /// let lwes = key.encrypt_lwe_batch(&[123456], encoding).unwrap();
    /// assert_eq!(key.decrypt_lwe_batch(&lwes, encoding).unwrap(), vec![123456]);
    /// ```
    pub fn decrypt_lwe_batch(&self, batch: &LweBatch, encoding: Encoding) -> Result<Vec<i64>> {
        Ok(self
            .decrypt_phases(batch)?
            .into_iter()
            .map(|phase| encoding.decode(phase))
            .collect())
    }

    /// The raw phases (message plus noise, before rounding) of big-key LWE ciphertexts: what
    /// noise measurements need.
    ///
    /// ```
    /// use fhe::{ClientKey, Encoding, KeySeed, ParameterSetId, ScaleLog};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let encoding = Encoding::new(ScaleLog(40)).unwrap();
    /// let lwes = key.encrypt_lwe_batch(&[1], encoding).unwrap();
    /// let phase = key.decrypt_phases(&lwes).unwrap()[0];
    /// assert!(encoding.phase_error(phase, 1).abs() <= 1 << 17);
    /// ```
    pub fn decrypt_phases(&self, batch: &LweBatch) -> Result<Vec<u64>> {
        let params = self.parameters();
        check_parameter_set(params.id(), batch.parameter_set)?;
        let key = self.glwe_key().as_lwe_secret_key();
        Ok(batch
            .list
            .iter()
            .map(|lwe| decrypt_lwe_ciphertext(&key, &lwe).0)
            .collect())
    }
}
