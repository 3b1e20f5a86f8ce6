//! `dlrm-he infer`: encrypted inference of raw rows (or a split's, or encoded rows) with client
//! and server in one process or against a running service, compared with the integer reference
//! and the float model.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use datasets::RowMapper;

use crate::report::{ms, print_summary};
use crate::session::{Remote, Session, SessionArgs, encoded_rows, model_name, split_rows};

#[derive(Args)]
pub(crate) struct InferArgs {
    #[command(flatten)]
    pub session: SessionArgs,
    /// Raw rows in the dataset's own format (Criteo TSV, UCI heart CSV lines).
    #[arg(long, required_unless_present_any = ["split", "encoded"], conflicts_with_all = ["split", "encoded"])]
    pub input: Option<PathBuf>,
    /// Rows of a split of the prepared dataset instead (for example `test`: held-out rows).
    #[arg(long, conflicts_with = "encoded")]
    pub split: Option<String>,
    /// Rows already in the model's input form instead (CSV with a header: optional `label`, the
    /// dense values, one id per table), for models without a prepared dataset.
    #[arg(long)]
    pub encoded: Option<PathBuf>,
    /// The float model directory, to print its probabilities alongside.
    #[arg(long)]
    pub float_model: Option<PathBuf>,
    /// Rows to run (from the start of the input).
    #[arg(long, default_value_t = 20)]
    pub rows: usize,
    /// Seed of the integer reference's simulated noise.
    #[arg(long, default_value_t = 1)]
    pub simulate_seed: u64,
    /// Send the encrypted requests to a running `dlrm-he serve` (e.g. http://127.0.0.1:8080, or
    /// https://HOST:8080 for a service with `--tls-cert`)
    /// instead of running them in this process. The server key is registered first.
    #[arg(long)]
    pub server: Option<String>,
    /// The model's name on the service (default: the model file's name without extension).
    #[arg(long, requires = "server")]
    pub server_model: Option<String>,
    /// CA certificate (PEM) to trust for an https:// service instead of Mozilla's roots: a
    /// private CA, or the service's own self-signed certificate.
    #[arg(long, requires = "server")]
    pub ca: Option<PathBuf>,
    /// Bearer token for a service with tenants (`dlrm-he token add`); default: the
    /// `DLRM_HE_TOKEN` environment variable.
    #[arg(long, requires = "server")]
    pub token: Option<String>,
}

pub(crate) fn infer(args: InferArgs) -> anyhow::Result<()> {
    let mut session = Session::open(&args.session.model, &args.session.keys)?;
    if let Some(url) = &args.server {
        let name = match &args.server_model {
            Some(name) => name.clone(),
            None => model_name(&args.session.model)?,
        };
        let token = args
            .token
            .clone()
            .or_else(|| std::env::var("DLRM_HE_TOKEN").ok());
        let remote = Remote::connect(
            url,
            &name,
            &session,
            &args.session.keys,
            args.ca.as_deref(),
            token.as_deref(),
        )?;
        session.remote = Some(remote);
    }
    let float = args
        .float_model
        .as_deref()
        .map(|dir| dlrm::load_model(dir).map(|m| m.weights))
        .transpose()?;
    let rows = match (&args.input, &args.split, &args.encoded) {
        (Some(input), _, _) => {
            RowMapper::open(args.session.data()?)?.read_rows(input, args.rows)?
        }
        (None, Some(split), _) => split_rows(args.session.data()?, split, args.rows)?,
        (None, None, Some(file)) => encoded_rows(&session.model, file, args.rows)?,
        (None, None, None) => bail!("give --input, --split or --encoded"),
    };
    println!("{}\n", session.server.plan());
    let unknown: usize = rows.iter().map(|r| r.unknown_values).sum();
    if unknown > 0 {
        println!(
            "{unknown} categorical values not in the vocabularies were sent as the reserved id 0"
        );
    }
    println!(
        "{:>5} {:>5} {:>9} {:>9} {:>9} {:>11} {:>11} {:>11} {:>11} {:>9}",
        "row",
        "label",
        "p float",
        "p int",
        "p enc",
        "numerator",
        "enc - int",
        "logit float",
        "logit enc",
        "server ms"
    );
    let scale = session.model.logit_scale;
    let mut outcomes = Vec::with_capacity(rows.len());
    for (index, row) in rows.iter().enumerate() {
        let o = session.run_row(row, index as u64, float.as_ref(), args.simulate_seed)?;
        println!(
            "{:>5} {:>5} {:>9} {:>9.4} {:>9.4} {:>11} {:>+11.2} {:>11} {:>+11.6} {:>9.0}",
            index,
            o.label.map_or("-".into(), |l| l.to_string()),
            o.float_logit
                .map_or("-".into(), |l| format!("{:.4}", dlrm::sigmoid(l))),
            dlrm::sigmoid(o.reference_numerator as f64 * scale),
            dlrm::sigmoid(o.encrypted_numerator * scale),
            o.reference_numerator,
            o.encrypted_numerator - o.reference_numerator as f64,
            o.float_logit.map_or("-".into(), |l| format!("{l:+.6}")),
            o.encrypted_numerator * scale,
            ms(o.server.total()),
        );
        outcomes.push(o);
    }
    let bootstrap = session.bootstrap_cost()?;
    println!();
    print_summary(&session.model, session.server.plan(), &outcomes, bootstrap);
    Ok(())
}
