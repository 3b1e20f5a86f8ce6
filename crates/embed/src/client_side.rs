//! The client's side of a lookup: the one-hot query of a plan, encrypted, and the decryption of
//! the outputs.

use fhe::{ClientKey, LweBatch, SeededGlweBatch};

use crate::error::{EmbedError, Result};
use crate::plan::LookupPlan;

impl LookupPlan {
    /// The one-hot coefficients of a query for `ids` (one id per lookup), laid out in
    /// `query_glwe_count() * N` coefficients.
    ///
    /// ```
    /// use embed::{EmbedError, LookupPlan, PackingOptions, TableShape};
    /// let params = fhe::ParameterSetId::default().parameters();
    /// let shapes = vec![TableShape::digits(100, 2, 10, 9).unwrap()];
    /// let plan = LookupPlan::one_lookup_per_table(&params, shapes, PackingOptions::default()).unwrap();
    /// let coefficients = plan.encode_query(&[42]).unwrap();
    /// assert_eq!(coefficients[2], 1); // low digit 2
    /// assert_eq!(coefficients[10 + 4], 1); // high digit 4
    /// assert_eq!(coefficients.iter().sum::<i64>(), 2);
    /// assert!(matches!(plan.encode_query(&[100]), Err(EmbedError::IdOutOfRange { .. })));
    /// ```
    pub fn encode_query(&self, ids: &[u64]) -> Result<Vec<i64>> {
        if ids.len() != self.slots.len() {
            return Err(EmbedError::SizeMismatch {
                what: "ids of a query (one per lookup)".into(),
                expected: self.slots.len(),
                found: ids.len(),
            });
        }
        let n = self.params.polynomial_size().0;
        let mut coefficients = vec![0i64; self.query_glwe_count() * n];
        for (slot_index, (slot, &id)) in self.slots.iter().zip(ids).enumerate() {
            let shape = &self.shapes[slot.table];
            if id >= shape.rows {
                return Err(EmbedError::IdOutOfRange {
                    slot: slot_index,
                    id,
                    rows: shape.rows,
                });
            }
            let group = &self.groups[slot.group];
            for (j, digit) in shape.digits.digits(id).into_iter().enumerate() {
                let col = slot.first_col + j * shape.digits.base as usize + digit as usize;
                let place = group.layout.input_slot(col);
                coefficients[(group.first_glwe + place.glwe) * n + place.coefficient] = 1;
            }
        }
        Ok(coefficients)
    }

    /// Encrypts the query for `ids` under the client key (seeded GLWE ciphertexts, 16 KiB each
    /// for the 2_2 set).
    ///
    /// ```
    /// use embed::{LookupPlan, PackingOptions, TableShape};
    /// use fhe::{ClientKey, KeySeed, ParameterSetId};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let shapes = vec![TableShape::one_hot(10, 3, 5).unwrap()];
    /// let plan = LookupPlan::one_lookup_per_table(&key.parameters(), shapes, PackingOptions::default()).unwrap();
    /// assert_eq!(plan.encrypt_query(&key, &[7]).unwrap().len(), 1);
    /// ```
    pub fn encrypt_query(&self, key: &ClientKey, ids: &[u64]) -> Result<SeededGlweBatch> {
        Ok(key.encrypt_glwe_batch(&self.encode_query(ids)?, self.encoding())?)
    }

    /// Decrypts lookup outputs (in whatever order they were requested).
    ///
    /// ```
    /// use embed::{LookupPlan, PackingOptions, TableShape};
    /// use fhe::{ClientKey, KeySeed, ParameterSetId};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let shapes = vec![TableShape::one_hot(10, 3, 5).unwrap()];
    /// let plan = LookupPlan::one_lookup_per_table(&key.parameters(), shapes, PackingOptions::default()).unwrap();
    /// let lwes = key.encrypt_lwe_batch(&[4, -5], plan.encoding()).unwrap();
    /// assert_eq!(plan.decrypt_outputs(&key, &lwes).unwrap(), vec![4, -5]);
    /// ```
    pub fn decrypt_outputs(&self, key: &ClientKey, outputs: &LweBatch) -> Result<Vec<i64>> {
        Ok(key.decrypt_lwe_batch(outputs, self.encoding())?)
    }
}
