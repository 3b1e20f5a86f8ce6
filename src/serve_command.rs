//! `dlrm-he serve`: the encrypted inference service, with the limits `bench serve` shares.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use dlrm::QuantizedModel;
use fhe::ParameterSetId;
use infer::ServerModel;
use serve::{
    Access, DirectoryKeyStore, Limits, NamedModel, RunningService, ServiceConfig, Tenants,
    TlsConfig,
};

use crate::logging::{self, LogFormat};
use crate::session::{model_name, parameter_set};

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// A quantized model file to serve, under its file name without extension (repeatable).
    #[arg(long = "model")]
    pub models: Vec<PathBuf>,
    /// A directory of quantized model files (`*.json`) to serve as well.
    #[arg(long = "models")]
    pub model_dir: Option<PathBuf>,
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Where registered server keys are kept (created if needed; survives restarts).
    #[arg(long, default_value = "dlrm-he-keys")]
    pub key_store: PathBuf,
    #[arg(long, value_parser = parameter_set, default_value_t = ParameterSetId::default())]
    pub parameter_set: ParameterSetId,
    /// Tenants file (`dlrm-he token add`): every `/v1` call must carry a tenant's bearer token,
    /// and each tenant sees and uses only its own keys.
    #[arg(long)]
    pub tenants: Option<PathBuf>,
    /// Serve without authentication on an address other than loopback (a trusted network
    /// only: anyone who can connect may register, list, use and delete keys).
    #[arg(long, conflicts_with = "tenants")]
    pub insecure_no_auth: bool,
    /// Serve HTTPS with this certificate chain (PEM, the server's certificate first, then any
    /// intermediates). Needed for `--tenants` off loopback: bearer tokens otherwise cross the
    /// network in clear.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// How each call's log line is written to stderr (the level: `RUST_LOG`, default `info`).
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// Pool sizes and limits (defaults: every core).
#[derive(Args)]
pub(crate) struct LimitArgs {
    /// Threads running FHE work (default: the number of cores).
    #[arg(long)]
    pub fhe_threads: Option<usize>,
    /// Inference calls running at once (default 1: each call's bootstraps already use every
    /// core, and one at a time keeps latency even).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Calls waiting for a worker before new ones are refused with 429 (default: 4 x cores).
    #[arg(long)]
    pub queue: Option<usize>,
    /// Seconds a call may wait for a worker before it is refused with 503.
    #[arg(long, default_value_t = 60)]
    pub queue_timeout: u64,
    /// Decompressed server keys kept in memory.
    #[arg(long, default_value_t = 16)]
    pub key_cache: usize,
    /// Most candidates in one ranked request (`POST /v1/models/{name}/rank`); more are refused
    /// with 413 `too_many_candidates`.
    #[arg(long, default_value_t = 1_000)]
    pub max_candidates: usize,
}

impl LimitArgs {
    pub(crate) fn limits(&self) -> Limits {
        let mut limits = Limits::default();
        if let Some(threads) = self.fhe_threads {
            limits.fhe_threads = threads;
        }
        if let Some(workers) = self.workers {
            limits.workers = workers;
        }
        if let Some(queue) = self.queue {
            limits.queue = queue;
        }
        limits.queue_timeout = Duration::from_secs(self.queue_timeout);
        limits.key_cache = self.key_cache;
        limits.max_candidates = self.max_candidates;
        limits
    }
}

fn load_models(
    paths: &[PathBuf],
    parameter_set: ParameterSetId,
) -> anyhow::Result<Vec<NamedModel>> {
    paths
        .iter()
        .map(|path| {
            let quantized = QuantizedModel::load(path)?;
            let model = ServerModel::new(&quantized, parameter_set)
                .with_context(|| format!("compiling {}", path.display()))?;
            Ok(NamedModel {
                name: model_name(path)?,
                model,
            })
        })
        .collect()
}

pub(crate) fn serve(args: ServeArgs) -> anyhow::Result<()> {
    logging::install(args.log_format)?;
    let mut paths = args.models.clone();
    if let Some(dir) = &args.model_dir {
        let listing =
            std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
        let mut found: Vec<PathBuf> = listing
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        found.sort();
        paths.extend(found);
    }
    if paths.is_empty() {
        bail!("give at least one --model FILE or --models DIR");
    }
    let models = load_models(&paths, args.parameter_set)?;
    for model in &models {
        let plan = model.model.plan();
        println!(
            "model {}: id {}, {} bootstraps per request, parameter set {}",
            model.name,
            &plan.interface.model_id[..16],
            plan.bootstraps(),
            plan.interface.parameter_set
        );
    }
    let store = DirectoryKeyStore::open(&args.key_store)?;
    let limits = args.limits.limits();
    let access = match &args.tenants {
        Some(file) => {
            let tenants = Tenants::load(file)?;
            if tenants.is_empty() {
                bail!(
                    "{}: no tenants: add one with `dlrm-he token add`",
                    file.display()
                );
            }
            Access::Tenants(tenants)
        }
        None => Access::Open {
            insecure_remote: args.insecure_no_auth,
        },
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsConfig::from_files(cert, key)?),
        _ => None,
    };
    if let Some(warning) = cleartext_tokens(&access, tls.is_some(), args.addr) {
        eprintln!("{warning}");
    }
    let config = ServiceConfig {
        addr: args.addr,
        limits: limits.clone(),
        access,
        tls,
        handle_signals: true,
    };
    let service = RunningService::start(config, Arc::new(store), models)?;
    println!(
        "listening on {} (keys in {}; {} FHE threads, {} workers, queue {}); Ctrl-C stops after in-flight calls",
        service.url(),
        args.key_store.display(),
        limits.fhe_threads,
        limits.workers,
        limits.queue
    );
    service.wait()?;
    println!("stopped");
    Ok(())
}

/// The warning for tenants served without TLS on an address other than loopback: their bearer
/// tokens cross the network in clear, so anyone on the path can take one. A warning and not a
/// refusal: TLS may end in front of the service (a reverse proxy on the same host, a private
/// network the operator trusts), which the service cannot see.
fn cleartext_tokens(access: &Access, tls: bool, addr: SocketAddr) -> Option<String> {
    let exposed = matches!(access, Access::Tenants(_)) && !tls && !addr.ip().is_loopback();
    exposed.then(|| {
        format!(
            "warning: serving tenants on {addr} without TLS: bearer tokens cross the network in \
             clear; give --tls-cert and --tls-key unless TLS ends in front of the service"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_in_clear_off_loopback_are_warned_about() {
        let tenants = Access::Tenants(Tenants::default());
        let open = Access::Open {
            insecure_remote: true,
        };
        let remote: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let loopback: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert!(cleartext_tokens(&tenants, false, remote).is_some());
        assert!(cleartext_tokens(&tenants, true, remote).is_none());
        assert!(cleartext_tokens(&tenants, false, loopback).is_none());
        // Open access sends no tokens (it has its own flag, `--insecure-no-auth`).
        assert!(cleartext_tokens(&open, false, remote).is_none());
    }
}
