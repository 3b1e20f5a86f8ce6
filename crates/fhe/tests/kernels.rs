//! Every encrypted kernel against plaintext integer arithmetic, plus the rejection of bad input.
//! Keys are generated once per test binary.

use std::sync::OnceLock;

use fhe::{
    ClientKey, CompressedServerKey, Encoding, FheError, KeySeed, LookupTable, LutBits, LweBatch,
    LweDenseLayer, PackedMatVecLayout, PackedMatrix, ParameterSetId, ScaleLog, SeededGlweBatch,
    ServerKey,
};

struct Keys {
    client: ClientKey,
    compressed_bytes: Vec<u8>,
    server: ServerKey,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let client = ClientKey::from_seed(ParameterSetId::default(), KeySeed(0xC0FFEE));
        let compressed = client.compressed_server_key(KeySeed(0xBEEF));
        let compressed_bytes = compressed.to_bytes().unwrap();
        let server = CompressedServerKey::from_bytes(&compressed_bytes, ParameterSetId::default())
            .unwrap()
            .decompress();
        Keys {
            client,
            compressed_bytes,
            server,
        }
    })
}

/// Small deterministic generator, so failures reproduce.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 11
    }

    fn int(&mut self, low: i64, high: i64) -> i64 {
        low + (self.next() % (high - low + 1) as u64) as i64
    }
}

fn plain_matvec(weights: &[i64], rows: usize, x: &[i64]) -> Vec<i64> {
    (0..rows)
        .map(|r| {
            weights[r * x.len()..(r + 1) * x.len()]
                .iter()
                .zip(x)
                .map(|(w, x)| w * x)
                .sum()
        })
        .collect()
}

fn check_packed_product(layout: PackedMatVecLayout, seed: u64) {
    let keys = keys();
    let params = keys.client.parameters();
    let (rows, cols) = (layout.rows(), layout.cols());
    let mut rng = Lcg(seed);
    let weights: Vec<i64> = (0..rows * cols).map(|_| rng.int(-128, 127)).collect();
    let x: Vec<i64> = (0..cols).map(|_| rng.int(-8, 8)).collect();
    let matrix = PackedMatrix::from_fn(&params, layout, |r, c| weights[r * cols + c]).unwrap();
    let encoding = Encoding::new(ScaleLog(42)).unwrap();
    let query = keys
        .client
        .encrypt_glwe_batch(&layout.place_inputs(&x).unwrap(), encoding)
        .unwrap();
    assert_eq!(query.len(), layout.input_glwe_count());
    let products = matrix.apply(&query.decompress().to_ntt().unwrap()).unwrap();
    assert_eq!(products.len(), layout.output_glwe_count());
    let slots: Vec<_> = (0..rows).map(|r| layout.output_slot(r)).collect();
    let decrypted = keys
        .client
        .decrypt_lwe_batch(&products.extract(&slots).unwrap(), encoding)
        .unwrap();
    assert_eq!(decrypted, plain_matvec(&weights, rows, &x));
}

#[test]
fn packed_product_single_block_many_rows_per_polynomial() {
    let n = keys().client.parameters().polynomial_size();
    check_packed_product(PackedMatVecLayout::new(37, 53, n).unwrap(), 1);
}

#[test]
fn packed_product_tiled_over_inputs_and_outputs() {
    let n = keys().client.parameters().polynomial_size();
    // 5001 inputs: three blocks of 1667; one row per output ciphertext.
    check_packed_product(PackedMatVecLayout::new(5, 5001, n).unwrap(), 2);
    // Short blocks: more input ciphertexts, 20 rows per output ciphertext, partial last group.
    check_packed_product(
        PackedMatVecLayout::with_block_len(45, 301, n, 100).unwrap(),
        3,
    );
}

#[test]
fn packed_product_rejects_weights_beyond_the_exact_range() {
    let params = keys().client.parameters();
    let n = params.polynomial_size().0;
    // Each full block of i64::MAX weights has an L1 norm just under 2^74; 1024 of them fit the
    // 2^84 budget of one output, 1025 do not.
    let fits = PackedMatVecLayout::new(1, 1024 * n, params.polynomial_size()).unwrap();
    assert!(PackedMatrix::from_fn(&params, fits, |_, _| i64::MAX).is_ok());
    let too_many = PackedMatVecLayout::new(1, 1025 * n, params.polynomial_size()).unwrap();
    let too_large = PackedMatrix::from_fn(&params, too_many, |_, _| i64::MAX);
    assert!(matches!(too_large, Err(FheError::OutOfRange { .. })));
}

