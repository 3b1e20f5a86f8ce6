//! Keyswitch and programmable bootstrap with a custom lookup table, using the centred
//! (mean-noise-reduced) modulus switch that TFHE-rs shortint uses for these parameter sets;
//! `core_crypto`'s ready-made PBS uses the plain switch, which resolves about one bit less.

use rayon::prelude::*;
use tfhe::core_crypto::prelude::*;

use crate::encoding::Encoding;
use crate::error::{FheError, Result};
use crate::lwe_batch::LweBatch;
use crate::parameter_set::ParameterSetId;
use crate::params::{FheParameters, check_parameter_set};
use crate::server_key::ServerKey;
use crate::sizes::{LutBits, ScaleLog};

/// A lookup table over `2^bits` boxes of the positive half torus: an input whose phase is about
/// `i * 2^(63 - bits)` (see [`LookupTable::input_encoding`]) bootstraps to `f(i)` encoded with
/// the output encoding. Phases in the negative half give `-f(i)` (negacyclicity), so the caller's
/// encoding keeps inputs in `[0, 2^bits)` (for signed values, add an offset first).
pub struct LookupTable {
    pub(crate) parameter_set: ParameterSetId,
    bits: LutBits,
    accumulator: GlweCiphertextOwned<u64>,
}

impl LookupTable {
    /// Builds the table for `f` over `2^bits` boxes, with outputs encoded by `output`. `bits` may
    /// be at most `log2(N)`; with N = 2048 about 6 bits are read back exactly (see
    /// `docs/fhe.md` for the measured error per size). Bootstrap outputs carry noise of about
    /// `2^49` (standard deviation, 2_2 set), so output scales below `2^53` do not decrypt exactly.
    ///
    /// ```
    /// use fhe::{Encoding, LookupTable, LutBits, ParameterSetId, ScaleLog};
    /// let params = ParameterSetId::default().parameters();
    /// let output = Encoding::new(ScaleLog(58)).unwrap();
    /// let relu_of_centred = |i: u64| (i as i64 - 32).max(0);
    /// let lut = LookupTable::new(&params, LutBits(6), output, relu_of_centred).unwrap();
    /// assert_eq!(lut.input_encoding().scale_log(), ScaleLog(57));
    /// assert!(LookupTable::new(&params, LutBits(12), output, |i| i as i64).is_err());
    /// ```
    pub fn new<F>(params: &FheParameters, bits: LutBits, output: Encoding, f: F) -> Result<Self>
    where
        F: Fn(u64) -> i64,
    {
        let max_bits = params.polynomial_size().0.trailing_zeros();
        if bits.0 == 0 || bits.0 > max_bits {
            return Err(FheError::OutOfRange {
                what: "lookup-table bits",
                value: bits.0.into(),
                min: 1,
                max: max_bits.into(),
            });
        }
        let encoded = (0..bits.box_count() as u64)
            .map(|i| output.encode(f(i)))
            .collect::<Result<Vec<u64>>>()?;
        // `generate_programmable_bootstrap_glwe_lut` multiplies f's value by `delta`: hand it the
        // already-encoded value and a delta of one.
        let accumulator = generate_programmable_bootstrap_glwe_lut(
            params.tfhe_polynomial_size(),
            params.glwe_size(),
            bits.box_count(),
            params.ciphertext_modulus(),
            1u64,
            |i: u64| encoded[i as usize],
        );
        Ok(LookupTable {
            parameter_set: params.id(),
            bits,
            accumulator,
        })
    }

    /// The encoding inputs must use: box `i` is the integer `i` at scale `2^(63 - bits)`.
    ///
    /// ```
    /// use fhe::{Encoding, LookupTable, LutBits, ParameterSetId, ScaleLog};
    /// let params = ParameterSetId::default().parameters();
    /// let lut = LookupTable::new(&params, LutBits(4), Encoding::new(ScaleLog(59)).unwrap(), |i| i as i64).unwrap();
    /// assert_eq!(lut.input_encoding().scale_log(), ScaleLog(59));
    /// ```
    pub fn input_encoding(&self) -> Encoding {
        Encoding::new(ScaleLog(63 - self.bits.0))
            .expect("bits is in 1..=log2(N), so 63 - bits is a valid scale")
    }
}

