//! `dlrm-he plan`: the FHE plan of a quantized model (kernels, encodings, bootstraps, estimated
//! cost), as text or JSON.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use dlrm::QuantizedModel;
use fhe::ParameterSetId;
use infer::ServerModel;

use crate::session::parameter_set;

#[derive(Args)]
pub(crate) struct PlanArgs {
    /// Quantized model file (from `dlrm-he quantize`).
    pub model: PathBuf,
    #[arg(long, value_parser = parameter_set, default_value_t = ParameterSetId::default())]
    pub parameter_set: ParameterSetId,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn plan(args: PlanArgs) -> anyhow::Result<()> {
    let model = QuantizedModel::load(&args.model)?;
    let server = ServerModel::new(&model, args.parameter_set)
        .with_context(|| format!("compiling {}", args.model.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(server.plan())?);
    } else {
        println!("{}", server.plan());
    }
    Ok(())
}
