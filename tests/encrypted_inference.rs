//! End-to-end encrypted inference on real data: train, quantize, encrypt, run on ciphertexts,
//! decrypt, and compare with the integer reference and the float model. (The per-layer check of
//! every intermediate ciphertext is `crates/infer/tests/tiny_model.rs`.)
//!
//! Bootstraps read a neighbouring box with a small probability (the plan's `p(wrong)`), so a
//! few rows may differ from the reference by a box's worth; the bounds below leave room for
//! that and fail on anything systematic (wrong layout, scale or table).

use client::Client;
use datasets::{PreparedDataset, RowMapper, SplitData};
use dlrm::{Dlrm, DlrmWeights, ModelPreset, QuantizeConfig, QuantizedModel};
use fhe::{ClientKey, KeySeed, ParameterSetId, ServerKey};
use infer::ServerModel;

fn keys() -> (ClientKey, ServerKey) {
    let client = ClientKey::from_seed(ParameterSetId::default(), KeySeed(21));
    let server = client.compressed_server_key(KeySeed(22)).decompress();
    (client, server)
}

fn train(
    preset: ModelPreset,
    config: dlrm::ModelConfig,
    train: &SplitData,
    epochs: usize,
) -> DlrmWeights {
    let mut settings = preset.train_config();
    settings.epochs = epochs;
    let mut model = Dlrm::new(&config, settings.seed).unwrap();
    dlrm::train(&mut model, train, None, &settings, &mut dlrm::Silent).unwrap();
    model.to_weights().unwrap()
}

struct Outcome {
    reference: Vec<f64>,
    encrypted: Vec<f64>,
}

impl Outcome {
    fn class_agreement(&self) -> f64 {
        let same = self
            .reference
            .iter()
            .zip(&self.encrypted)
            .filter(|(r, e)| (**r > 0.0) == (**e > 0.0))
            .count();
        same as f64 / self.reference.len() as f64
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

fn run_rows(
    model: &QuantizedModel,
    client: &Client,
    server: &ServerModel,
    key: &ServerKey,
    rows: &[(Vec<f32>, Vec<u32>)],
) -> Outcome {
    let mut outcome = Outcome {
        reference: Vec::new(),
        encrypted: Vec::new(),
    };
    for (dense, ids) in rows {
        let request = client.encrypt(dense, ids).unwrap().to_bytes().unwrap();
        let (response, _) = server.infer_bytes(key, &request).unwrap();
        let prediction = client.decrypt_bytes(&response).unwrap();
        let reference = model.forward(&model.quantize_input(dense), ids).unwrap();
        outcome.reference.push(reference as f64);
        outcome.encrypted.push(prediction.logit_numerator);
    }
    outcome
}

#[test]
fn uci_test_split_encrypted_matches_the_reference_and_the_float_model() {
    let Some(raw) = datasets::shared::shared_file("data/heart/processed.cleveland.data") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prepared = dir.path().join("uci");
    datasets::uci::prepare(&raw, &prepared, &Default::default(), &datasets::NoProgress).unwrap();
    let dataset = PreparedDataset::open(&prepared).unwrap();
    let (train_split, test) = (
        dataset.load_split("train").unwrap(),
        dataset.load_split("test").unwrap(),
    );
    let preset = ModelPreset::Uci;
    let config = preset.config(train_split.dense_width(), &dataset.manifest().table_sizes());
    let weights = train(preset, config, &train_split, preset.train_config().epochs);
    let (model, _) = dlrm::quantize(&weights, &train_split, &QuantizeConfig::default()).unwrap();

    let server = ServerModel::new(&model, ParameterSetId::default()).unwrap();
    let (client_key, server_key) = keys();
    let client = Client::new(client_key, server.interface().clone()).unwrap();
    let rows: Vec<(Vec<f32>, Vec<u32>)> = (0..test.rows())
        .map(|r| (test.dense_row(r).to_vec(), test.categorical_row(r).to_vec()))
        .collect();
    let outcome = run_rows(&model, &client, &server, &server_key, &rows);

    let float: Vec<f64> = rows
        .iter()
        .map(|(d, i)| f64::from(weights.forward(d, i).unwrap()))
        .collect();
    let float_auc = dlrm::auc(&float, &test.labels);
    let encrypted_auc = dlrm::auc(&outcome.encrypted, &test.labels);
    let sd = model.output_noise_sd();
    eprintln!(
        "UCI test: {} rows, class agreement {:.3}, within 6 sd ({:.1}) {:.3}, AUC encrypted {encrypted_auc:.4} float {float_auc:.4}",
        rows.len(),
        outcome.class_agreement(),
        6.0 * sd,
        outcome.within(6.0 * sd)
    );
    assert!(outcome.class_agreement() >= 0.95);
    assert!(outcome.within(6.0 * sd) >= 0.8);
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
    let outcome = run_rows(&model, &client, &server, &server_key, &rows);
    let sd = model.output_noise_sd();
    eprintln!(
        "Criteo head test.tsv: reference {:?}, encrypted {:?}, output noise sd {sd:.1}",
        outcome.reference, outcome.encrypted
    );
    assert!(outcome.class_agreement() >= 0.75);
    assert!(outcome.within(6.0 * sd) >= 0.5);
    // A bad raw row is a clean error.
    assert!(client.encrypt_line(&mapper, b"1\t2\t3").is_err());
}
