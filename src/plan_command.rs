//! `dlrm-he plan`: the FHE plan of a quantized model (kernels, encodings, bootstraps, estimated
//! cost), as text or JSON.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use fhe::ParameterSetId;
use infer::{RankPlan, ServerModel};

use crate::roles_arg::load_with_roles;
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
    /// Also count the bootstraps of a ranked request with this many candidates (the private
    /// part once, the public part per candidate; see docs/rank.md).
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub candidates: Option<usize>,
    /// Feature roles to plan with instead of the model's: a JSON file
    /// (`{"dense": [...], "tables": [...]}`) or `criteo-13-13`.
    #[arg(long)]
    pub roles: Option<PathBuf>,
}

pub(crate) fn plan(args: PlanArgs) -> anyhow::Result<()> {
    let model = load_with_roles(&args.model, args.roles.as_deref())?;
    let server = ServerModel::new(&model, args.parameter_set)
        .with_context(|| format!("compiling {}", args.model.display()))?;
    let rank = args
        .candidates
        .map(|k| RankPlan::for_model(&model, k))
        .transpose()?;
    match (args.json, rank) {
        (true, None) => println!("{}", serde_json::to_string_pretty(server.plan())?),
        (true, Some(rank)) => println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "plan": server.plan(), "rank": rank })
            )?
        ),
        (false, rank) => {
            println!("{}", server.plan());
            if let Some(rank) = rank {
                println!("{rank}");
            }
        }
    }
    Ok(())
}
