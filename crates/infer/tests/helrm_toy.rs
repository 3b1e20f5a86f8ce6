//! The peer system's own toy DLRM (HE-LRM's, `../shared/models/helrm_toy`), imported, quantized
//! on calibration rows around its published input and run encrypted on that input: the
//! decrypted logit must lie within a bound derived from the quantization error and the
//! simulated bootstrap noise of the published float logit -0.04672338, and within the
//! `simulate` error range of the integer reference.
//!
//! The calibration rows (`examples/helrm_toy/calibration.csv`, read by the README's commands
//! too) are regenerated here and must equal the committed file: dense values drawn from
//! N(0, 1) like the published input's, ids uniform over each table, from a fixed seed.
//! `DLRM_HE_WRITE_EXAMPLES=1` rewrites the file.

use std::path::PathBuf;

use dlrm::{Execution, Interaction, QuantizeConfig};
use fhe::{ClientKey, KeySeed, ParameterSetId};
use infer::{ServerModel, decrypt_response, encrypt_request};

const PUBLISHED_DENSE: [f32; 4] = [0.1753, -0.9315, -1.5055, -0.6610];
const PUBLISHED_IDS: [u32; 3] = [3, 0, 1];
const PUBLISHED_LOGIT: f64 = -0.04672338;
const TABLE_ROWS: [u64; 3] = [4, 3, 2];
const CALIBRATION_ROWS: usize = 2000;

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/helrm_toy")
        .join(name)
}

/// The calibration CSV: header, then rows of N(0, 1) dense values (4 decimals) and uniform ids.
fn calibration_csv() -> String {
    let mut state = 0x4845_4c52_4d00_0001u64;
    let mut next = || {
        // SplitMix64.
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut text = String::from("d0,d1,d2,d3,c0,c1,c2\n");
    for _ in 0..CALIBRATION_ROWS {
        let mut fields = Vec::new();
        for _ in 0..PUBLISHED_DENSE.len() {
            // Box-Muller on two uniforms in (0, 1].
            let u1 = ((next() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
            let u2 = (next() >> 11) as f64 / (1u64 << 53) as f64;
            let normal = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            fields.push(format!("{normal:.4}"));
        }
        for rows in TABLE_ROWS {
            fields.push((next() % rows).to_string());
        }
        text.push_str(&fields.join(","));
        text.push('\n');
    }
    text
}

#[test]
fn the_calibration_rows_are_the_documented_ones() {
    let expected = calibration_csv();
    let path = example("calibration.csv");
    if std::env::var_os("DLRM_HE_WRITE_EXAMPLES").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap();
    assert!(
        committed == expected,
        "{} differs from its generator",
        path.display()
    );
}

#[test]
fn the_helrm_toy_runs_encrypted_within_its_derived_bound() {
    let Some(file) = datasets::shared::shared_file("models/helrm_toy/dlrm.safetensors") else {
        return;
    };
    let weights = dlrm::import_pytorch(&file, Interaction::Concat).unwrap();
    let float = f64::from(weights.forward(&PUBLISHED_DENSE, &PUBLISHED_IDS).unwrap());
    assert!(
        (float - PUBLISHED_LOGIT).abs() < 1e-6,
        "float logit {float}"
    );
    let tables: Vec<usize> = TABLE_ROWS.iter().map(|&r| r as usize).collect();
    let calibration =
        datasets::read_encoded_rows(&example("calibration.csv"), 4, &tables, None).unwrap();
    let (model, _) =
        dlrm::quantize(&weights, &calibration.rows, &QuantizeConfig::default()).unwrap();

    // The bound: the integer reference's quantization error at this input, six standard
    // deviations of the bootstrap noise `simulate` puts on its logit (1,000 passes), and half a
    // step of the output grid the client rounds to.
    let inputs = model.quantize_input(&PUBLISHED_DENSE);
    let exact = model.forward(&inputs, &PUBLISHED_IDS).unwrap();
    let simulated: Vec<f64> = (0..1000)
        .map(|seed| {
            let trace = model
                .trace(&inputs, &PUBLISHED_IDS, Execution::Simulate { seed }, 0)
                .unwrap();
            trace.logit_numerator
        })
        .collect();
    let deviation = |values: &[f64]| {
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64).sqrt()
    };
    let noise_sd = deviation(&simulated) * model.logit_scale;
    let quantization = (exact as f64 * model.logit_scale - PUBLISHED_LOGIT).abs();
    let bound = quantization + 6.0 * noise_sd + 0.5 * model.logit_scale;
    let widest = simulated
        .iter()
        .map(|s| (s - exact as f64).abs())
        .fold(0.0, f64::max);

    let server = ServerModel::new(&model, ParameterSetId::default()).unwrap();
    assert!(server.plan().bootstraps() <= 16, "{}", server.plan());
    let client = ClientKey::from_seed(ParameterSetId::default(), KeySeed(21));
    let server_key = client.compressed_server_key(KeySeed(22)).decompress();
    let request = encrypt_request(
        &client,
        server.interface(),
        &PUBLISHED_DENSE,
        &PUBLISHED_IDS,
    )
    .unwrap();
    let (response, _) = server.infer(&server_key, &request).unwrap();
    let numerator = decrypt_response(&client, server.interface(), &response).unwrap();
    let logit = numerator as f64 * model.logit_scale;
    eprintln!(
        "encrypted logit {logit:+.6}, integer {:+.6}, float {PUBLISHED_LOGIT:+.8}; bound {bound:.6} = quantization {quantization:.6} + 6 x noise sd {noise_sd:.6}",
        exact as f64 * model.logit_scale
    );
    assert!(
        (logit - PUBLISHED_LOGIT).abs() <= bound,
        "encrypted logit {logit} is {} from the published {PUBLISHED_LOGIT}, bound {bound}",
        (logit - PUBLISHED_LOGIT).abs()
    );
    // The encrypted run against the integer reference: within simulate's range, plus one unit
    // for the output's own encryption noise and the rounding to its grid.
    assert!(
        (numerator - exact).abs() as f64 <= widest + 1.0,
        "encrypted numerator {numerator}, reference {exact}, simulate's widest deviation {widest}"
    );
}
