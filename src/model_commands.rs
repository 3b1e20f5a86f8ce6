//! `dlrm-he train|eval|compress|quantize`: the plaintext model commands.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use datasets::{PreparedDataset, SplitData};
use dlrm::{
    DatasetReference, DigitCode, Dlrm, DlrmWeights, EmbeddingKind, EmbeddingPolicy, EpochReport,
    Execution, FitOptions, Interaction, Metrics, ModelConfig, ModelPreset, QuantizeConfig,
    QuantizedModel, TrainConfig,
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

#[derive(Args)]
pub struct QuantizeArgs {
    #[arg(long)]
    pub model: PathBuf,
    /// Prepared dataset: calibration on train, evaluation on test.
    #[arg(
        long,
        required_unless_present = "calibration",
        conflicts_with = "calibration"
    )]
    pub data: Option<PathBuf>,
    /// For a model without a prepared dataset (for example from `dlrm-he import`): calibration
    /// rows in the model's input form, CSV with a header: optional `label`, the dense values,
    /// one id per table (docs/dlrm.md). Labelled rows are also evaluated.
    #[arg(long)]
    pub calibration: Option<PathBuf>,
    /// Quantized model file to write (JSON).
    #[arg(long)]
    pub out: PathBuf,
    /// Calibrate on at most this many training rows.
    #[arg(long, default_value_t = 20_000)]
    pub calibration_rows: usize,
    #[arg(long)]
    pub input_bits: Option<u32>,
    #[arg(long)]
    pub max_weight_bits: Option<u32>,
    #[arg(long)]
    pub activation_bits: Option<u32>,
    #[arg(long)]
    pub max_lut_bits: Option<u32>,
    /// Most bits of the embedding entries (default 8); the width that tracks the float model
    /// best on the calibration rows is chosen up to this.
    #[arg(long)]
    pub embedding_bits: Option<u32>,
    /// Extra bits of the first top layer's weights on embedding columns (default 6; 0 puts
    /// every column of that layer on one weight grid).
    #[arg(long)]
    pub lookup_headroom_bits: Option<u32>,
    /// Dot models: bits of the squares at which the embedding width is chosen (default 7);
    /// widths within 3 bits of it are then tried.
    #[arg(long)]
    pub square_bits: Option<u32>,
    /// Every bootstrap keeps half a box at least this many noise standard deviations wide
    /// (default 0.8). Larger values give coarser boxes that are misread less often (3: at most
    /// 2.7e-3 per box centre); accumulators between centres are read either way, so finer
    /// boxes usually keep the encrypted logits closer to the reference.
    #[arg(long)]
    pub clean_sigmas: Option<f64>,
    /// Epochs of quantization-aware fine-tuning after post-training quantization (0: none).
    /// Each epoch trains with the integer model's rounding in the forward pass and
    /// re-quantizes; the epoch whose integer model has the lowest validation log loss is kept
    /// (the calibration rows stand in where the dataset has no val split).
    #[arg(long, default_value_t = 0)]
    pub qat_epochs: usize,
    /// AdamW step size of quantization-aware fine-tuning.
    #[arg(long, default_value_t = 1e-4)]
    pub qat_learning_rate: f64,
    /// With `--qat-epochs`: also save the fine-tuned float model (the integer model's float
    /// counterpart) to this directory.
    #[arg(long)]
    pub finetuned_out: Option<PathBuf>,
    /// Seed of the simulated-noise evaluation.
    #[arg(long, default_value_t = 1)]
    pub simulate_seed: u64,
}

/// A width search's trials as `bits error, ...`.
fn width_trials(trials: &[dlrm::WidthTrial]) -> String {
    let trials: Vec<String> = trials
        .iter()
        .map(|t| format!("{} {:.4}", t.bits, t.logit_mse))
        .collect();
    trials.join(", ")
}

/// The splits of a prepared dataset: train, validation (if any) and test (if any).
struct Splits {
    dataset: Option<PreparedDataset>,
    train: SplitData,
    validation: Option<SplitData>,
    test: Option<SplitData>,
}

impl Splits {
    fn prepared(&self) -> anyhow::Result<&PreparedDataset> {
        self.dataset
            .as_ref()
            .context("this command needs a prepared dataset (--data)")
    }

    /// Calibration rows from a file, evaluated on themselves when they are labelled.
    fn calibration_only(rows: SplitData) -> Self {
        let labelled = rows.labels.contains(&0) && rows.labels.contains(&1);
        Splits {
            dataset: None,
            test: labelled.then(|| rows.clone()),
            train: rows,
            validation: None,
        }
    }
}

