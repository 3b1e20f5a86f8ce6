//! `dlrm-he prepare uci|criteo|synthetic-criteo`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use datasets::SplitMethod;
use datasets::criteo::CriteoOptions;
use datasets::synthetic::SyntheticOptions;
use datasets::uci::UciOptions;

use crate::progress::Bar;

#[derive(Subcommand)]
pub(crate) enum PrepareCommand {
    /// UCI heart disease (`processed.*.data`) into train/test splits.
    Uci(UciArgs),
    /// Criteo Kaggle/Terabyte TSV (plain, .gz or .zst) into train/val/test splits.
    Criteo(CriteoArgs),
    /// Generate Criteo-shaped raw TSV with a known hidden model (writes FILE.oracle.json too).
    SyntheticCriteo(SyntheticArgs),
}

#[derive(Args)]
pub(crate) struct UciArgs {
    /// Raw UCI file (e.g. processed.cleveland.data).
    #[arg(long)]
    pub input: PathBuf,
    /// Dataset directory to create (must not exist).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Skip malformed rows (counted in the summary) instead of failing on the first.
    #[arg(long)]
    pub skip_bad_rows: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum SplitArg {
    /// Each row by a seeded hash of its position.
    Random,
    /// The last rows are validation then test (like holding out the last day).
    Sequential,
}

#[derive(Args)]
pub struct CriteoArgs {
    /// Raw TSV file: label, I1..I13, C1..C26; plain, .gz or .zst.
    #[arg(long)]
    pub input: PathBuf,
    /// Dataset directory to create (must not exist).
    #[arg(long)]
    pub out: PathBuf,
    /// Categorical values seen fewer times map to the reserved id 0.
    #[arg(long, default_value_t = 1)]
    pub min_count: u64,
    /// Keep at most this many rows per table (the most frequent values; id 0 included).
    #[arg(long)]
    pub max_table_size: Option<usize>,
    /// Read at most this many data rows.
    #[arg(long)]
    pub max_rows: Option<u64>,
    #[arg(long, value_enum, default_value_t = SplitArg::Random)]
    pub split: SplitArg,
    #[arg(long, default_value_t = 0.05)]
    pub val_fraction: f64,
    #[arg(long, default_value_t = 0.05)]
    pub test_fraction: f64,
    /// Seed of the random split.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Skip malformed rows (counted in the summary) instead of failing on the first.
    #[arg(long)]
    pub skip_bad_rows: bool,
}

#[derive(Args)]
pub(crate) struct SyntheticArgs {
    /// Output TSV file (compressed if it ends in .gz or .zst).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 100_000)]
    pub rows: u64,
    /// Fraction of the full Kaggle cardinalities (each table keeps at least 2 values).
    #[arg(long, default_value_t = 0.001)]
    pub scale: f64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl From<&CriteoArgs> for CriteoOptions {
    fn from(args: &CriteoArgs) -> Self {
        Self {
            min_count: args.min_count,
            max_table_size: args.max_table_size,
            max_rows: args.max_rows,
            split: match args.split {
                SplitArg::Random => SplitMethod::Random,
                SplitArg::Sequential => SplitMethod::Sequential,
            },
            val_fraction: args.val_fraction,
            test_fraction: args.test_fraction,
            seed: args.seed,
            skip_bad_rows: args.skip_bad_rows,
        }
    }
}

pub(crate) fn run(command: PrepareCommand) -> anyhow::Result<()> {
    match command {
        PrepareCommand::Uci(args) => {
            let options = UciOptions {
                test_fraction: args.test_fraction,
                seed: args.seed,
                skip_bad_rows: args.skip_bad_rows,
            };
            let bar = Bar::bytes();
            let summary = datasets::uci::prepare(&args.input, &args.out, &options, &bar);
            bar.finish();
            println!("{}", summary.context("prepare uci failed")?);
            println!("wrote {}", args.out.display());
        }
        PrepareCommand::Criteo(args) => {
            let bar = Bar::bytes();
            let summary = datasets::criteo::prepare(&args.input, &args.out, &(&args).into(), &bar);
            bar.finish();
            println!("{}", summary.context("prepare criteo failed")?);
            println!("wrote {}", args.out.display());
        }
        PrepareCommand::SyntheticCriteo(args) => {
            generate(&args)?;
        }
    }
    Ok(())
}

/// Generates synthetic Criteo data and prints what was written.
pub(crate) fn generate(
    args: &SyntheticArgs,
) -> anyhow::Result<datasets::synthetic::SyntheticReport> {
    let options = SyntheticOptions {
        rows: args.rows,
        scale: args.scale,
        seed: args.seed,
        ..SyntheticOptions::default()
    };
    let bar = Bar::rows();
    let report = datasets::synthetic::generate(&options, &args.out, &bar);
    bar.finish();
    let report = report.context("generating synthetic Criteo data failed")?;
    println!(
        "wrote {} rows ({:.1}% positive) to {}; hidden model: oracle AUC {:.4}, log loss {:.4}",
        report.rows,
        100.0 * report.positives as f64 / report.rows as f64,
        args.out.display(),
        report.oracle_auc,
        report.oracle_log_loss
    );
    Ok(report)
}
