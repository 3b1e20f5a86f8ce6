//! End-to-end encrypted inference on real data: train, quantize, encrypt, run on ciphertexts,
//! decrypt, and compare with the integer reference and the float model. (The per-layer check of
//! every intermediate ciphertext is `crates/infer/tests/tiny_model.rs`.)
//!
//! Bootstraps read a neighbouring box with a small probability, so some rows differ from the
//! reference by a box's worth. The reference's `simulate` mode predicts how often: the UCI test
//! draws many simulated runs per row and requires the encrypted run to be as close to the
//! reference as the simulation says it should be (a one-sided binomial bound, five standard
//! deviations), which fails on anything systematic (wrong layout, scale or table) and not on luck.

mod common;

use std::time::Duration;

use client::{Client, KeyDirectory, ServiceClient};
use common::uci::{Uci, train};
use common::{ServeProcess, dlrm_he};
use datasets::{PreparedDataset, RowMapper};
use dlrm::{Execution, ModelPreset, QuantizeConfig, QuantizedModel};
use fhe::{ClientKey, KeySeed, ParameterSetId, ServerKey};
use infer::ServerModel;

fn keys() -> (ClientKey, ServerKey) {
    let client = ClientKey::from_seed(ParameterSetId::default(), KeySeed(21));
    let server = client.compressed_server_key(KeySeed(22)).decompress();
    (client, server)
}

struct Outcome {
    reference: Vec<f64>,
    encrypted: Vec<f64>,
}

impl Outcome {
    fn class_agreement(&self) -> f64 {
        dlrm::class_agreement(&self.reference, &self.encrypted)
    }

    /// Fraction of rows whose encrypted numerator is within `bound` of the reference.
    fn within(&self, bound: f64) -> f64 {
        let close = self
            .reference
            .iter()
            .zip(&self.encrypted)
            .filter(|(r, e)| (**r - **e).abs() <= bound)
            .count();
        close as f64 / self.reference.len() as f64
    }
}

/// Per row, the numerator's deviation from the reference in `runs` seeded `simulate` runs.
fn simulated_errors(model: &QuantizedModel, rows: &[(Vec<f32>, Vec<u32>)]) -> Vec<Vec<f64>> {
    let runs = 64u64;
    rows.iter()
        .enumerate()
        .map(|(r, (dense, ids))| {
            let input = model.quantize_input(dense);
            let exact = model.forward(&input, ids).unwrap() as f64;
            (0..runs)
                .map(|seed| {
                    let execution = Execution::Simulate { seed };
                    let noisy = model.trace(&input, ids, execution, r as u64).unwrap();
                    noisy.logit_numerator - exact
                })
                .collect()
        })
        .collect()
}

/// What `simulate` predicts for [`Outcome::within`]: the expected fraction of rows within
/// `bound` of the reference and its binomial standard deviation.
fn simulated_within(errors: &[Vec<f64>], bound: f64) -> (f64, f64) {
    let (mut mean, mut variance) = (0.0, 0.0);
    for row in errors {
        let p = row.iter().filter(|e| e.abs() <= bound).count() as f64 / row.len() as f64;
        mean += p;
        variance += p * (1.0 - p);
    }
    let n = errors.len() as f64;
    (mean / n, variance.sqrt() / n)
}

/// Encrypts each row, runs it through `serve` (request bytes to response bytes: in process or
/// over HTTP), decrypts, and records the reference beside it.
fn run_rows(
    model: &QuantizedModel,
    client: &Client,
    rows: &[(Vec<f32>, Vec<u32>)],
    serve: impl Fn(&[u8]) -> Vec<u8>,
) -> Outcome {
    let mut outcome = Outcome {
        reference: Vec::new(),
        encrypted: Vec::new(),
    };
    for (dense, ids) in rows {
        let request = client.encrypt(dense, ids).unwrap().to_bytes().unwrap();
        let prediction = client.decrypt_bytes(&serve(&request)).unwrap();
        let reference = model.forward(&model.quantize_input(dense), ids).unwrap();
        outcome.reference.push(reference as f64);
        outcome.encrypted.push(prediction.logit_numerator as f64);
    }
    outcome
}

