//! `dlrm-he keygen`: a client key and its compressed server key, written to a new directory.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use client::KeyDirectory;
use fhe::ParameterSetId;

use crate::session::parameter_set;

#[derive(Args)]
pub(crate) struct KeygenArgs {
    /// Directory to create: client.key (secret), server.key (compressed, for the server), keys.json.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, value_parser = parameter_set, default_value_t = ParameterSetId::default())]
    pub parameter_set: ParameterSetId,
    /// Also write the packing key into server.key (32 MiB more with the default set), so that
    /// ranked answers come back up to 2,048 scores per 32 KiB instead of 16 KiB each.
    #[arg(long)]
    pub packing: bool,
}

pub(crate) fn keygen(args: KeygenArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let keys = match args.packing {
        true => KeyDirectory::generate_with_packing(&args.out, args.parameter_set)?,
        false => KeyDirectory::generate(&args.out, args.parameter_set)?,
    };
    println!(
        "wrote {}: client key {:.1} KiB (secret), server key {:.1} MiB (compressed{}), parameter set {} ({:.2} s)",
        args.out.display(),
        keys.client_key_bytes as f64 / 1024.0,
        keys.server_key_bytes as f64 / (1 << 20) as f64,
        if keys.packing_key {
            ", with packing key"
        } else {
            ""
        },
        keys.parameter_set,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
