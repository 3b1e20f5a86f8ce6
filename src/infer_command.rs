//! `dlrm-he infer`: encrypted inference of raw rows (or a split's, or encoded rows) with client
//! and server in one process or against a running service, compared with the integer reference
//! and the float model.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use datasets::{MappedRow, RowMapper};

use crate::ranking::candidates_of;
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
    /// Rank candidates for the first row instead (one ranked request, docs/rank.md): rows in
    /// the same form as the user's (raw with --input or --split, encoded with --encoded),
    /// each row's public features one candidate (its private features are ignored).
    #[arg(long)]
    pub candidates: Option<PathBuf>,
    /// Candidates read from --candidates at most.
    #[arg(long, default_value_t = 1000, requires = "candidates")]
    pub max_candidates: usize,
    /// Feature roles to serve the model with instead of its own: a JSON file or
    /// `criteo-13-13` (see docs/rank.md).
    #[arg(long, conflicts_with = "server")]
    pub roles: Option<PathBuf>,
}

pub(crate) fn infer(args: InferArgs) -> anyhow::Result<()> {
    let mut session = Session::open_with_roles(
        &args.session.model,
        &args.session.keys,
        args.roles.as_deref(),
    )?;
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
    let read = |file: &std::path::Path, limit: usize| match &args.encoded {
        Some(_) => encoded_rows(&session.model, file, limit),
        None => Ok(RowMapper::open(args.session.data()?)?.read_rows(file, limit)?),
    };
    let rows = match (&args.input, &args.split, &args.encoded) {
        (Some(input), _, _) => read(input, args.rows)?,
        (None, Some(split), _) => split_rows(args.session.data()?, split, args.rows)?,
        (None, None, Some(file)) => read(file, args.rows)?,
        (None, None, None) => bail!("give --input, --split or --encoded"),
    };
    if let Some(file) = &args.candidates {
        let candidates = read(file, args.max_candidates)?;
        let user = rows.first().context("no row to rank candidates for")?;
        return rank(&session, user, &candidates, args.simulate_seed);
    }
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

/// One ranked request: `user`'s private features and each candidate row's public ones.
pub(crate) fn rank(
    session: &Session,
    user: &MappedRow,
    candidate_rows: &[MappedRow],
    simulate_seed: u64,
) -> anyhow::Result<()> {
    if candidate_rows.is_empty() {
        bail!("--candidates holds no row");
    }
    let candidates = candidates_of(&session.model, candidate_rows, candidate_rows.len());
    let passes = 16;
    let outcome = session.run_ranked(user, &candidates, simulate_seed..simulate_seed + passes)?;
    println!(
        "{}\n",
        infer::RankPlan::for_model(&session.model, candidates.len())?
    );
    let order = |scores: &[i64]| {
        let mut by_score: Vec<usize> = (0..scores.len()).collect();
        by_score.sort_by_key(|&k| std::cmp::Reverse(scores[k]));
        let mut place = vec![0; scores.len()];
        for (p, &k) in by_score.iter().enumerate() {
            place[k] = p + 1;
        }
        place
    };
    let (encrypted_place, reference_place) = (order(&outcome.encrypted), order(&outcome.reference));
    println!(
        "{:>9} {:>9} {:>9} {:>11} {:>9} {:>9} {:>9}",
        "candidate", "p int", "p enc", "numerator", "enc - int", "rank enc", "rank int"
    );
    let scale = session.model.logit_scale;
    for k in 0..candidates.len() {
        let (reference, encrypted) = (outcome.reference[k], outcome.encrypted[k]);
        println!(
            "{k:>9} {:>9.4} {:>9.4} {reference:>11} {:>+9} {:>9} {:>9}",
            dlrm::sigmoid(reference as f64 * scale),
            dlrm::sigmoid(encrypted as f64 * scale),
            encrypted - reference,
            encrypted_place[k],
            reference_place[k],
        );
    }
    let agreement = outcome.agreement();
    let server = ms(outcome.server.total());
    println!(
        "\nserver compute {server:.1} ms for {} candidates ({:.2} ms per candidate); upload {:.1} KiB, answer {:.1} KiB ({:.0} bytes per candidate); client encrypt {:.1} ms, decrypt {:.2} ms",
        candidates.len(),
        server / candidates.len() as f64,
        outcome.upload_bytes as f64 / 1024.0,
        outcome.download_bytes as f64 / 1024.0,
        outcome.download_bytes as f64 / candidates.len() as f64,
        ms(outcome.encrypt),
        ms(outcome.decrypt),
    );
    if candidates.len() > 1 && !session.server_key.has_packing_key() {
        println!(
            "the answer holds one ciphertext per candidate: keys from `dlrm-he keygen --packing` get up to 2,048 scores per 32 KiB (docs/rank.md)"
        );
    }
    println!(
        "fidelity: class equal to the integer reference for {:.1}% of candidates (simulate predicts {:.1}%, {passes} passes); {} of {} candidate pairs ordered otherwise than the reference, {} of them within a bootstrap error ({} such close pairs)",
        100.0 * outcome.class_agreement(),
        100.0 * outcome.predicted_class_kept,
        agreement.misordered_close + agreement.misordered_apart,
        agreement.pairs,
        agreement.misordered_close,
        agreement.close,
    );
    Ok(())
}
