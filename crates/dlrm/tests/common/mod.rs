//! What the UCI tests share: the prepared splits and a model of the `uci` preset's sizes.

use datasets::{PreparedDataset, SplitData};
use dlrm::{Dlrm, Execution, Interaction, Metrics, ModelPreset, QuantizedModel};

/// The prepared UCI splits (train, test) and a model of the `uci` preset's sizes with
/// `interaction`, trained on train with the preset's settings, or `None` without `../shared`.
pub(crate) fn trained_uci(interaction: Interaction) -> Option<(SplitData, SplitData, Dlrm)> {
    let raw = datasets::shared::shared_file("data/heart/processed.cleveland.data")?;
    let dir = tempfile::tempdir().unwrap();
    let prepared = dir.path().join("uci");
    datasets::uci::prepare(&raw, &prepared, &Default::default(), &datasets::NoProgress).unwrap();
    let dataset = PreparedDataset::open(&prepared).unwrap();
    let train = dataset.load_split("train").unwrap();
    let test = dataset.load_split("test").unwrap();
    let preset = ModelPreset::Uci;
    let mut config = preset.config(train.dense_width(), &dataset.manifest().table_sizes());
    config.interaction = interaction;
    let mut model = Dlrm::new(&config, preset.train_config().seed).unwrap();
    dlrm::train(
        &mut model,
        &train,
        None,
        &preset.train_config(),
        &mut dlrm::Silent,
    )
    .unwrap();
    Some((train, test, model))
}

/// Asserts that `model`'s AUC on `test`, exact and with simulated noise (seed 1), is within
/// `tolerance` of the float model's.
pub(crate) fn assert_auc_close(
    model: &QuantizedModel,
    test: &SplitData,
    float: &Metrics,
    tolerance: f64,
) {
    for (execution, name) in [
        (Execution::Exact, "integer"),
        (Execution::Simulate { seed: 1 }, "simulate"),
    ] {
        let logits = model.logits(test, execution).unwrap();
        let metrics = Metrics::from_logits(&logits, &test.labels);
        eprintln!("{name:8}{metrics}");
        assert!(
            (metrics.auc - float.auc).abs() <= tolerance,
            "{name}: {metrics} vs float {float}"
        );
    }
}