fn open_splits(dir: &Path) -> anyhow::Result<Splits> {
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
struct EpochBar(ProgressBar);

impl EpochBar {
    fn new() -> Self {
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
fn holdout(splits: &Splits) -> anyhow::Result<(&'static str, &SplitData)> {
    match (&splits.test, &splits.validation) {
        (Some(test), _) => Ok(("test", test)),
        (None, Some(val)) => Ok(("val", val)),
        (None, None) => bail!("the dataset has neither a test nor a val split"),
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

pub fn quantize(args: QuantizeArgs) -> anyhow::Result<()> {
    let saved = dlrm::load_model(&args.model)?;
    let weights = saved.weights;
    if args.finetuned_out.is_some() && args.qat_epochs == 0 {
        bail!("--finetuned-out needs --qat-epochs");
    }
    let splits = match (&args.data, &args.calibration) {
        (Some(data), _) => open_splits(data)?,
        (None, Some(file)) => {
            if args.qat_epochs > 0 {
                bail!("--qat-epochs trains on a prepared dataset's train split: give --data");
            }
            let c = &weights.config;
            let rows: Vec<usize> = c.tables.iter().map(|t| t.rows).collect();
            let rows = datasets::read_encoded_rows(file, c.dense_features, &rows, None)?.rows;
            println!("calibrating on {} rows of {}", rows.rows(), file.display());
            Splits::calibration_only(rows)
        }
        (None, None) => bail!(
            "quantizing needs calibration rows: give --data (a prepared dataset) or --calibration (a CSV of input rows)"
        ),
    };
    let defaults = QuantizeConfig::default();
    let config = QuantizeConfig {
        input_bits: args.input_bits.unwrap_or(defaults.input_bits),
        max_weight_bits: args.max_weight_bits.unwrap_or(defaults.max_weight_bits),
        activation_bits: args.activation_bits.unwrap_or(defaults.activation_bits),
        max_lut_bits: args.max_lut_bits.unwrap_or(defaults.max_lut_bits),
        embedding_bits: args.embedding_bits.unwrap_or(defaults.embedding_bits),
        lookup_headroom_bits: args
            .lookup_headroom_bits
            .unwrap_or(defaults.lookup_headroom_bits),
        square_bits: args.square_bits.unwrap_or(defaults.square_bits),
        min_clean_sigmas: args.clean_sigmas.unwrap_or(defaults.min_clean_sigmas),
        ..defaults
    };
    let calibration = dlrm::first_rows(&splits.train, args.calibration_rows);
    // Fine-tuning's epoch 0 is the post-training quantization: it is not run twice.
    let (model, report, finetuned) = if args.qat_epochs == 0 {
        let (model, report) = dlrm::quantize(&weights, &calibration, &config)?;
        (model, report, None)
    } else {
        let qat = dlrm::QatConfig {
            quantize: config.clone(),
            train: TrainConfig {
                epochs: args.qat_epochs,
                batch_size: 256,
                learning_rate: args.qat_learning_rate,
                weight_decay: 0.0,
                patience: None,
                seed: 1,
            },
        };
        let validation = splits.validation.as_ref().unwrap_or(&calibration);
        let result = dlrm::finetune_quantized(
            &weights,
            &splits.train,
            &calibration,
            validation,
            &qat,
            &mut EpochBar::new(),
        )?;
        for e in &result.epochs {
            println!(
                "quantization-aware epoch {}: integer model on {}: {}",
                e.epoch,
                if splits.validation.is_some() {
                    "val"
                } else {
                    "calibration rows"
                },
                e.integer_validation
            );
        }
        println!("kept the integer model of epoch {}", result.kept_epoch);
        if let Some(dir) = &args.finetuned_out {
            dlrm::save_model(dir, &result.weights, saved.dataset.as_ref())?;
            println!("wrote the fine-tuned float model to {}", dir.display());
        }
        (result.model, result.report, Some(result.weights))
    };
    if let Some(kept) = report.embedding_bits {
        println!(
            "embedding width: squared logit error by bits: {}; kept {kept} bits",
            width_trials(&report.embedding_widths)
        );
    }
    if let Some(square) = &report.square {
        println!(
            "dot interaction: square width: squared logit error by bits: {}; square table {} bits, boxes of 2^{}, unit {:.2}{}, wrong-box rate {:.4}",
            width_trials(&report.square_widths),
            square.lut_bits,
            square.box_shift,
            square.square_unit,
            if square.box_shift == 0 && square.square_unit == 1.0 {
                " (exact squares)"
            } else {
                ""
            },
            square.wrong_box_rate
        );
    }
    if !report.square_tables.is_empty() {
        println!(
            "dot interaction: square table boxes: squared logit error by table bits: {}",
            width_trials(&report.square_tables)
        );
    }
    for c in &report.layers {
        let lut = c.lut_bits.map_or("-".to_string(), |b| b.to_string());
        let lookups = c
            .lookup_weight_bits
            .map_or(String::new(), |b| format!(" ({b} on embeddings)"));
        println!(
            "{:>9}: weights {} bits{lookups}, table {lut:>2} bits, max noisy row norm {:>6.1}, wrong-box rate {:.4}, clamped {:.4}",
            c.name, c.weight_bits, c.max_noisy_row_norm, c.wrong_box_rate, c.clamped_fraction
        );
    }
    model.save(&args.out)?;
    if splits.dataset.is_none() && splits.test.is_none() {
        println!("the calibration rows have no labels of both classes: no evaluation");
        println!("wrote {}", args.out.display());
        return Ok(());
    }
    let (name, holdout) = match &splits.dataset {
        Some(_) => holdout(&splits)?,
        None => ("calibration", splits.test.as_ref().unwrap_or(&splits.train)),
    };
    let float = dlrm::evaluate(&Dlrm::from_weights(&weights)?, holdout)?;
    let exact = Metrics::from_logits(&model.logits(holdout, Execution::Exact)?, &holdout.labels);
    let noisy = Metrics::from_logits(
        &model.logits(
            holdout,
            Execution::Simulate {
                seed: args.simulate_seed,
            },
        )?,
        &holdout.labels,
    );
    println!("{name} float:    {float}");
    if let Some(finetuned) = &finetuned {
        let tuned = dlrm::evaluate(&Dlrm::from_weights(finetuned)?, holdout)?;
        println!(
            "{name} fine-tuned float: {tuned}  (AUC {:+.4}; the integer model's float counterpart)",
            tuned.auc - float.auc
        );
        println!(
            "{name} integer vs fine-tuned float: AUC {:+.4}",
            exact.auc - tuned.auc
        );
    }
    println!(
        "{name} integer:  {exact}  (AUC {:+.4})",
        exact.auc - float.auc
    );
    println!(
        "{name} simulate: {noisy}  (AUC {:+.4})",
        noisy.auc - float.auc
    );
    println!("wrote {}", args.out.display());
    Ok(())
}
