//! `dlrm-he demo`: the main job on the embedded default data (generated, not downloaded).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::prepare::{CriteoArgs, SplitArg, SyntheticArgs};

#[derive(Args)]
pub struct DemoArgs {
    /// Working directory for everything the demo writes (replaced if it holds an earlier demo).
    #[arg(long, default_value = "out/demo")]
    pub dir: PathBuf,
    /// Rows of synthetic Criteo-shaped data.
    #[arg(long, default_value_t = 200_000)]
    pub rows: u64,
    /// Fraction of the full Kaggle table sizes.
    #[arg(long, default_value_t = 0.001)]
    pub scale: f64,
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let raw = args.dir.join("synthetic-criteo.tsv");
    let prepared = args.dir.join("prepared");
    // Only a directory this command made is cleared, so a mistyped --dir cannot eat other data.
    if prepared.join(datasets::MANIFEST_FILE).exists() || raw.exists() {
        std::fs::remove_dir_all(&args.dir)
            .with_context(|| format!("clearing the earlier demo in {}", args.dir.display()))?;
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;

    println!("== 1/2 generate synthetic Criteo-shaped data");
    crate::prepare::generate(&SyntheticArgs {
        out: raw.clone(),
        rows: args.rows,
        scale: args.scale,
        seed: 1,
    })?;
    println!("== 2/2 prepare it (vocabularies, splits, manifest)");
    crate::prepare::run(crate::prepare::PrepareCommand::Criteo(CriteoArgs {
        input: raw,
        out: prepared,
        min_count: 2,
        max_table_size: None,
        max_rows: None,
        split: SplitArg::Random,
        val_fraction: 0.05,
        test_fraction: 0.05,
        seed: 0,
        skip_bad_rows: false,
    }))
}
