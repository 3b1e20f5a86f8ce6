//! Packing keyswitch of big-key LWE ciphertexts into small GLWE ciphertexts, computed as
//! polynomial products in the NTT domain.
//!
//! TFHE-rs keyswitches one LWE at a time: `b_k - sum_(i,j) d_kij K_ij`, where `d_kij` is digit
//! `j` of mask coefficient `i` and `K_ij` the key's GLWE ciphertext, then adds `X^k` times the
//! result into the output. Gathering ciphertext `k`'s digit into coefficient `k` of a plaintext
//! polynomial `D_ij` turns the whole packing into `B(X) - sum_(i,j) D_ij(X) K_ij(X)`: one
//! plaintext x GLWE product per key row, exact modulo `2^64` in the NTT domain (`ntt.rs`), and
//! bit for bit what the TFHE-rs algorithm returns.

use rayon::prelude::*;
use tfhe::core_crypto::prelude::*;

use crate::error::{FheError, Result};
use crate::lwe_batch::LweBatch;
use crate::ntt::{self, MAX_ACCUMULATED_L1_NORM, NttAccumulator, NttGlwe, NttPolynomial};
use crate::packed_lwes::PackedLwes;
use crate::server_key::ServerKey;

/// Key coefficients handled by one parallel task (its transforms are shared by all groups).
const COEFFICIENTS_PER_TASK: usize = 16;

impl ServerKey {
    /// Whether the client sent a packing key with this server key.
    pub fn has_packing_key(&self) -> bool {
        self.packing_key.is_some()
    }

