//! `dlrm-he import`: a DLRM trained in PyTorch (a safetensors state dict named as the reference
//! DLRM's or TorchRec's modules) becomes a model directory that `eval`, `compress`,
//! `quantize`, `plan`, `infer` and `serve` read like a trained one.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use datasets::PreparedDataset;
use dlrm::{DatasetReference, Dlrm, ImportOptions, Interaction, Metrics};

/// The interaction of a PyTorch model (`import --interaction`, `eval --pytorch`).
#[derive(Clone, Copy, ValueEnum)]
pub enum InteractionArg {
    Concat,
    Dot,
}

impl From<InteractionArg> for Interaction {
    fn from(interaction: InteractionArg) -> Self {
        match interaction {
            InteractionArg::Concat => Interaction::Concat,
            InteractionArg::Dot => Interaction::Dot,
        }
    }
}

#[derive(Args)]
pub(crate) struct ImportArgs {
    /// The checkpoint: a safetensors file of the model's state dict (docs/dlrm.md says how to
    /// write one from PyTorch or TorchRec).
    pub checkpoint: PathBuf,
    /// The interaction the model was trained with. Default: a TorchRec model's is `dot`; a
    /// reference DLRM's is told from its layer widths, and must be given when both fit.
    #[arg(long, value_enum)]
    pub interaction: Option<InteractionArg>,
    /// TorchRec models: the table names (`embedding_bags.NAME.weight`), comma-separated, one per
    /// sparse feature in the model's feature order. Default: by the number each name ends with
    /// (`t_cat_0`, `t_cat_1`, ...).
    #[arg(long, value_delimiter = ',')]
    pub table_order: Option<Vec<String>>,
    /// The prepared dataset whose rows the model reads: its widths and table sizes are checked
    /// against the model's, its test split is evaluated, and later commands find it through the
    /// model directory. Without it, quantize with `--calibration`.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Model directory to write (must not exist).
    #[arg(long)]
    pub out: PathBuf,
}

pub(crate) fn import(args: ImportArgs) -> anyhow::Result<()> {
    if args.out.exists() {
        bail!(
            "{} already exists (choose another --out or remove it)",
            args.out.display()
        );
    }
    let options = ImportOptions {
        interaction: args.interaction.map(Interaction::from),
        table_order: args.table_order.clone(),
    };
    let imported = dlrm::import_pytorch_with(&args.checkpoint, &options)?;
    let weights = imported.weights;
    let c = &weights.config;
    println!(
        "{} ({:?} layout; tables in order: {}): {} dense features, bottom {:?}, {} tables of dimension {} (rows {:?}), {:?} interaction, top {:?}",
        args.checkpoint.display(),
        imported.layout,
        imported.tables.join(", "),
        c.dense_features,
        c.bottom,
        c.tables.len(),
        c.embedding_dim,
        c.tables.iter().map(|t| t.rows).collect::<Vec<_>>(),
        c.interaction,
        c.top
    );
    let dataset = match &args.data {
        None => None,
        Some(dir) => {
            let dataset = PreparedDataset::open(dir)
                .with_context(|| format!("opening prepared dataset {}", dir.display()))?;
            let manifest = dataset.manifest();
            let sizes = manifest.table_sizes();
            let rows: Vec<usize> = c.tables.iter().map(|t| t.rows).collect();
            if manifest.dense.len() != c.dense_features || sizes.len() != rows.len() {
                bail!(
                    "the dataset has {} dense and {} categorical columns, the model reads {} and {}",
                    manifest.dense.len(),
                    sizes.len(),
                    c.dense_features,
                    rows.len()
                );
            }
            if let Some((t, (have, need))) = rows
                .iter()
                .zip(&sizes)
                .enumerate()
                .find(|(_, (have, need))| have < need)
            {
                bail!(
                    "table {t} has {have} rows, the dataset's column {} needs {need}",
                    manifest.categorical[t].name
                );
            }
            if let Some(split) = ["test", "val"]
                .into_iter()
                .find(|s| manifest.split(s).is_some())
            {
                let data = dataset.load_split(split)?;
                let logits = dlrm::predict_logits(&Dlrm::from_weights(&weights)?, &data)?;
                let metrics = Metrics::from_logits(&logits, &data.labels);
                println!("{split}: {metrics}");
            }
            Some(DatasetReference::of(&dataset))
        }
    };
    // Written beside the destination, then renamed: a directory at --out is always complete.
    let parent = match args.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let staging = tempfile::Builder::new()
        .prefix(".dlrm-he-import")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a directory in {}", parent.display()))?;
    dlrm::save_model(staging.path(), &weights, dataset.as_ref())?;
    std::fs::rename(staging.path(), &args.out)
        .with_context(|| format!("moving the model to {}", args.out.display()))?;
    println!("wrote {}", args.out.display());
    Ok(())
}
