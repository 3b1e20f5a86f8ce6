//! `dlrm-he eval`: a model (float, the quantized integer reference, or PyTorch safetensors)
//! evaluated on a split of a prepared dataset.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use datasets::PreparedDataset;
use dlrm::{Dlrm, Execution, Metrics, QuantizedModel};

use crate::import_command::InteractionArg;

#[derive(Args)]
pub(crate) struct EvalArgs {
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

pub(crate) fn eval(args: EvalArgs) -> anyhow::Result<()> {
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
            (None, Some(file)) => dlrm::import_pytorch(file, args.interaction.into())?,
            (None, None) => bail!("give --model, --quantized or --pytorch"),
        };
        dlrm::evaluate(&Dlrm::from_weights(&weights)?, &data)?
    };
    println!("{}: {metrics}", args.split);
    Ok(())
}