    /// Packs `lwes` into GLWE ciphertexts under the client's packing key, `N` values per
    /// ciphertext in order. Fails if the server key has no packing key or `lwes` is empty.
    ///
    /// ```no_run
    /// use fhe::{ClientKey, Encoding, KeySeed, ParameterSetId, ScaleLog};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let server = key.compressed_server_key_with_packing(KeySeed(2)).unwrap().decompress();
    /// let encoding = Encoding::new(ScaleLog(57)).unwrap();
    /// let packed = server.pack(&key.encrypt_lwe_batch(&[1, 2, 3], encoding).unwrap()).unwrap();
    /// assert_eq!(packed.len(), 3);
    /// ```
    pub fn pack(&self, lwes: &LweBatch) -> Result<PackedLwes> {
        let params = self.parameters();
        crate::params::check_parameter_set(params.id(), lwes.parameter_set)?;
        let (packing, seeded) = (params.packing())
            .zip(self.packing_key.as_ref())
            .ok_or_else(|| FheError::InvalidArgument("the server key has no packing key".into()))?;
        if lwes.is_empty() {
            return Err(FheError::InvalidArgument("no ciphertext to pack".into()));
        }
        let n = params.big_lwe_dimension().0;
        let slots = packing.scores_per_glwe();
        let levels = packing.level.0;
        let glwe_words = packing.glwe_words();
        let max_digit = 1u128 << (packing.base_log.0 - 1);
        if (n * levels * slots) as u128 * max_digit > MAX_ACCUMULATED_L1_NORM {
            return Err(FheError::InvalidArgument(
                "packing decomposition too wide for exact NTT accumulation".into(),
            ));
        }
        let plan = ntt::plan(slots)?;
        // Expanded from the kept seeded key by reference: no copy of it per call.
        let mut key = LwePackingKeyswitchKeyOwned::new(
            0u64,
            seeded.decomposition_base_log(),
            seeded.decomposition_level_count(),
            seeded.input_key_lwe_dimension(),
            seeded.output_key_glwe_dimension(),
            seeded.output_key_polynomial_size(),
            seeded.ciphertext_modulus(),
        );
        decompress_seeded_lwe_packing_keyswitch_key::<_, _, _, DefaultRandomGenerator>(
            &mut key, seeded,
        );
        let key_words = key.as_ref();
        let lwe_words = n + 1;
        let groups: Vec<&[u64]> = lwes.words().chunks(slots * lwe_words).collect();
        let decomposer = SignedDecomposer::<u64>::new(packing.base_log, packing.level);
        let new_accumulators = || -> Vec<NttAccumulator> {
            (0..groups.len())
                .map(|_| NttAccumulator::new(&plan, packing.glwe_dimension.to_glwe_size().0))
                .collect()
        };
        let sums = (0..n.div_ceil(COEFFICIENTS_PER_TASK))
            .into_par_iter()
            .fold(new_accumulators, |mut accumulators, task| {
                let first = task * COEFFICIENTS_PER_TASK;
                let mut digits = vec![vec![0i64; slots]; levels];
                for i in first..(first + COEFFICIENTS_PER_TASK).min(n) {
                    let rows: Vec<NttGlwe> = (0..levels)
                        .map(|j| {
                            let at = (i * levels + j) * glwe_words;
                            NttGlwe::new(&plan, &key_words[at..at + glwe_words])
                        })
                        .collect();
                    for (group, accumulator) in groups.iter().zip(&mut accumulators) {
                        for level in &mut digits {
                            level.fill(0);
                        }
                        for (k, lwe) in group.chunks_exact(lwe_words).enumerate() {
                            let rounded = decomposer.closest_representable(lwe[i]);
                            for (j, term) in decomposer.decompose(rounded).enumerate() {
                                digits[j][k] = term.value() as i64;
                            }
                        }
                        for (row, level) in rows.iter().zip(&digits) {
                            let digits = NttPolynomial::new(&plan, level);
                            accumulator.add_products(&plan, &[(row, &digits)]);
                        }
                    }
                }
                accumulators
            })
            .reduce(new_accumulators, |mut left, right| {
                for (left, right) in left.iter_mut().zip(&right) {
                    left.merge(&plan, right);
                }
                left
            });
        let body_at = packing.glwe_dimension.0 * slots;
        let mut words = vec![0u64; groups.len() * glwe_words];
        for ((group, sum), out) in groups
            .iter()
            .zip(sums)
            .zip(words.chunks_exact_mut(glwe_words))
        {
            sum.finish_into(&plan, out);
            for word in out.iter_mut() {
                *word = word.wrapping_neg();
            }
            for (k, lwe) in group.chunks_exact(lwe_words).enumerate() {
                out[body_at + k] = out[body_at + k].wrapping_add(lwe[n]);
            }
        }
        Ok(PackedLwes {
            parameter_set: params.id(),
            count: lwes.len() as u64,
            glwes: GlweCiphertextList::from_container(
                words,
                packing.glwe_dimension.to_glwe_size(),
                packing.polynomial_size,
                params.ciphertext_modulus(),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::Encoding;
    use crate::keys::{ClientKey, KeySeed};
    use crate::parameter_set::ParameterSetId;
    use crate::sizes::ScaleLog;

    /// Two groups (2,048 + 52 values) packed by the NTT products equal TFHE-rs's own packing
    /// keyswitch word for word, decrypt to the values, and carry the noise
    /// `PackingParameters::added_noise_sd` predicts.
    #[test]
    fn packing_equals_tfhe_rs_and_decrypts() {
        let client = ClientKey::from_seed(ParameterSetId::default(), KeySeed(3));
        let server = client
            .compressed_server_key_with_packing(KeySeed(4))
            .unwrap()
            .decompress();
        let encoding = Encoding::new(ScaleLog(57)).unwrap();
        let values: Vec<i64> = (0..2100).map(|v| (v * 7 % 31) - 15).collect();
        let lwes = client.encrypt_lwe_batch(&values, encoding).unwrap();
        let packed = server.pack(&lwes).unwrap();

        let params = server.parameters();
        let packing = params.packing().unwrap();
        let key = (server.packing_key.clone().unwrap()).decompress_into_lwe_packing_keyswitch_key();
        let lwe_size = params.tfhe_big_lwe_dimension().to_lwe_size();
        let slots = packing.scores_per_glwe();
        for (g, expected) in packed.glwes.iter().enumerate() {
            let words = &lwes.words()[g * slots * lwe_size.0..];
            let count = (values.len() - g * slots).min(slots);
            let input = LweCiphertextList::from_container(
                &words[..count * lwe_size.0],
                lwe_size,
                params.ciphertext_modulus(),
            );
            let mut reference = GlweCiphertext::new(
                0u64,
                packing.glwe_dimension.to_glwe_size(),
                packing.polynomial_size,
                params.ciphertext_modulus(),
            );
            keyswitch_lwe_ciphertext_list_and_pack_in_glwe_ciphertext(&key, &input, &mut reference);
            assert_eq!(expected.as_ref(), reference.as_ref(), "group {g}");
        }
        let phases = client.decrypt_packed_phases(&packed).unwrap();
        let variance = (phases.iter().zip(&values))
            .map(|(&phase, &value)| {
                let error = phase.wrapping_sub(encoding.encode(value).unwrap()) as i64;
                (error as f64 / 2f64.powi(64)).powi(2)
            })
            .sum::<f64>()
            / values.len() as f64;
        let ratio = variance.sqrt() / packing.added_noise_sd(values.len());
        assert!(
            (0.75..1.25).contains(&ratio),
            "measured / predicted sd: {ratio}"
        );
        assert_eq!(client.decrypt_packed(&packed, encoding).unwrap(), values);
    }
}
