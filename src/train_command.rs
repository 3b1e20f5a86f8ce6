//! `dlrm-he train`: a DLRM (a preset or a JSON architecture) trained on a prepared dataset and
//! saved as a model directory.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use dlrm::{DatasetReference, Dlrm, EmbeddingPolicy, ModelConfig, ModelPreset};

use crate::roles_arg::read_roles;
use crate::training::{PresetArg, TrainSettings, holdout, open_splits, table_rows, train_model};

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum TablesArg {
    /// The preset's own choice.
    Preset,
    /// Every table full (V x d).
    Full,
    /// Digit tables for every table larger than --max-inputs.
    Digits,
}

#[derive(Args)]
pub(crate) struct TrainArgs {
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
    /// Feature roles for ranked requests (they change no weight): a JSON file
    /// (`{"dense": [...], "tables": [...]}`) or `criteo-13-13`. Default: all private.
    #[arg(long)]
    pub roles: Option<PathBuf>,
    #[command(flatten)]
    pub settings: TrainSettings,
    /// Model directory to write.
    #[arg(long)]
    pub out: PathBuf,
}

pub(crate) fn train(args: TrainArgs) -> anyhow::Result<()> {
    let splits = open_splits(&args.data)?;
    let preset = ModelPreset::from(args.preset);
    let rows = table_rows(splits.prepared()?);
    let dense = splits.train.dense_width();
    let mut config: ModelConfig = match &args.config {
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
    if let Some(path) = &args.roles {
        config.roles = read_roles(path)?;
    }
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
