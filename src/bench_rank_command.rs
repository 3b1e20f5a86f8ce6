//! `dlrm-he bench rank`: ranked requests (one user's private inputs, K candidates' public ids)
//! timed in this process beside single-row requests of the same model with every feature
//! encrypted, each candidate checked against the integer reference of the ranked request.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use infer::RankPlan;

use crate::ranking::candidates_of;
use crate::report::ms;
use crate::session::{Session, SessionArgs, encoded_rows, split_rows};

#[derive(Args)]
pub(crate) struct BenchRankArgs {
    #[command(flatten)]
    pub session: SessionArgs,
    /// The split whose rows supply the user (its first row) and the candidates (every row's
    /// public ids, in turn).
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Take the rows from this CSV in the model's input form instead (optional `label`, the
    /// dense values, one id per table).
    #[arg(long)]
    pub encoded: Option<PathBuf>,
    /// Candidates per ranked request; a list (`1,10,100,1000`) times one request of each size.
    #[arg(long, value_delimiter = ',', default_value = "100")]
    pub candidates: Vec<usize>,
    /// Single-row requests timed for the comparison (the median is used).
    #[arg(long, default_value_t = 3)]
    pub single_requests: usize,
    /// Feature roles to serve the model with instead of its own: a JSON file or
    /// `criteo-13-13` (see docs/rank.md).
    #[arg(long)]
    pub roles: Option<PathBuf>,
    /// `simulate` passes behind the predicted fidelity.
    #[arg(long, default_value_t = 16)]
    pub simulate_passes: u64,
}

pub(crate) fn bench_rank(args: BenchRankArgs) -> anyhow::Result<()> {
    if args.single_requests == 0 || args.candidates.contains(&0) {
        bail!("--single-requests and every --candidates size must be at least 1");
    }
    let session = Session::open_with_roles(
        &args.session.model,
        &args.session.keys,
        args.roles.as_deref(),
    )?;
    let largest = args.candidates.iter().copied().max().unwrap_or(1);
    let wanted = largest.max(args.single_requests);
    let rows = match &args.encoded {
        Some(file) => encoded_rows(&session.model, file, wanted)?,
        None => split_rows(args.session.data()?, &args.split, wanted)?,
    };
    if rows.is_empty() {
        bail!("no rows to take the user and the candidates from");
    }
    println!("{}\n", session.server.plan());

    // Single-row requests, every feature encrypted: the cost a ranked request is compared with.
    let mut singles = Vec::with_capacity(args.single_requests);
    for (index, row) in rows.iter().cycle().take(args.single_requests).enumerate() {
        singles.push(ms(session
            .run_row(row, index as u64, None, 1)?
            .server
            .total()));
    }
    singles.sort_by(f64::total_cmp);
    let single = singles[singles.len() / 2];
    let bootstrap = session.bootstrap_cost()?;
    println!(
        "machine: {} threads ({}); one keyswitch+bootstrap {:.1} ms alone, {:.1} ms each in a batch",
        rayon::current_num_threads(),
        std::env::consts::ARCH,
        ms(bootstrap.0),
        ms(bootstrap.1)
    );
    println!(
        "single-row request, every feature encrypted: {single:.1} ms server compute (median of {}), {} bootstraps\n",
        singles.len(),
        session.server.plan().bootstraps()
    );
    println!(
        "{:>6} {:>10} {:>13} {:>8} {:>7} {:>9} {:>9} {:>10} {:>10} {:>8} {:>22} {:>18}",
        "K",
        "server ms",
        "ms/candidate",
        "x single",
        "once",
        "per cand",
        "floor x",
        "upload KiB",
        "answer KiB",
        "B/cand",
        "class = int (predicted)",
        "misordered pairs"
    );
    let user = &rows[0];
    for &k in &args.candidates {
        let candidates = candidates_of(&session.model, &rows, k);
        let outcome = session.run_ranked(user, &candidates, 0..args.simulate_passes)?;
        let plan = RankPlan::for_model(&session.model, k)?;
        let server = ms(outcome.server.total());
        let per_candidate = server / k as f64;
        let agreement = outcome.agreement();
        println!(
            "{k:>6} {server:>10.1} {per_candidate:>13.2} {:>8.3} {:>7} {:>9} {:>9.2} {:>10.1} {:>10.1} {:>8.0} {:>13.1}% ({:>5.1}%) {:>6} of {} ({} close)",
            per_candidate / single,
            plan.once,
            plan.per_candidate,
            server / (plan.total() as f64 * ms(bootstrap.1)),
            outcome.upload_bytes as f64 / 1024.0,
            outcome.download_bytes as f64 / 1024.0,
            outcome.download_bytes as f64 / k as f64,
            100.0 * outcome.class_agreement(),
            100.0 * outcome.predicted_class_kept,
            agreement.misordered_close + agreement.misordered_apart,
            agreement.pairs,
            agreement.close,
        );
        if agreement.misordered_apart > 0 {
            println!(
                "  {} pairs farther apart than the largest error {} simulate passes drew are misordered, {} farther than twice it",
                agreement.misordered_apart, args.simulate_passes, agreement.misordered_far
            );
        }
    }
    println!(
        "\nx single: server time per candidate over the single-row request's; floor x: server time over (once + K x per candidate) bootstraps at the batched rate; misordered pairs: candidate pairs the decrypted scores order otherwise than the integer reference (close: within the two candidates' bootstrap error, from {} simulate passes)",
        args.simulate_passes
    );
    Ok(())
}
