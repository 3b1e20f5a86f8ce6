//! Kernel timings, key sizes and the bootstrap precision report, printed as a table.
//! Run with `cargo bench -p fhe --bench fhe_kernels`.

use std::time::Instant;

use fhe::{
    ClientKey, CompressedServerKey, Encoding, KeySeed, LookupTable, LutBits, LweDenseLayer,
    PackedMatVecLayout, PackedMatrix, ParameterSetId, ScaleLog,
};

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut result = f();
    let start = Instant::now();
    for _ in 0..runs {
        result = f();
    }
    (start.elapsed().as_secs_f64() * 1e3 / runs as f64, result)
}

fn main() {
    let set = ParameterSetId::default();
    let threads = rayon::current_num_threads();
    println!("parameter set {set}, {threads} threads");

    let start = Instant::now();
    let client = ClientKey::generate(set);
    let compressed = client.compressed_server_key(KeySeed::from_entropy());
    let keygen_s = start.elapsed().as_secs_f64();
    let bytes = compressed.to_bytes().unwrap();
    let start = Instant::now();
    let server = CompressedServerKey::from_bytes(&bytes, set)
        .unwrap()
        .decompress();
    let load_s = start.elapsed().as_secs_f64();
    println!(
        "keygen (client + seeded server key): {keygen_s:.2} s; seeded server key {:.1} MiB; load + decompress {load_s:.2} s",
        bytes.len() as f64 / (1 << 20) as f64
    );

    let params = client.parameters();
    let n = params.polynomial_size();
    let encoding = Encoding::new(ScaleLog(40)).unwrap();

    // One GLWE x plaintext product with its inverse transform, and with 16 products summed in
    // the transform domain before one inverse transform.
    for blocks in [1usize, 16] {
        let layout = PackedMatVecLayout::new(1, blocks * n.0, n).unwrap();
        let matrix = PackedMatrix::from_fn(&params, layout, |_, c| (c % 7) as i64 - 3).unwrap();
        let query = client
            .encrypt_glwe_batch(&vec![1; blocks * n.0], encoding)
            .unwrap()
            .decompress();
        let (transform_ms, transformed) = time(20, || query.to_ntt().unwrap());
        let (product_ms, _) = time(20, || matrix.apply(&transformed).unwrap());
        println!(
            "packed product, {blocks:>2} input GLWE(s) -> 1 output: forward NTT {transform_ms:.3} ms, products + inverse {product_ms:.3} ms ({:.3} ms per product)",
            product_ms / blocks as f64
        );
    }

    let glwe = client
        .encrypt_glwe_batch(&vec![1; n.0], encoding)
        .unwrap()
        .decompress();
    let slots: Vec<_> = (0..n.0)
        .map(|c| fhe::CoefficientSlot {
            glwe: 0,
            coefficient: c,
        })
        .collect();
    let (extract_ms, _) = time(10, || glwe.extract(&slots).unwrap());
    println!(
        "sample extraction: {:.2} us per coefficient",
        extract_ms * 1e3 / n.0 as f64
    );

    let width = 512;
    let weights: Vec<i64> = (0..width * width).map(|i| (i % 15) as i64 - 7).collect();
    let layer = LweDenseLayer::new(width, width, weights, vec![0; width], encoding).unwrap();
    let inputs = client.encrypt_lwe_batch(&vec![1; width], encoding).unwrap();
    let (gemm_ms, _) = time(3, || layer.apply(&inputs).unwrap());
    println!("dense layer 512 x 512 on 2048-dim LWEs: {gemm_ms:.1} ms");

    let output = Encoding::new(ScaleLog(57)).unwrap();
    let lut = LookupTable::new(&params, LutBits(6), output, |i| i as i64).unwrap();
    let batch = client
        .encrypt_lwe_batch(&[5; 16], lut.input_encoding())
        .unwrap();
    let (pbs_ms, _) = time(2, || server.keyswitch_bootstrap(&batch, &lut).unwrap());
    let single = client
        .encrypt_lwe_batch(&[5], lut.input_encoding())
        .unwrap();
    let (single_ms, _) = time(5, || server.keyswitch_bootstrap(&single, &lut).unwrap());
    println!(
        "keyswitch + bootstrap: {single_ms:.1} ms for one, {:.1} ms per ciphertext in a batch of 16",
        pbs_ms / 16.0
    );

    // Precision: every box of an identity table, values at box centres, `repeats` times.
    let repeats = 4;
    println!("bootstrap precision (centred modulus switch), {repeats} samples per box:");
    println!("| boxes | samples | exact | max error (boxes) | mean error (boxes) |");
    println!("|---|---|---|---|---|");
    for bits in 4..=8u32 {
        let boxes = 1i64 << bits;
        let output = Encoding::new(ScaleLog(63 - bits)).unwrap();
        let lut = LookupTable::new(&params, LutBits(bits), output, |i| i as i64).unwrap();
        let values: Vec<i64> = (0..repeats).flat_map(|_| 0..boxes).collect();
        let encrypted = client
            .encrypt_lwe_batch(&values, lut.input_encoding())
            .unwrap();
        let decrypted = client
            .decrypt_lwe_batch(
                &server.keyswitch_bootstrap(&encrypted, &lut).unwrap(),
                output,
            )
            .unwrap();
        // Errors are taken modulo the table size: past the last box the phase wraps to the
        // (negated) first box, which is one box further, not `boxes - 1` boxes back.
        let errors: Vec<i64> = values
            .iter()
            .zip(&decrypted)
            .map(|(v, d)| {
                let e = (d - v).rem_euclid(boxes);
                if e > boxes / 2 { e - boxes } else { e }
            })
            .collect();
        let exact = errors.iter().filter(|e| **e == 0).count();
        let max = errors.iter().map(|e| e.abs()).max().unwrap();
        let mean = errors.iter().sum::<i64>() as f64 / errors.len() as f64;
        println!(
            "| {boxes} | {} | {:.3} | {max} | {mean:+.3} |",
            errors.len(),
            exact as f64 / errors.len() as f64
        );
    }
}
