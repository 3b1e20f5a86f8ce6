//! `dlrm-he token`: add, list and remove the tenants of `dlrm-he serve --tenants FILE`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serve::{Quotas, Tenants};

#[derive(Subcommand)]
pub(crate) enum TokenCommand {
    /// Add a tenant: prints its new bearer token once (only its hash is stored).
    Add(AddArgs),
    /// List the tenants and their quotas (never the tokens).
    List(FileArgs),
    /// Remove a tenant: its token stops working when the service next reads the file.
    Remove(RemoveArgs),
}

#[derive(Args)]
pub(crate) struct FileArgs {
    /// The tenants file (JSON; created by the first `token add`).
    #[arg(long)]
    pub tenants: PathBuf,
}

#[derive(Args)]
pub(crate) struct AddArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// The tenant's name: 1 to 64 of a-z, 0-9, '-' and '_'.
    #[arg(long)]
    pub name: String,
    /// Server keys the tenant may have registered at once [default: 3].
    #[arg(long)]
    pub max_keys: Option<u32>,
    /// Bytes of registered server keys the tenant may have at once [default: 192 MiB].
    #[arg(long)]
    pub max_key_bytes: Option<u64>,
    /// Inference calls of the tenant queued or running at once [default: 2].
    #[arg(long)]
    pub max_concurrent_calls: Option<u32>,
}

#[derive(Args)]
pub(crate) struct RemoveArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// The tenant to remove.
    #[arg(long)]
    pub name: String,
}

pub(crate) fn run(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Add(args) => add(args),
        TokenCommand::List(args) => list(args),
        TokenCommand::Remove(args) => remove(args),
    }
}

fn add(args: AddArgs) -> anyhow::Result<()> {
    let path = &args.file.tenants;
    let mut tenants = Tenants::load_or_empty(path)?;
    let defaults = Quotas::default();
    let quotas = Quotas {
        max_keys: args.max_keys.unwrap_or(defaults.max_keys),
        max_key_bytes: args.max_key_bytes.unwrap_or(defaults.max_key_bytes),
        max_concurrent_calls: args
            .max_concurrent_calls
            .unwrap_or(defaults.max_concurrent_calls),
    };
    let token = tenants
        .add(&args.name, quotas)
        .with_context(|| format!("adding tenant to {}", path.display()))?;
    tenants.save(path)?;
    eprintln!(
        "added tenant `{}` to {} (keys {}, key bytes {}, calls at once {}); its token, shown only now:",
        args.name,
        path.display(),
        quotas.max_keys,
        quotas.max_key_bytes,
        quotas.max_concurrent_calls
    );
    println!("{}", token.reveal());
    Ok(())
}

fn list(args: FileArgs) -> anyhow::Result<()> {
    let tenants = Tenants::load(&args.tenants)?;
    println!("name\tmax_keys\tmax_key_bytes\tmax_concurrent_calls");
    for tenant in tenants.iter() {
        let q = tenant.quotas;
        println!(
            "{}\t{}\t{}\t{}",
            tenant.name, q.max_keys, q.max_key_bytes, q.max_concurrent_calls
        );
    }
    Ok(())
}

fn remove(args: RemoveArgs) -> anyhow::Result<()> {
    let path = &args.file.tenants;
    let mut tenants = Tenants::load(path)?;
    if !tenants.remove(&args.name) {
        bail!("{}: no tenant `{}`", path.display(), args.name);
    }
    tenants.save(path)?;
    eprintln!("removed tenant `{}` from {}", args.name, path.display());
    Ok(())
}
