//! `dlrm-he train|eval|compress|quantize`: the plaintext model commands.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use datasets::{PreparedDataset, SplitData};
use dlrm::{
    DatasetReference, DigitCode, Dlrm, DlrmWeights, EmbeddingKind, EmbeddingPolicy, EpochReport,
    Execution, FitOptions, Interaction, Metrics, ModelConfig, ModelPreset, QuantizedModel,
    TrainConfig,
};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Clone, Copy, ValueEnum)]
pub enum PresetArg {
    Uci,
    CriteoSmall,
    CriteoDlrm,
}

impl From<PresetArg> for ModelPreset {
    fn from(p: PresetArg) -> Self {
        match p {
            PresetArg::Uci => ModelPreset::Uci,
            PresetArg::CriteoSmall => ModelPreset::CriteoSmall,
            PresetArg::CriteoDlrm => ModelPreset::CriteoDlrm,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum TablesArg {
    /// The preset's own choice.
    Preset,
    /// Every table full (V x d).
    Full,
    /// Digit tables for every table larger than --max-inputs.
    Digits,
}

/// Training settings shared by `train` and `compress` (defaults: the preset's).
#[derive(Args, Default)]
pub struct TrainSettings {
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
    fn resolve(&self, preset: ModelPreset) -> TrainConfig {
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

#[derive(Args)]
pub struct TrainArgs {
    /// Prepared dataset directory (from `dlrm-he prepare`).
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long, value_enum, default_value_t = PresetArg::Uci)]
    pub preset: PresetArg,
    /// Architecture file (JSON `ModelConfig`) instead of a preset's architecture.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = TablesArg::Preset)]
    pub tables: TablesArg,
    /// With `--tables digits`: tables above this many rows get digit codes with at most this
    /// many one-hot inputs per lookup.
    #[arg(long, default_value_t = 256)]
    pub max_inputs: usize,
    #[command(flatten)]
    pub settings: TrainSettings,
    /// Model directory to write.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct EvalArgs {
    /// A model directory (from `train` or `compress`).
    #[arg(long, conflicts_with_all = ["quantized", "pytorch"])]
    pub model: Option<PathBuf>,
    /// A quantized model file (from `quantize`): runs the integer reference.
    #[arg(long, conflicts_with = "pytorch")]
    pub quantized: Option<PathBuf>,
    /// A PyTorch reference DLRM as safetensors (`bot_l.N`, `emb_l.N`, `top_l.N`).
    #[arg(long)]
    pub pytorch: Option<PathBuf>,
    /// Interaction of a `--pytorch` model.
    #[arg(long, value_enum, default_value_t = InteractionArg::Concat)]
    pub interaction: InteractionArg,
    /// With `--quantized`: add the bootstrap noise of the model's noise figures, seeded.
    #[arg(long)]
    pub simulate: Option<u64>,
    /// With `--quantized`: also report how often the bootstrap noise keeps each row's predicted
    /// class, the mean over this many seeded `simulate` passes (what an encrypted run's class
    /// agreement with the integer reference should be).
    #[arg(long, requires = "quantized")]
    pub class_runs: Option<u64>,
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long, default_value = "test")]
    pub split: String,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum InteractionArg {
    Concat,
    Dot,
}

#[derive(Args)]
pub struct CompressArgs {
    /// Model directory with full tables.
    #[arg(long)]
    pub model: PathBuf,
    /// The prepared dataset it was trained on (frequencies from train, AUC on test).
    #[arg(long)]
    pub data: PathBuf,
    /// Tables above this many rows get digit codes with at most this many one-hot inputs.
    #[arg(long, default_value_t = 256)]
    pub max_inputs: usize,
    /// One code for every compressed table instead of --max-inputs (with --digits).
    #[arg(long, requires = "digits")]
    pub base: Option<u32>,
    #[arg(long, requires = "base")]
    pub digits: Option<u32>,
    /// Fine-tune the compressed model for this many epochs (0: none).
    #[arg(long, default_value_t = 1)]
    pub finetune_epochs: usize,
    /// Also train the compressed architecture from scratch, for comparison.
    #[arg(long)]
    pub compare_scratch: bool,
    /// Preset whose training settings fine-tuning and the from-scratch run use.
    #[arg(long, value_enum, default_value_t = PresetArg::CriteoSmall)]
    pub preset: PresetArg,
    #[command(flatten)]
    pub settings: TrainSettings,
    /// Model directory to write (the fine-tuned model when fine-tuning).
    #[arg(long)]
    pub out: PathBuf,
}

/// The splits of a prepared dataset: train, validation (if any) and test (if any).
pub(crate) struct Splits {
    pub(crate) dataset: Option<PreparedDataset>,
    pub(crate) train: SplitData,
    pub(crate) validation: Option<SplitData>,
    pub(crate) test: Option<SplitData>,
}

impl Splits {
    fn prepared(&self) -> anyhow::Result<&PreparedDataset> {
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

fn table_rows(dataset: &PreparedDataset) -> Vec<usize> {
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

fn train_model(
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

pub fn train(args: TrainArgs) -> anyhow::Result<()> {
    let splits = open_splits(&args.data)?;
    let preset = ModelPreset::from(args.preset);
    let rows = table_rows(splits.prepared()?);
    let dense = splits.train.dense_width();
    let config: ModelConfig = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        None => match args.tables {
            TablesArg::Preset => preset.config(dense, &rows),
            TablesArg::Full => preset.config_with_policy(dense, &rows, EmbeddingPolicy::Full),
            TablesArg::Digits => preset.config_with_policy(
                dense,
                &rows,
                EmbeddingPolicy::Digits {
                    max_inputs: args.max_inputs,
                },
            ),
        },
    };
    config.validate()?;
    let settings = args.settings.resolve(preset);
    println!(
        "{} activations, {} embedding parameters, {} training rows",
        config.activations(),
        config.embedding_parameters(),
        splits.train.rows()
    );
    let mut model = Dlrm::new(&config, settings.seed)?;
    let report = train_model(&mut model, &splits, &settings)?;
    let (name, holdout) = holdout(&splits)?;
    println!("{name}: {}", dlrm::evaluate(&model, holdout)?);
    let reference = DatasetReference::of(splits.prepared()?);
    dlrm::save_model(&args.out, &model.to_weights()?, Some(&reference))?;
    let report_path = args.out.join("train_report.json");
    std::fs::write(&report_path, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", report_path.display()))?;
    println!("wrote {}", args.out.display());
    Ok(())
}

pub fn eval(args: EvalArgs) -> anyhow::Result<()> {
    let dataset = PreparedDataset::open(&args.data)?;
    let data = dataset.load_split(&args.split)?;
    let metrics = if let Some(path) = &args.quantized {
        let model = QuantizedModel::load(path)?;
        let execution = args
            .simulate
            .map_or(Execution::Exact, |seed| Execution::Simulate { seed });
        if let Some(runs) = args.class_runs {
            let agreement = model.simulated_class_agreement(&data, runs)?;
            println!(
                "{}: simulate keeps the integer reference's class on {:.2}% of rows (mean of {runs} runs, {:.2} rows per pass differ)",
                args.split,
                100.0 * agreement,
                (1.0 - agreement) * data.rows() as f64
            );
        }
        Metrics::from_logits(&model.logits(&data, execution)?, &data.labels)
    } else {
        let weights = match (&args.model, &args.pytorch) {
            (Some(dir), _) => dlrm::load_model(dir)?.weights,
            (None, Some(file)) => {
                let interaction = match args.interaction {
                    InteractionArg::Concat => Interaction::Concat,
                    InteractionArg::Dot => Interaction::Dot,
                };
                dlrm::import_pytorch(file, interaction)?
            }
            (None, None) => bail!("give --model, --quantized or --pytorch"),
        };
        dlrm::evaluate(&Dlrm::from_weights(&weights)?, &data)?
    };
    println!("{}: {metrics}", args.split);
    Ok(())
}

pub fn compress(args: CompressArgs) -> anyhow::Result<()> {
    let splits = open_splits(&args.data)?;
    let saved = dlrm::load_model(&args.model)?;
    let full = saved.weights;
    let targets: Vec<EmbeddingKind> = full
        .config
        .tables
        .iter()
        .map(|t| match (args.base, args.digits) {
            (Some(base), Some(digits)) if t.rows > base as usize => {
                DigitCode::new(base, digits, t.rows).map(EmbeddingKind::Digits)
            }
            (Some(_), Some(_)) => Ok(EmbeddingKind::Full),
            _ => Ok(EmbeddingPolicy::Digits {
                max_inputs: args.max_inputs,
            }
            .kind_for(t.rows)),
        })
        .collect::<Result<_, _>>()?;
    let frequencies = dlrm::id_frequencies(&splits.train, &table_rows(splits.prepared()?))?;
    let (compressed, fits) = dlrm::compress(&full, &frequencies, &targets, &FitOptions::default())?;
    let (before, after) = fits.iter().fold((0, 0), |(b, a), f| {
        (b + f.parameters_before, a + f.parameters_after)
    });
    for f in &fits {
        println!(
            "table {:>2}: base {:>4} x {} digits, weighted relative error {:.4} ({} sweeps)",
            f.table, f.code.base, f.code.digits, f.relative_error, f.sweeps
        );
    }
    let total_before = full.config.embedding_parameters();
    let total_after = compressed.config.embedding_parameters();
    println!(
        "compressed tables: {before} -> {after} parameters; all tables {total_before} -> {total_after} ({:.1}x)",
        total_before as f64 / total_after.max(1) as f64
    );
    let (name, holdout) = holdout(&splits)?;
    let auc = |w: &DlrmWeights| -> anyhow::Result<Metrics> {
        Ok(dlrm::evaluate(&Dlrm::from_weights(w)?, holdout)?)
    };
    println!("{name} full:                     {}", auc(&full)?);
    println!("{name} compressed:               {}", auc(&compressed)?);
    let mut result = compressed.clone();
    let preset = ModelPreset::from(args.preset);
    if args.finetune_epochs > 0 {
        let mut settings = args.settings.resolve(preset);
        settings.epochs = args.finetune_epochs;
        let mut model = Dlrm::from_weights(&compressed)?;
        train_model(&mut model, &splits, &settings)?;
        result = model.to_weights()?;
        println!("{name} compressed + fine-tuned: {}", auc(&result)?);
    }
    if args.compare_scratch {
        let settings = args.settings.resolve(preset);
        let mut model = Dlrm::new(&compressed.config, settings.seed)?;
        train_model(&mut model, &splits, &settings)?;
        println!(
            "{name} digits from scratch:     {}",
            dlrm::evaluate(&model, holdout)?
        );
    }
    dlrm::save_model(&args.out, &result, saved.dataset.as_ref())?;
    println!("wrote {}", args.out.display());
    Ok(())
}
