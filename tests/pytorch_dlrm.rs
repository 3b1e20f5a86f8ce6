//! A DLRM trained in PyTorch with the reference DLRM's module layout and dot interaction
//! (`tests/fixtures/pytorch_dlrm`, made by `tools/pytorch_dlrm` on the project's own generated
//! data): `dlrm-he import` reads it, its float forward equals PyTorch's logits on every fixture
//! row, and quantized on the regenerated training split, its integer and `simulate` AUCs on the
//! fixture rows stay near PyTorch's while encrypted rows match the integer reference.

use dlrm::{Execution, Interaction, QuantizeConfig};
use fhe::{ClientKey, KeySeed, ParameterSetId};
use infer::{ServerModel, decrypt_response, encrypt_request};
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pytorch_dlrm")
        .join(name)
}

const TABLE_ROWS: [usize; 26] = [
    3, 3, 1817, 442, 3, 3, 4, 3, 3, 20, 3, 1583, 3, 3, 4, 1078, 3, 3, 3, 3, 1348, 3, 3, 58, 3, 30,
];

fn dlrm_he() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dlrm-he"))
}

fn run(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_pytorch_trained_reference_dlrm_imports_and_runs_encrypted() {
    let rows = datasets::read_encoded_rows(&fixture("rows.csv"), 13, &TABLE_ROWS, None).unwrap();
    assert!(rows.labelled);
    let rows = rows.rows;
    let pytorch: Vec<f64> = std::fs::read_to_string(fixture("logits.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(pytorch.len(), rows.rows());

    // `dlrm-he import`: the model directory holds the same model.
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("model");
    run(dlrm_he()
        .arg("import")
        .arg(fixture("model.safetensors"))
        .args(["--interaction", "dot", "--out"])
        .arg(&model_dir));
    let weights = dlrm::load_model(&model_dir).unwrap().weights;
    assert_eq!(
        weights,
        dlrm::import_pytorch(&fixture("model.safetensors"), Interaction::Dot).unwrap()
    );
    for (r, expected) in pytorch.iter().enumerate() {
        let logit = f64::from(
            weights
                .forward(rows.dense_row(r), rows.categorical_row(r))
                .unwrap(),
        );
        assert!(
            (logit - expected).abs() <= 1e-5,
            "row {r}: dlrm-he {logit}, PyTorch {expected}"
        );
    }

    // The training data again, from the generator commands of the fixture's README: the test
    // split starts with the fixture rows, the train split calibrates.
    let tsv = dir.path().join("synth.tsv");
    let prepared = dir.path().join("prep");
    run(dlrm_he()
        .args(["prepare", "synthetic-criteo", "--rows", "30000"])
        .args(["--scale", "0.0002", "--seed", "7", "--out"])
        .arg(&tsv));
    run(dlrm_he()
        .args(["prepare", "criteo", "--input"])
        .arg(&tsv)
        .arg("--out")
        .arg(&prepared));
    let dataset = datasets::PreparedDataset::open(&prepared).unwrap();
    let test = dataset.load_split("test").unwrap();
    assert_eq!(test.dense[..rows.dense.len()], rows.dense[..]);
    assert_eq!(
        test.categorical[..rows.categorical.len()],
        rows.categorical[..]
    );
    let train = dlrm::first_rows(&dataset.load_split("train").unwrap(), 4000);
    let pytorch_auc = dlrm::auc(&pytorch, &rows.labels);
    let fidelity = |config: &QuantizeConfig| {
        let (model, _) = dlrm::quantize(&weights, &train, config).unwrap();
        let passes = 16;
        let simulated: f64 = (0..passes)
            .map(|seed| {
                let logits = model.logits(&rows, Execution::Simulate { seed }).unwrap();
                dlrm::auc(&logits, &rows.labels)
            })
            .sum::<f64>()
            / passes as f64;
        let exact = dlrm::auc(
            &model.logits(&rows, Execution::Exact).unwrap(),
            &rows.labels,
        );
        eprintln!(
            "AUC: PyTorch {pytorch_auc:.4}, integer {exact:.4}, simulate (mean of {passes}) {simulated:.4}"
        );
        (model, exact, simulated)
    };

    // Fidelity on the fixture rows: the mean `simulate` AUC over 16 passes. With the default
    // settings (measured: PyTorch 0.8780, integer 0.8584, simulate 0.8567) the first top
    // layer's weights on the 351 pair features keep only a few integer levels each, and
    // rounding each to its nearest integer costs more than the 0.005 issue #16 asks for.
    let (_, exact, simulated) = fidelity(&QuantizeConfig::default());
    assert!(
        (simulated - pytorch_auc).abs() <= 0.03 && (exact - pytorch_auc).abs() <= 0.03,
        "integer {exact}, simulate {simulated} vs PyTorch {pytorch_auc}"
    );
    // Compensated rounding of those weights (GPTQ with the noise they amplify), with every
    // table size open to the width searches (no clean-box floor): measured integer 0.8798,
    // simulate 0.8793, within the 0.005 of issue #16 (docs/dlrm.md).
    let compensated = QuantizeConfig {
        compensated_rounding: true,
        min_clean_sigmas: 0.0,
        ..QuantizeConfig::default()
    };
    let (model, exact, simulated) = fidelity(&compensated);
    assert!(
        (simulated - pytorch_auc).abs() <= 0.005 && (exact - pytorch_auc).abs() <= 0.005,
        "compensated: integer {exact}, simulate {simulated} vs PyTorch {pytorch_auc}"
    );

    // Encrypted rows against the integer reference: within simulate's range of it.
    let server = ServerModel::new(&model, ParameterSetId::default()).unwrap();
    let client = ClientKey::from_seed(ParameterSetId::default(), KeySeed(31));
    let server_key = client.compressed_server_key(KeySeed(32)).decompress();
    for r in 0..2 {
        let (dense, ids) = (rows.dense_row(r), rows.categorical_row(r));
        let request = encrypt_request(&client, server.interface(), dense, ids).unwrap();
        let (response, _) = server.infer(&server_key, &request).unwrap();
        let numerator = decrypt_response(&client, server.interface(), &response).unwrap() as f64;
        let inputs = model.quantize_input(dense);
        let exact = model.forward(&inputs, ids).unwrap() as f64;
        let widest = (0..200)
            .map(|seed| {
                let trace = model
                    .trace(&inputs, ids, Execution::Simulate { seed }, r as u64)
                    .unwrap();
                (trace.logit_numerator - exact).abs()
            })
            .fold(0.0, f64::max);
        eprintln!(
            "row {r}: encrypted {numerator:.1}, reference {exact}, simulate's widest {widest:.1}"
        );
        assert!(
            (numerator - exact).abs() <= 1.5 * widest + 1.0,
            "row {r}: encrypted {numerator}, reference {exact}, simulate within {widest}"
        );
    }
}
