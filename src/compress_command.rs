//! `dlrm-he compress`: a trained model's full tables turned into digit tables (least squares),
//! optionally fine-tuned, compared with the full model and with training from scratch.

use std::path::PathBuf;

use clap::Args;
use dlrm::{
    DigitCode, Dlrm, DlrmWeights, EmbeddingKind, EmbeddingPolicy, FitOptions, Metrics, ModelPreset,
};

use crate::training::{PresetArg, TrainSettings, holdout, open_splits, table_rows, train_model};

#[derive(Args)]
pub(crate) struct CompressArgs {
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

pub(crate) fn compress(args: CompressArgs) -> anyhow::Result<()> {
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
