//! Acceptance on UCI Cleveland (the fixed stratified split of `dlrm-he prepare uci`): the `uci`
//! preset reaches AUC >= 0.90 and accuracy >= 0.83 on the test split, and its integer model,
//! exact and with simulated bootstrap noise, stays within 0.01 AUC; a wider embedding budget never
//! makes the quantizer's choice track the float model worse.

use datasets::PreparedDataset;
use dlrm::{Dlrm, Execution, Metrics, ModelPreset, QuantizeConfig};

#[test]
fn uci_preset_meets_the_acceptance_thresholds() {
    let Some(raw) = datasets::shared::shared_file("data/heart/processed.cleveland.data") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prepared = dir.path().join("uci");
    datasets::uci::prepare(&raw, &prepared, &Default::default(), &datasets::NoProgress).unwrap();
    let dataset = PreparedDataset::open(&prepared).unwrap();
    let train = dataset.load_split("train").unwrap();
    let test = dataset.load_split("test").unwrap();
    let table_rows = dataset.manifest().table_sizes();

    let preset = ModelPreset::Uci;
    let config = preset.config(train.dense_width(), &table_rows);
    assert!(
        config.activations() <= 48,
        "{} activations",
        config.activations()
    );
    let mut model = Dlrm::new(&config, preset.train_config().seed).unwrap();
    dlrm::train(
        &mut model,
        &train,
        None,
        &preset.train_config(),
        &mut dlrm::Silent,
    )
    .unwrap();
    let float = dlrm::evaluate(&model, &test).unwrap();
    eprintln!("float   {float}");
    assert!(float.auc >= 0.90, "{float}");
    assert!(float.accuracy >= 0.83, "{float}");

    let weights = model.to_weights().unwrap();
    // The plain-data copy of the weights computes the same logits as the trained model.
    let batched = dlrm::predict_logits(&model, &test).unwrap();
    for (r, logit) in batched.iter().enumerate() {
        let plain = weights
            .forward(test.dense_row(r), test.categorical_row(r))
            .unwrap();
        assert!(
            (f64::from(plain) - logit).abs() < 1e-4,
            "row {r}: {plain} vs {logit}"
        );
    }
    let (quantized, choices) =
        dlrm::quantize(&weights, &train, &QuantizeConfig::default()).unwrap();
    eprintln!("{choices:#?}");
    for (execution, name) in [
        (Execution::Exact, "integer"),
        (Execution::Simulate { seed: 1 }, "simulate"),
    ] {
        let logits = quantized.logits(&test, execution).unwrap();
        let metrics = Metrics::from_logits(&logits, &test.labels);
        eprintln!("{name:8}{metrics}");
        assert!(
            (metrics.auc - float.auc).abs() <= 0.01,
            "{name}: {metrics} vs float {float}"
        );
    }

    // The embedding width is chosen for fidelity to the float model: allowing more bits never
    // makes the chosen model track the float logits worse on the calibration rows.
    let logit_error = |model: &dlrm::QuantizedModel| -> f64 {
        (0..train.rows())
            .map(|r| {
                let (dense, ids) = (train.dense_row(r), train.categorical_row(r));
                let integer = model.logit(dense, ids, Execution::Exact, 0).unwrap();
                let float = f64::from(weights.forward(dense, ids).unwrap());
                (integer - float).powi(2)
            })
            .sum::<f64>()
    };
    let mut previous = f64::INFINITY;
    for bits in 2..=8 {
        let config = QuantizeConfig {
            embedding_bits: bits,
            ..QuantizeConfig::default()
        };
        let (model, _) = dlrm::quantize(&weights, &train, &config).unwrap();
        assert!(model.tables.iter().all(|t| t.value_bits <= bits));
        let error = logit_error(&model);
        eprintln!("embedding bits <= {bits}: squared logit error {error:.3}");
        assert!(error <= previous * (1.0 + 1e-9), "{error} after {previous}");
        previous = error;
    }
}
