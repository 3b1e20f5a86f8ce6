//! `dlrm-he bench infer`: encrypted requests of a quantized model timed in this process.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use datasets::MappedRow;

use crate::report::print_summary;
use crate::session::{Session, SessionArgs, encoded_rows, split_rows};

#[derive(Args)]
pub(crate) struct BenchInferArgs {
    #[command(flatten)]
    pub session: SessionArgs,
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Time these rows instead of the split's (CSV in the model's input form: optional
    /// `label`, the dense values, one id per table), for models without a prepared dataset.
    #[arg(long)]
    pub encoded: Option<PathBuf>,
    /// Requests to time (the medians are over these).
    #[arg(long, default_value_t = 5)]
    pub requests: usize,
}

/// `dlrm-he bench infer`: server compute per request (median), bootstraps, the floor ratio,
/// sizes and client times, with the encrypted results checked against the reference.
pub(crate) fn bench_infer(args: BenchInferArgs) -> anyhow::Result<()> {
    if args.requests == 0 {
        bail!("--requests must be at least 1");
    }
    let session = Session::open(&args.session.model, &args.session.keys)?;
    let rows = match &args.encoded {
        Some(file) => encoded_rows(&session.model, file, args.requests)?,
        None => split_rows(args.session.data()?, &args.split, args.requests)?,
    };
    // Fewer rows than requests: the rows are sent again in turn.
    let rows: Vec<&MappedRow> = rows.iter().cycle().take(args.requests).collect();
    println!("{}\n", session.server.plan());
    let progress = crate::progress::Bar::rows();
    datasets::Progress::start(&progress, "requests", Some(rows.len() as u64));
    let mut outcomes = Vec::with_capacity(rows.len());
    for (index, row) in rows.iter().enumerate() {
        outcomes.push(session.run_row(row, index as u64, None, 1)?);
        datasets::Progress::advance(&progress, 1);
    }
    progress.finish();
    let bootstrap = session.bootstrap_cost()?;
    println!(
        "machine: {} threads ({}); {} requests of {}",
        rayon::current_num_threads(),
        std::env::consts::ARCH,
        outcomes.len(),
        args.session.model.display()
    );
    print_summary(&session.model, session.server.plan(), &outcomes, bootstrap);
    Ok(())
}