#[test]
fn dense_layer_matches_integer_matrix_product() {
    let keys = keys();
    let mut rng = Lcg(4);
    let (outputs, inputs) = (19, 70);
    let weights: Vec<i64> = (0..outputs * inputs).map(|_| rng.int(-7, 7)).collect();
    let bias: Vec<i64> = (0..outputs).map(|_| rng.int(-1000, 1000)).collect();
    let x: Vec<i64> = (0..inputs).map(|_| rng.int(-100, 100)).collect();
    let encoding = Encoding::new(ScaleLog(40)).unwrap();
    let layer =
        LweDenseLayer::new(outputs, inputs, weights.clone(), bias.clone(), encoding).unwrap();
    let y = layer
        .apply(&keys.client.encrypt_lwe_batch(&x, encoding).unwrap())
        .unwrap();
    let expected: Vec<i64> = plain_matvec(&weights, outputs, &x)
        .iter()
        .zip(&bias)
        .map(|(v, b)| v + b)
        .collect();
    assert_eq!(
        keys.client.decrypt_lwe_batch(&y, encoding).unwrap(),
        expected
    );
}

/// Bootstraps every box of a `2^bits` table (values at box centres) and returns how many came
/// back exact and the largest error, in boxes.
fn bootstrap_all_boxes(bits: u32) -> (usize, i64) {
    let keys = keys();
    let params = keys.client.parameters();
    let boxes = 1i64 << bits;
    let output = Encoding::new(ScaleLog(63 - bits)).unwrap();
    // A non-trivial function: reversed order, so an identity bug cannot pass.
    let lut = LookupTable::new(&params, LutBits(bits), output, |i| boxes - 1 - i as i64).unwrap();
    let inputs: Vec<i64> = (0..boxes).collect();
    let encrypted = keys
        .client
        .encrypt_lwe_batch(&inputs, lut.input_encoding())
        .unwrap();
    let outputs = keys.server.keyswitch_bootstrap(&encrypted, &lut).unwrap();
    let decrypted = keys.client.decrypt_lwe_batch(&outputs, output).unwrap();
    let errors: Vec<i64> = inputs
        .iter()
        .zip(&decrypted)
        .map(|(i, d)| (d - (boxes - 1 - i)).abs())
        .collect();
    (
        errors.iter().filter(|e| **e == 0).count(),
        errors.into_iter().max().unwrap(),
    )
}

#[test]
fn bootstrap_with_32_boxes_is_exact() {
    assert_eq!(bootstrap_all_boxes(5), (32, 0));
}

#[test]
fn bootstrap_with_64_boxes_is_within_the_measured_error() {
    // Measured (docs/fhe.md): 99.8-100% exact, never off by more than one box.
    let (exact, max_error) = bootstrap_all_boxes(6);
    assert!(exact >= 58, "only {exact}/64 exact");
    assert!(max_error <= 1, "max error {max_error} boxes");
}

#[test]
fn one_blind_rotation_reads_the_table_at_every_offset() {
    // 32 boxes (exact), inputs and offsets spanning the table, offsets past the half torus
    // (negacyclic reads, `-f`) and offsets finer than a step (rounded to the nearest step).
    let keys = keys();
    let output = Encoding::new(ScaleLog(56)).unwrap();
    let f = |i: u64| 3 * i as i64 - 40;
    let lut = LookupTable::new(&keys.client.parameters(), LutBits(5), output, f).unwrap();
    let inputs = [2i64, 17, 30];
    let encrypted = keys
        .client
        .encrypt_lwe_batch(&inputs, lut.input_encoding())
        .unwrap();
    let offsets: Vec<i64> = [[0, 0, 0], [5, -9, 1], [29, 14, -30], [40, 20, 7]].concat();
    let rotated = keys
        .server
        .keyswitch_blind_rotate(&encrypted, &lut)
        .unwrap();
    assert_eq!(rotated.len(), 3);
    let read = rotated.read(&offsets, lut.input_encoding()).unwrap();
    let expected: Vec<i64> = (offsets.iter().enumerate())
        .map(|(index, offset)| {
            // Boxes 32..64 are the negative half: the table negated.
            let phase = (inputs[index % 3] + offset).rem_euclid(64) as u64;
            match phase < 32 {
                true => f(phase),
                false => -f(phase - 32),
            }
        })
        .collect();
    assert_eq!(
        keys.client.decrypt_lwe_batch(&read, output).unwrap(),
        expected
    );

    // Offsets in half steps of 1/(2N) (a box is 64 steps): 21.5 steps round up to 22, -21.5
    // to -21; 256 and 128 half steps are two boxes and one.
    let fine = Encoding::new(ScaleLog(lut.input_encoding().scale_log().0 - 7)).unwrap();
    assert_eq!(lut.offset_steps(43, fine), 22);
    assert_eq!(lut.offset_steps(-43, fine), 4096 - 21);
    let read = rotated.read(&[256, 0, 128], fine).unwrap();
    assert_eq!(
        keys.client.decrypt_lwe_batch(&read, output).unwrap(),
        vec![f(4), f(17), f(31)]
    );
    assert!(rotated.read(&[1, 2], fine).is_err());
}