/// Rows within twice the largest deviation `simulate` shows for them (for sets too small for
/// a rate; a wrong layout, scale or table would land outside).
fn rows_within_simulated_range(
    model: &QuantizedModel,
    rows: &[(Vec<f32>, Vec<u32>)],
    outcome: &Outcome,
) -> usize {
    let errors = simulated_errors(model, rows);
    (0..rows.len())
        .filter(|&r| {
            let bound = 2.0
                * errors[r]
                    .iter()
                    .fold(model.output_noise_sd(), |m, e| m.max(e.abs()));
            (outcome.encrypted[r] - outcome.reference[r]).abs() <= bound
        })
        .count()
}

#[test]
fn uci_test_split_encrypted_matches_the_reference_and_the_float_model() {
    let Some(uci) = Uci::train() else {
        return;
    };
    let (model, weights, test) = (&uci.model, &uci.weights, &uci.test);
    let server = ServerModel::new(model, ParameterSetId::default()).unwrap();
    let (client_key, server_key) = keys();
    let client = Client::new(client_key, server.interface().clone()).unwrap();
    let rows = uci.rows(usize::MAX);
    let outcome = run_rows(model, &client, &rows, |request| {
        server.infer_bytes(&server_key, request).unwrap().0
    });

    let float: Vec<f64> = rows
        .iter()
        .map(|(d, i)| f64::from(weights.forward(d, i).unwrap()))
        .collect();
    let float_auc = dlrm::auc(&float, &test.labels);
    let encrypted_auc = dlrm::auc(&outcome.encrypted, &test.labels);
    let bound = 6.0 * model.output_noise_sd();
    let errors = simulated_errors(model, &rows);
    let (expected, spread) = simulated_within(&errors, bound);
    // The acceptance thresholds hold for what an encrypted run is expected to give: the mean
    // over seeded `simulate` passes (deterministic, so this cannot pass or fail by luck).
    let runs = 64;
    let predicted_agreement = model.simulated_class_agreement(test, runs).unwrap();
    let predicted_auc = (0..runs)
        .map(|seed| {
            let logits = model.logits(test, Execution::Simulate { seed }).unwrap();
            dlrm::auc(&logits, &test.labels)
        })
        .sum::<f64>()
        / runs as f64;
    eprintln!(
        "UCI test: {} rows, class agreement {:.3} (simulate predicts {predicted_agreement:.4}), within {bound:.1} of the reference {:.3} (simulate predicts {expected:.3} +- {spread:.3}), AUC encrypted {encrypted_auc:.4}, simulate mean {predicted_auc:.4}, float {float_auc:.4}",
        rows.len(),
        outcome.class_agreement(),
        outcome.within(bound)
    );
    assert!(predicted_agreement >= 0.99, "{predicted_agreement}");
    assert!(
        (predicted_auc - float_auc).abs() <= 0.005,
        "{predicted_auc} vs {float_auc}"
    );
    // And this encrypted run is one such pass: within five binomial deviations of the
    // prediction (per row, the class is kept with the probability `simulate` shows).
    let flip_variance: f64 = rows
        .iter()
        .enumerate()
        .map(|(r, (dense, ids))| {
            let input = model.quantize_input(dense);
            let kept = model
                .simulated_class_kept(&input, ids, r as u64, 0..runs)
                .unwrap();
            kept * (1.0 - kept)
        })
        .sum();
    let n = rows.len() as f64;
    assert!(
        outcome.class_agreement() >= predicted_agreement - 5.0 * flip_variance.sqrt() / n - 1.0 / n
    );
    assert!(outcome.within(bound) >= expected - 5.0 * spread - 1.0 / n);
    assert!((encrypted_auc - float_auc).abs() <= 0.02);
}