impl ServerKey {
    /// Keyswitches each big-key ciphertext to the small key, switches its modulus to `2N` with
    /// the centred switch, blind-rotates `lut` and extracts the constant coefficient: one fresh
    /// big-key ciphertext of `lut(input)` per input, with bootstrap-level noise. Ciphertexts are
    /// processed in parallel.
    ///
    /// ```no_run
    /// use fhe::{ClientKey, Encoding, KeySeed, LookupTable, LutBits, ParameterSetId, ScaleLog};
    /// let client = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let server = client.compressed_server_key(KeySeed(2)).decompress();
    /// let output = Encoding::new(ScaleLog(56)).unwrap();
    /// let lut = LookupTable::new(&client.parameters(), LutBits(5), output, |i| (i as i64 - 16).max(0)).unwrap();
    /// let inputs = client.encrypt_lwe_batch(&[3, 20, 31], lut.input_encoding()).unwrap();
    /// let outputs = server.keyswitch_bootstrap(&inputs, &lut).unwrap();
    /// assert_eq!(client.decrypt_lwe_batch(&outputs, output).unwrap(), vec![0, 4, 15]);
    /// ```
    pub fn keyswitch_bootstrap(&self, inputs: &LweBatch, lut: &LookupTable) -> Result<LweBatch> {
        let params = self.parameters();
        let modulus = params.ciphertext_modulus();
        let size = params.tfhe_big_lwe_dimension().to_lwe_size();
        let outputs = self.blind_rotate_each(inputs, lut, |accumulator| {
            let mut output = LweCiphertext::new(0u64, size, modulus);
            extract_lwe_sample_from_glwe_ciphertext(accumulator, &mut output, MonomialDegree(0));
            output.into_container()
        })?;
        Ok(LweBatch::from_words(inputs.parameter_set, outputs.concat()))
    }

    /// Keyswitches each input to the small key, switches its modulus to `2N` with the centred
    /// switch and blind-rotates `lut`, in parallel, handing each input's accumulator (the table
    /// rotated by the input's phase) to `finish`.
    pub(crate) fn blind_rotate_each<T: Send>(
        &self,
        inputs: &LweBatch,
        lut: &LookupTable,
        finish: impl Fn(&GlweCiphertextOwned<u64>) -> T + Sync + Send,
    ) -> Result<Vec<T>> {
        let params = self.parameters();
        check_parameter_set(params.id(), inputs.parameter_set)?;
        check_parameter_set(params.id(), lut.parameter_set)?;
        let big_lwe_words = params.big_lwe_dimension().ciphertext_words();
        let modulus = params.ciphertext_modulus();
        let fft = Fft::new(params.tfhe_polynomial_size());
        let fft = fft.as_view();
        let scratch = blind_rotate_assign_mem_optimized_requirement::<u64>(
            params.glwe_size(),
            params.tfhe_polynomial_size(),
            fft,
        )
        .unaligned_bytes_required();
        Ok(inputs
            .words()
            .par_chunks(big_lwe_words)
            .map_init(
                || {
                    let mut buffers = ComputationBuffers::new();
                    buffers.resize(scratch);
                    let small = LweCiphertext::new(
                        0u64,
                        params.tfhe_small_lwe_dimension().to_lwe_size(),
                        modulus,
                    );
                    (buffers, small)
                },
                |(buffers, small), input| {
                    let input = LweCiphertext::from_container(input, modulus);
                    keyswitch_lwe_ciphertext(&self.keyswitch_key, &input, small);
                    let switched = lwe_ciphertext_centered_binary_modulus_switch(
                        small.as_view(),
                        params.blind_rotation_modulus_log(),
                    );
                    let mut accumulator = lut.accumulator.clone();
                    blind_rotate_assign_mem_optimized(
                        &switched,
                        &mut accumulator,
                        &self.bootstrap_key,
                        fft,
                        buffers.stack(),
                    );
                    finish(&accumulator)
                },
            )
            .collect())
    }
}
