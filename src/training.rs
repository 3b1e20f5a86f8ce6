//! What the plaintext model commands (`train`, `compress`, `quantize`) share: a prepared
//! dataset's splits and the held-out split metrics are reported on, the training settings of a
//! preset, and training with a bar over each epoch.

use std::path::Path;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use datasets::{PreparedDataset, SplitData};
use dlrm::{Dlrm, EpochReport, ModelPreset, TrainConfig};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Clone, Copy, ValueEnum)]
pub enum PresetArg {
    Uci,
    CriteoSmall,
    CriteoDlrm,
    CriteoRank,
}

impl From<PresetArg> for ModelPreset {
    fn from(p: PresetArg) -> Self {
        match p {
            PresetArg::Uci => ModelPreset::Uci,
            PresetArg::CriteoSmall => ModelPreset::CriteoSmall,
            PresetArg::CriteoDlrm => ModelPreset::CriteoDlrm,
            PresetArg::CriteoRank => ModelPreset::CriteoRank,
        }
    }
}

/// Training settings shared by `train` and `compress` (defaults: the preset's).
#[derive(Args, Default)]
pub(crate) struct TrainSettings {
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long)]
    pub learning_rate: Option<f64>,
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Early-stopping patience in epochs on the validation split (0: none).
    #[arg(long)]
    pub patience: Option<usize>,
    #[arg(long)]
    pub seed: Option<u64>,
}

impl TrainSettings {
    pub(crate) fn resolve(&self, preset: ModelPreset) -> TrainConfig {
        let mut c = preset.train_config();
        c.epochs = self.epochs.unwrap_or(c.epochs);
        c.batch_size = self.batch_size.unwrap_or(c.batch_size);
        c.learning_rate = self.learning_rate.unwrap_or(c.learning_rate);
        c.weight_decay = self.weight_decay.unwrap_or(c.weight_decay);
        c.patience = self.patience.map_or(c.patience, |p| (p > 0).then_some(p));
        c.seed = self.seed.unwrap_or(c.seed);
        c
    }
}

/// The splits of a prepared dataset: train, validation (if any) and test (if any).
pub(crate) struct Splits {
    pub(crate) dataset: Option<PreparedDataset>,
    pub(crate) train: SplitData,
    pub(crate) validation: Option<SplitData>,
    pub(crate) test: Option<SplitData>,
}

impl Splits {
    pub(crate) fn prepared(&self) -> anyhow::Result<&PreparedDataset> {
        self.dataset
            .as_ref()
            .context("this command needs a prepared dataset (--data)")
    }

    /// Calibration rows from a file (evaluated on themselves: see [`holdout`]).
    pub(crate) fn calibration_only(rows: SplitData) -> Self {
        Splits {
            dataset: None,
            train: rows,
            validation: None,
            test: None,
        }
    }
}

pub(crate) fn open_splits(dir: &Path) -> anyhow::Result<Splits> {
    let dataset = PreparedDataset::open(dir)
        .with_context(|| format!("opening prepared dataset {}", dir.display()))?;
    let load = |name: &str| -> anyhow::Result<Option<SplitData>> {
        match dataset.manifest().split(name) {
            Some(_) => Ok(Some(dataset.load_split(name)?)),
            None => Ok(None),
        }
    };
    let train = load("train")?.context("the dataset has no train split")?;
    let validation = load("val")?;
    let test = load("test")?;
    Ok(Splits {
        dataset: Some(dataset),
        train,
        validation,
        test,
    })
}

pub(crate) fn table_rows(dataset: &PreparedDataset) -> Vec<usize> {
    dataset.manifest().table_sizes()
}

/// Prints epochs as they finish, with a bar over each epoch's batches.
pub(crate) struct EpochBar(ProgressBar);

impl EpochBar {
    pub(crate) fn new() -> Self {
        let style = ProgressStyle::with_template(
            "{msg:>10} [{bar:32}] {pos}/{len} batches {per_sec} eta {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> ");
        Self(ProgressBar::new(0).with_style(style))
    }
}

impl dlrm::TrainProgress for EpochBar {
    fn epoch_start(&mut self, epoch: usize, batches: usize) {
        self.0.reset();
        self.0.set_length(batches as u64);
        self.0.set_message(format!("epoch {epoch}"));
    }

    fn batch_done(&mut self, _loss: f32) {
        self.0.inc(1);
    }

    fn epoch_done(&mut self, r: &EpochReport) {
        self.0.finish_and_clear();
        let validation = r.validation.map_or(String::new(), |m| format!("  val {m}"));
        println!(
            "epoch {:>3}  train loss {:.4}  {:>8.0} samples/s{validation}",
            r.epoch, r.train_loss, r.samples_per_second
        );
    }
}

/// Trains `model` on the train split, early-stopping on the validation split, and says which
/// epoch's weights it kept.
pub(crate) fn train_model(
    model: &mut Dlrm,
    splits: &Splits,
    settings: &TrainConfig,
) -> anyhow::Result<dlrm::TrainReport> {
    let report = dlrm::train(
        model,
        &splits.train,
        splits.validation.as_ref(),
        settings,
        &mut EpochBar::new(),
    )?;
    println!("kept the weights of epoch {}", report.kept_epoch);
    Ok(report)
}

/// The held-out split metrics are reported on: test, else validation.
/// Calibration rows without a dataset are their own held-out rows when labelled.
pub(crate) fn holdout(splits: &Splits) -> anyhow::Result<(&'static str, &SplitData)> {
    let labels = &splits.train.labels;
    match (&splits.dataset, &splits.test, &splits.validation) {
        (None, ..) if labels.contains(&0) && labels.contains(&1) => {
            Ok(("calibration", &splits.train))
        }
        (None, ..) => bail!("the calibration rows have no labels of both classes"),
        (Some(_), Some(test), _) => Ok(("test", test)),
        (Some(_), None, Some(val)) => Ok(("val", val)),
        (Some(_), None, None) => bail!("the dataset has neither a test nor a val split"),
    }
}
