//! One bootstrap read at many plaintext offsets: after the blind rotation of an input, the
//! accumulator holds the whole lookup table rotated by the input's phase, so its coefficient
//! `j` is the table read at the phase plus `j` steps of `1/(2N)`. Extracting the coefficient of
//! each offset gives `lut(input + offset)` for as many offsets as wanted, for one keyswitch and
//! one blind rotation (the costly parts) per input instead of one per offset.
//!
//! An offset moves the read by whole steps: an offset finer than a step (an input encoding
//! below `2^(64 - log2(2N))`) is rounded to the nearest step, ties upwards
//! ([`RotatedTables::offset_steps`]). The read's noise (keyswitch, modulus switch and the input's
//! own) is one draw per input, shared by all its offsets.

use rayon::prelude::*;
use tfhe::core_crypto::prelude::*;

use crate::encoding::Encoding;
use crate::error::{FheError, Result};
use crate::lwe_batch::LweBatch;
use crate::parameter_set::ParameterSetId;
use crate::pbs::LookupTable;
use crate::server_key::ServerKey;

/// Lookup tables blind-rotated by their inputs' phases, not yet read: [`RotatedTables::read`]
/// extracts input `r`'s table at its phase plus any offset, as often as wanted.
pub struct RotatedTables {
    parameter_set: ParameterSetId,
    accumulators: Vec<GlweCiphertextOwned<u64>>,
}

impl ServerKey {
    /// Keyswitches and blind-rotates `lut` once per input (in parallel): the costly part of a
    /// bootstrap, whose reads come after.
    ///
    /// ```no_run
    /// use fhe::{ClientKey, Encoding, KeySeed, LookupTable, LutBits, ParameterSetId, ScaleLog};
    /// let client = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let server = client.compressed_server_key(KeySeed(2)).decompress();
    /// let output = Encoding::new(ScaleLog(56)).unwrap();
    /// let lut = LookupTable::new(&client.parameters(), LutBits(5), output, |i| (i as i64 - 16).max(0)).unwrap();
    /// let inputs = client.encrypt_lwe_batch(&[3, 20], lut.input_encoding()).unwrap();
    /// let rotated = server.keyswitch_blind_rotate(&inputs, &lut).unwrap();
    /// // Candidate by candidate, one offset per input.
    /// let offsets = [0, 0, 10, -4, 27, 10];
    /// let outputs = rotated.read(&offsets, lut.input_encoding()).unwrap();
    /// assert_eq!(client.decrypt_lwe_batch(&outputs, output).unwrap(), vec![0, 4, 0, 0, 14, 14]);
    /// ```
    pub fn keyswitch_blind_rotate(
        &self,
        inputs: &LweBatch,
        lut: &LookupTable,
    ) -> Result<RotatedTables> {
        Ok(RotatedTables {
            parameter_set: inputs.parameter_set,
            accumulators: self.blind_rotate_each(inputs, lut, |accumulator| accumulator.clone())?,
        })
    }
}

impl RotatedTables {
    /// Number of rotated tables (inputs).
    pub fn len(&self) -> usize {
        self.accumulators.len()
    }

    /// Whether there is no table.
    pub fn is_empty(&self) -> bool {
        self.accumulators.is_empty()
    }

    /// The steps of `1/(2N)` (modulo `2N`) by which adding `offset`, encoded with `encoding`,
    /// moves a bootstrap's read: `offset x 2^scale / 2^(64 - log2(2N))`, rounded to the nearest
    /// step, ties upwards.
    pub fn offset_steps(&self, offset: i64, encoding: Encoding) -> usize {
        offset_steps(self.parameter_set, offset, encoding)
    }

    /// Table `r` read at its input's phase plus `offsets[k * R + r]` for every candidate `k`
    /// (`R` tables, offsets candidate by candidate, encoded with `encoding`): one sample
    /// extraction per offset. The result holds `K x R` ciphertexts, candidate by candidate,
    /// each with the noise of a fresh bootstrap output; the reads of one table share its
    /// input's noise.
    pub fn read(&self, offsets: &[i64], encoding: Encoding) -> Result<LweBatch> {
        let rows = self.len();
        if rows == 0 || !offsets.len().is_multiple_of(rows) {
            return Err(FheError::LengthMismatch {
                what: "bootstrap offsets (candidates x inputs)",
                expected: rows.max(1) * offsets.len().div_ceil(rows.max(1)).max(1),
                found: offsets.len(),
            });
        }
        let params = self.parameter_set.parameters();
        let n = params.tfhe_polynomial_size().0;
        let big_lwe_words = params.big_lwe_dimension().ciphertext_words();
        let modulus = params.ciphertext_modulus();
        let mut words = vec![0u64; offsets.len() * big_lwe_words];
        words
            .par_chunks_mut(big_lwe_words)
            .zip(offsets.par_iter().enumerate())
            .for_each(|(output, (index, &offset))| {
                let steps = self.offset_steps(offset, encoding);
                let mut output = LweCiphertext::from_container(output, modulus);
                extract_lwe_sample_from_glwe_ciphertext(
                    &self.accumulators[index % rows],
                    &mut output,
                    MonomialDegree(steps % n),
                );
                // Past N steps the negacyclic table reads with the opposite sign.
                if steps >= n {
                    for word in output.as_mut() {
                        *word = word.wrapping_neg();
                    }
                }
            });
        Ok(LweBatch::from_words(self.parameter_set, words))
    }
}

impl LookupTable {
    /// [`RotatedTables::offset_steps`] for this table's parameter set.
    ///
    /// ```
    /// use fhe::{Encoding, LookupTable, LutBits, ParameterSetId, ScaleLog};
    /// let params = ParameterSetId::default().parameters(); // N = 2048: a step is 2^52
    /// let lut = LookupTable::new(&params, LutBits(4), Encoding::new(ScaleLog(58)).unwrap(), |i| i as i64).unwrap();
    /// let fine = Encoding::new(ScaleLog(50)).unwrap(); // a quarter step
    /// assert_eq!(lut.offset_steps(5, fine), 1); // 1.25 steps
    /// assert_eq!(lut.offset_steps(6, fine), 2); // 1.5 steps, ties upwards
    /// assert_eq!(lut.offset_steps(-1, fine), 0); // -0.25 steps
    /// assert_eq!(lut.offset_steps(-3, Encoding::new(ScaleLog(53)).unwrap()), 4096 - 6);
    /// ```
    pub fn offset_steps(&self, offset: i64, encoding: Encoding) -> usize {
        offset_steps(self.parameter_set, offset, encoding)
    }
}

fn offset_steps(parameter_set: ParameterSetId, offset: i64, encoding: Encoding) -> usize {
    let modulus_log = parameter_set.parameters().blind_rotation_modulus_log().0;
    let step_log = 64 - modulus_log as u32;
    // Encoded at `encoding` on the torus (wrapping), then rounded to steps.
    let encoded = (offset as u64).wrapping_shl(encoding.scale_log().0);
    let steps = encoded.wrapping_add(1u64 << (step_log - 1)) >> step_log;
    (steps & ((1u64 << modulus_log) - 1)) as usize
}
