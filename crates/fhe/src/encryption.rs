//! Client-side encryption and decryption of GLWE and LWE batches.

use tfhe::core_crypto::prelude::*;

use crate::encoding::Encoding;
use crate::error::{FheError, Result};
use crate::glwe_batch::{GlweBatch, SeededGlweBatch};
use crate::keys::ClientKey;
use crate::lwe_batch::LweBatch;
use crate::params::check_parameter_set;

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
