//! The UCI Cleveland data prepared, and models trained on it, for the encrypted tests.
#![allow(dead_code)] // each test binary uses part of it

use std::path::PathBuf;

use datasets::{PreparedDataset, SplitData};
use dlrm::{Dlrm, DlrmWeights, ModelPreset, QuantizeConfig, QuantizedModel};

/// A model of `config` trained on `train` for `epochs` with the preset's settings.
pub(crate) fn train(
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

/// The UCI Cleveland data prepared, a model trained on its train split and quantized.
pub(crate) struct Uci {
    pub dir: tempfile::TempDir,
    pub prepared: PathBuf,
    pub test: SplitData,
    pub weights: DlrmWeights,
    pub model: QuantizedModel,
}

impl Uci {
    /// None (with a printed reason) when `../shared` is absent.
    pub(crate) fn train() -> Option<Self> {
        let raw = datasets::shared::shared_file("data/heart/processed.cleveland.data")?;
        let dir = tempfile::tempdir().unwrap();
        let prepared = dir.path().join("uci");
        datasets::uci::prepare(&raw, &prepared, &Default::default(), &datasets::NoProgress)
            .unwrap();
        let dataset = PreparedDataset::open(&prepared).unwrap();
        let (train_split, test) = (
            dataset.load_split("train").unwrap(),
            dataset.load_split("test").unwrap(),
        );
        let preset = ModelPreset::Uci;
        let config = preset.config(train_split.dense_width(), &dataset.manifest().table_sizes());
        let weights = train(preset, config, &train_split, preset.train_config().epochs);
        let (model, _) =
            dlrm::quantize(&weights, &train_split, &QuantizeConfig::default()).unwrap();
        Some(Uci {
            dir,
            prepared,
            test,
            weights,
            model,
        })
    }

    pub(crate) fn rows(&self, limit: usize) -> Vec<(Vec<f32>, Vec<u32>)> {
        (0..self.test.rows().min(limit))
            .map(|r| {
                (
                    self.test.dense_row(r).to_vec(),
                    self.test.categorical_row(r).to_vec(),
                )
            })
            .collect()
    }
}