#[test]
fn bootstrap_output_feeds_a_dense_layer() {
    // Bootstrap outputs and dense layers compose: relu(x - 8) then y = 2 a - b.
    let keys = keys();
    let params = keys.client.parameters();
    let output = Encoding::new(ScaleLog(56)).unwrap();
    let lut = LookupTable::new(&params, LutBits(4), output, |i| (i as i64 - 8).max(0)).unwrap();
    let x = keys
        .client
        .encrypt_lwe_batch(&[15, 11], lut.input_encoding())
        .unwrap();
    let activated = keys.server.keyswitch_bootstrap(&x, &lut).unwrap();
    assert_eq!(
        keys.client.decrypt_lwe_batch(&activated, output).unwrap(),
        vec![7, 3]
    );
    let layer = LweDenseLayer::new(1, 2, vec![2, -1], vec![0], output).unwrap();
    let y = layer.apply(&activated).unwrap();
    assert_eq!(
        keys.client.decrypt_lwe_batch(&y, output).unwrap(),
        vec![2 * 7 - 3]
    );
}

#[test]
fn compressed_server_key_has_the_expected_transport_size() {
    let size = keys().compressed_bytes.len();
    // 918 GGSW of 2 x 2048 bodies (28.7 MiB) plus 2048 x 4 keyswitch bodies (64 KiB).
    assert!((28 << 20..30 << 20).contains(&size), "{size} bytes");
}

#[test]
fn corrupted_or_foreign_key_bytes_are_rejected() {
    let bytes = &keys().compressed_bytes;
    let default = ParameterSetId::default();
    for truncated_len in [0, 10, 100, bytes.len() / 2, bytes.len() - 1] {
        let result = CompressedServerKey::from_bytes(&bytes[..truncated_len], default);
        assert!(
            matches!(result, Err(FheError::Decode { .. })),
            "length {truncated_len}"
        );
    }
    let mut extended = bytes.clone();
    extended.push(0);
    assert!(CompressedServerKey::from_bytes(&extended, default).is_err());
    let client_bytes = keys().client.to_bytes().unwrap();
    assert!(matches!(
        CompressedServerKey::from_bytes(&client_bytes, default),
        Err(FheError::Decode { .. })
    ));
    assert!(ClientKey::from_bytes(&bytes[..4096], default).is_err());
}

#[test]
fn ciphertexts_of_another_parameter_set_are_rejected() {
    let other_set = ParameterSetId::Tfhe1_8Message3Carry3KsPbsTUniform2M128;
    let other_client = ClientKey::from_seed(other_set, KeySeed(5));
    let encoding = Encoding::new(ScaleLog(40)).unwrap();
    let n = other_client.parameters().polynomial_size().0;
    let glwes = other_client
        .encrypt_glwe_batch(&vec![1; n], encoding)
        .unwrap();
    let bytes = glwes.to_bytes().unwrap();
    assert!(matches!(
        SeededGlweBatch::from_bytes(&bytes, ParameterSetId::default(), 8),
        Err(FheError::ParameterSetMismatch { .. }) | Err(FheError::Decode { .. })
    ));
    assert!(SeededGlweBatch::from_bytes(&bytes, other_set, 1).is_ok());
    // In memory, mixing sets is refused too.
    let lwes = other_client.encrypt_lwe_batch(&[1], encoding).unwrap();
    assert!(matches!(
        keys().client.decrypt_lwe_batch(&lwes, encoding),
        Err(FheError::ParameterSetMismatch { .. })
    ));
    assert!(
        keys()
            .server
            .keyswitch_bootstrap(
                &lwes,
                &LookupTable::new(&keys().client.parameters(), LutBits(4), encoding, |i| i
                    as i64,)
                .unwrap()
            )
            .is_err()
    );
}

#[test]
fn lwe_batches_reject_wrong_counts_and_truncation() {
    let encoding = Encoding::new(ScaleLog(40)).unwrap();
    let batch = keys()
        .client
        .encrypt_lwe_batch(&[1, 2, 3], encoding)
        .unwrap();
    let bytes = batch.to_bytes().unwrap();
    let default = ParameterSetId::default();
    assert!(LweBatch::from_bytes(&bytes, default, 2).is_err());
    assert!(LweBatch::from_bytes(&bytes[..bytes.len() - 8], default, 3).is_err());
    let back = LweBatch::from_bytes(&bytes, default, 3).unwrap();
    assert_eq!(
        keys().client.decrypt_lwe_batch(&back, encoding).unwrap(),
        vec![1, 2, 3]
    );
}
