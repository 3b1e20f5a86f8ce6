//! What a service is started with: its address, limits and pool sizes, and the models it serves.

use std::net::SocketAddr;
use std::time::Duration;

use infer::ServerModel;

use crate::error::{Result, ServeError};
use crate::tenants::Tenants;
use crate::tls::TlsConfig;

/// Limits and pool sizes. The defaults suit one machine: FHE work on every core, one call
/// running at a time (its bootstraps already use every core, and a second concurrent call
/// makes the latency tail much longer for little throughput, see the README), and a short queue
/// behind it.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Threads of the rayon pool that runs all FHE work (never the async executor's threads).
    pub fhe_threads: usize,
    /// Inference calls running at once on that pool.
    pub workers: usize,
    /// Admitted calls waiting for a worker; beyond it calls are refused with 429.
    pub queue: usize,
    /// Longest wait for a worker before a call is refused with 503.
    pub queue_timeout: Duration,
    /// Longest time to receive a body before the call is refused with 408 (slow clients).
    pub body_timeout: Duration,
    /// Bytes per second a body must keep up with after [`Limits::body_rate_grace`], or the call
    /// is refused with 408 `body_too_slow` (0: no minimum rate, only the timeout).
    pub min_body_rate: u64,
    /// Time a body may take before the minimum rate applies (connection set-up, the first
    /// bytes of a small body on a slow link).
    pub body_rate_grace: Duration,
    /// Longest time to receive a request's headers before the connection is closed (clients
    /// that open connections and trickle or never finish their headers).
    pub header_timeout: Duration,
    /// Largest key upload.
    pub max_key_bytes: usize,
    /// Key uploads validated at once; more are refused with 429.
    pub key_uploads: usize,
    /// Most requests in one batch call.
    pub max_batch: usize,
    /// Decompressed server keys kept in memory (least recently used are dropped).
    pub key_cache: usize,
    /// Bytes of registered keys of every tenant together; uploads beyond it are refused with
    /// 413 `store_full`.
    pub max_store_bytes: u64,
    /// Open connections at once; further clients wait in the operating system's accept queue
    /// until one closes.
    pub max_connections: usize,
    /// Most candidates in one ranked request (`POST /v1/models/{name}/rank`); more are refused
    /// with 413 `too_many_candidates`, and the body limit of a ranked request follows from it.
    /// The default, 1,000, covers the tens to thousands of candidates a recommendation backend
    /// ranks per user (issue 15's largest K). It bounds what one call holds: its answer, one
    /// 16 KiB ciphertext per candidate (16 MiB at 1,000),
    /// and its server time, a whole per-candidate part per candidate (the model's plan says how
    /// many bootstraps): lower it for a model with a costly per-candidate head. At most
    /// [`MAX_CANDIDATES`].
    pub max_candidates: usize,
}

/// The largest [`Limits::max_candidates`] a service takes: answers of about 1 GiB (16 KiB per
/// candidate), what `client::ServiceClient::rank` reads at most.
pub const MAX_CANDIDATES: usize = 1 << 16;

impl Default for Limits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Limits {
            fhe_threads: cores,
            workers: 1,
            queue: 4 * cores,
            queue_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            min_body_rate: 64 << 10,
            body_rate_grace: Duration::from_secs(5),
            header_timeout: Duration::from_secs(10),
            max_key_bytes: 64 << 20,
            key_uploads: 2,
            max_batch: 32,
            key_cache: 16,
            max_store_bytes: 16 << 30,
            max_connections: 256,
            max_candidates: 1_000,
        }
    }
}

impl Limits {
    /// Refuses limits that would stop the service from ever answering.
    pub(crate) fn check(&self) -> Result<()> {
        let counts = [
            ("fhe_threads", self.fhe_threads),
            ("workers", self.workers),
            ("key_uploads", self.key_uploads),
            ("max_batch", self.max_batch),
            ("key_cache", self.key_cache),
            ("max_connections", self.max_connections),
            ("max_candidates", self.max_candidates),
        ];
        if let Some((name, _)) = counts.iter().find(|(_, n)| *n == 0) {
            return Err(ServeError::Config(format!(
                "limit {name} must be at least 1"
            )));
        }
        if self.max_candidates > MAX_CANDIDATES {
            return Err(ServeError::Config(format!(
                "limit max_candidates is {}, at most {MAX_CANDIDATES} are served (answers of \
                 16 KiB per candidate)",
                self.max_candidates
            )));
        }
        Ok(())
    }
}

/// Who may call the `/v1` API.
#[derive(Clone, Debug)]
pub enum Access {
    /// Every `/v1` call carries `Authorization: Bearer <token>` of one of these tenants (401
    /// otherwise), and each tenant sees and uses only the keys it registered.
    Tenants(Tenants),
    /// Anyone who can connect, sharing one set of keys.
    Open {
        /// Allow an address other than loopback (the command line's `--insecure-no-auth`);
        /// otherwise the service refuses to start there.
        insecure_remote: bool,
    },
}

impl Access {
    /// Refuses open access on a reachable address unless it was asked for explicitly.
    pub(crate) fn check(&self, addr: SocketAddr) -> Result<()> {
        match self {
            Access::Open {
                insecure_remote: false,
            } if !addr.ip().is_loopback() => Err(ServeError::Config(format!(
                "refusing to serve {addr} without authentication: give tenants \
                 (`--tenants FILE`, see `dlrm-he token add`) or, on a trusted network, \
                 `--insecure-no-auth`"
            ))),
            _ => Ok(()),
        }
    }
}

/// How to start a service.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// The address to listen on (port 0: any free port).
    pub addr: SocketAddr,
    /// Bounds on concurrency, queues, sizes and caches.
    pub limits: Limits,
    /// Who may call the API.
    pub access: Access,
    /// Serve HTTPS with this certificate instead of plain HTTP. Tenants' bearer tokens cross
    /// the network in clear without it.
    pub tls: Option<TlsConfig>,
    /// Stop gracefully on Ctrl-C and SIGTERM (the command line); tests and benchmarks stop the
    /// service through [`RunningService::shutdown`](crate::RunningService::shutdown) instead.
    pub handle_signals: bool,
}

/// A model the service serves, under a name used in its URLs.
pub struct NamedModel {
    /// The name in the model's URLs.
    pub name: String,
    /// The compiled model.
    pub model: ServerModel,
}

impl NamedModel {
    /// Refuses a name that would not fit in a URL path segment as it is.
    pub(crate) fn check_name(&self) -> Result<()> {
        let name = &self.name;
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if valid {
            Ok(())
        } else {
            Err(ServeError::Config(format!(
                "model name `{name}`: use letters, digits, `-`, `_` and `.`"
            )))
        }
    }
}
