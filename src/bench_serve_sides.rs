//! The configurations `dlrm-he bench serve` measures side by side: open access over plain HTTP,
//! and tenants with TLS (a temporary tenants file with one token, and a certificate generated
//! for the run), each a service on its own loopback port in this process.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use client::ServiceClient;
use serve::{
    Access, DirectoryKeyStore, Limits, NamedModel, Quotas, RunningService, ServiceConfig, Tenants,
    TlsConfig,
};

/// Which configurations to run (`--security`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Security {
    /// Both, in alternating rounds, and the ratio of their throughputs.
    Both,
    /// Open access over plain HTTP only.
    Off,
    /// Tenants (a bearer token on every call) over TLS only.
    On,
}

impl Security {
    pub(crate) fn protections(self) -> &'static [Protection] {
        match self {
            Security::Both => &[Protection::Open, Protection::TenantsTls],
            Security::Off => &[Protection::Open],
            Security::On => &[Protection::TenantsTls],
        }
    }
}

/// How one service of the benchmark is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protection {
    Open,
    TenantsTls,
}

impl Protection {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Protection::Open => "open access, plain HTTP",
            Protection::TenantsTls => "tenants + TLS",
        }
    }
}

/// One running service of the benchmark and what its clients need to call it.
pub(crate) struct Side {
    pub protection: Protection,
    pub service: RunningService,
    /// The certificate the clients trust (self-signed for the run), with TLS.
    ca: Option<String>,
    /// The one tenant's bearer token, with tenants.
    token: Option<String>,
    /// The key store, and with tenants and TLS the tenants file, certificate and key.
    _files: tempfile::TempDir,
}

impl Side {
    /// Starts a service serving `model` on a loopback port. With tenants, the one tenant's
    /// quotas admit `keys` registered keys and `clients` calls at once, so the benchmark
    /// measures the cost of the protections, not their limits.
    pub(crate) fn start(
        protection: Protection,
        limits: &Limits,
        model: NamedModel,
        keys: usize,
        clients: usize,
    ) -> anyhow::Result<Self> {
        let files = tempfile::tempdir()?;
        let (access, tls, ca, token) = match protection {
            Protection::Open => (
                Access::Open {
                    insecure_remote: false,
                },
                None,
                None,
                None,
            ),
            Protection::TenantsTls => {
                let (tenants, token) = tenants_file(files.path(), limits, keys, clients)?;
                let (tls, ca) = certificate(files.path())?;
                (Access::Tenants(tenants), Some(tls), Some(ca), Some(token))
            }
        };
        let config = ServiceConfig {
            addr: "127.0.0.1:0".parse().expect("a valid address"),
            limits: limits.clone(),
            access,
            tls,
            handle_signals: false,
        };
        let store = Arc::new(DirectoryKeyStore::open(&files.path().join("store"))?);
        let service = RunningService::start(config, store, vec![model])?;
        Ok(Side {
            protection,
            service,
            ca,
            token,
            _files: files,
        })
    }

    /// A client of this side's service, trusting its certificate and sending its token.
    pub(crate) fn client(&self, timeout: Duration) -> anyhow::Result<ServiceClient> {
        let mut http = ServiceClient::new(&self.service.url(), timeout)?;
        if let Some(ca) = &self.ca {
            http = http.with_ca(ca.as_bytes())?;
        }
        if let Some(token) = &self.token {
            http = http.with_token(token);
        }
        Ok(http)
    }
}

/// A tenants file in `dir` with one tenant, read back as the service reads it; returns the
/// tenants and the tenant's token.
fn tenants_file(
    dir: &std::path::Path,
    limits: &Limits,
    keys: usize,
    clients: usize,
) -> anyhow::Result<(Tenants, String)> {
    let quotas = Quotas {
        max_keys: u32::try_from(keys)?,
        max_key_bytes: keys as u64 * limits.max_key_bytes as u64,
        max_concurrent_calls: u32::try_from(clients)?,
    };
    let mut tenants = Tenants::default();
    let token = tenants.add("bench", quotas)?;
    let path = dir.join("tenants.json");
    tenants.save(&path)?;
    Ok((Tenants::load(&path)?, token.reveal().to_owned()))
}

/// A self-signed certificate for the loopback address, written to `dir` as PEM files and read
/// back as `serve --tls-cert --tls-key` reads them; returns the TLS configuration and the
/// certificate (the clients' CA).
fn certificate(dir: &std::path::Path) -> anyhow::Result<(TlsConfig, String)> {
    let made =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .context("generating the benchmark's TLS certificate")?;
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let pem = made.cert.pem();
    std::fs::write(&cert, &pem)?;
    std::fs::write(&key, made.signing_key.serialize_pem())?;
    Ok((TlsConfig::from_files(&cert, &key)?, pem))
}