#[test]
fn criteo_head_raw_rows_run_encrypted_with_digit_tables() {
    let (Some(train_tsv), Some(test_tsv)) = (
        datasets::shared::shared_file("data/criteo/kaggle_train_head8000/train.tsv"),
        datasets::shared::shared_file("data/criteo/kaggle_train_head8000/test.tsv"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prepared = dir.path().join("criteo");
    let options = datasets::criteo::CriteoOptions {
        min_count: 2,
        ..Default::default()
    };
    datasets::criteo::prepare(&train_tsv, &prepared, &options, &datasets::NoProgress).unwrap();
    let dataset = PreparedDataset::open(&prepared).unwrap();
    let train_split = dataset.load_split("train").unwrap();
    let preset = ModelPreset::CriteoSmall;
    let config = preset.config(train_split.dense_width(), &dataset.manifest().table_sizes());
    assert!(
        config
            .tables
            .iter()
            .any(|t| matches!(t.kind, dlrm::EmbeddingKind::Digits(_)))
    );
    let weights = train(preset, config, &train_split, 1);
    let (model, _) = dlrm::quantize(&weights, &train_split, &QuantizeConfig::default()).unwrap();

    let server = ServerModel::new(&model, ParameterSetId::default()).unwrap();
    let (client_key, server_key) = keys();
    let client = Client::new(client_key, server.interface().clone()).unwrap();
    let mapper = RowMapper::open(&prepared).unwrap();
    let text = std::fs::read(&test_tsv).unwrap();
    let rows: Vec<(Vec<f32>, Vec<u32>)> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .take(4)
        .map(|line| {
            let (_, row) = client.encrypt_line(&mapper, line).unwrap();
            (row.dense, row.ids)
        })
        .collect();
    let outcome = run_rows(&model, &client, &rows, |request| {
        server.infer_bytes(&server_key, request).unwrap().0
    });
    eprintln!(
        "Criteo head test.tsv: reference {:?}, encrypted {:?}",
        outcome.reference, outcome.encrypted
    );
    let close = rows_within_simulated_range(&model, &rows, &outcome);
    assert!(outcome.class_agreement() >= 0.75);
    assert!(
        close + 1 >= rows.len(),
        "{close} of {} rows within bounds",
        rows.len()
    );
    // A bad raw row is a clean error.
    assert!(client.encrypt_line(&mapper, b"1\t2\t3").is_err());
}

#[test]
fn uci_rows_through_the_service_match_the_reference() {
    let Some(uci) = Uci::train() else {
        return;
    };
    let model_path = uci.dir.path().join("q-uci.json");
    uci.model.save(&model_path).unwrap();
    let key_dir = uci.dir.path().join("keys");
    KeyDirectory::generate(&key_dir, ParameterSetId::default()).unwrap();
    let keys = KeyDirectory::open(&key_dir).unwrap();
    let server = ServeProcess::start(&model_path, &uci.dir.path().join("store"));

    let http = ServiceClient::new(&server.url(), Duration::from_secs(120)).unwrap();
    let key_id = http
        .register_key(&keys.load_server_key().unwrap())
        .unwrap()
        .key_id;
    let interface = http.model_interface("q-uci").unwrap();
    let client = Client::new(keys.load_client_key().unwrap(), interface).unwrap();
    let rows = uci.rows(12);
    let outcome = run_rows(&uci.model, &client, &rows, |request| {
        http.infer("q-uci", &key_id, request).unwrap().bytes
    });
    let close = rows_within_simulated_range(&uci.model, &rows, &outcome);
    eprintln!(
        "UCI through the service: reference {:?}, encrypted {:?}, {close} within range",
        outcome.reference, outcome.encrypted
    );
    assert!(
        close + 1 >= rows.len(),
        "{close} of {} rows within range",
        rows.len()
    );
    assert!(outcome.class_agreement() >= 0.9);

    // The command line's client of the same service.
    let output = dlrm_he()
        .args([
            "infer",
            "--server",
            &server.url(),
            "--split",
            "test",
            "--rows",
            "3",
            "--model",
        ])
        .arg(&model_path)
        .arg("--keys")
        .arg(&key_dir)
        .arg("--data")
        .arg(&uci.prepared)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("already registered") && stdout.contains("fidelity:"),
        "{stdout}"
    );
}
