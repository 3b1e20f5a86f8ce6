//! Sample extraction: chosen coefficients of GLWE ciphertexts become LWE ciphertexts under the
//! big key.

use rayon::prelude::*;
use tfhe::core_crypto::prelude::*;

use crate::error::{FheError, Result};
use crate::glwe_batch::{CoefficientSlot, GlweBatch};
use crate::lwe_batch::LweBatch;
use crate::params::FheParameters;

impl GlweBatch {
    /// Sample extraction: turns the chosen coefficients into LWE ciphertexts under the big key,
    /// in the order of `slots` (so the order of `slots` is the output layout).
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
