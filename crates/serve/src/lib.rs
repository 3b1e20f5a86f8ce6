//! The encrypted inference service: an HTTP API (axum) over the FHE executor with a persistent
//! key store, admission control (a bounded queue in front of a fixed FHE thread pool), latency
//! histograms (hdrhistogram) exported for Prometheus and one `tracing` log line per call. It
//! must never see a secret key or a plaintext request, never run FHE work on the async
//! executor's threads, never log a whole key id, and never install a log subscriber (the binary
//! does).
//!
//! A call's path, in data-flow order:
//!
//! - [`RunningService::start`] (`service.rs`) checks the [`ServiceConfig`] and its [`Limits`]
//!   (`config.rs`), loads the [`NamedModel`]s into the shared state (`state.rs`) and accepts
//!   connections, over TLS when given a [`TlsConfig`] (`tls.rs`).
//! - Every call is logged and measured (`observe.rs`), then routed (`routes/`): keys
//!   (`routes/keys.rs`, kept by a [`KeyStore`] such as [`DirectoryKeyStore`], `store.rs`),
//!   models (`routes/models.rs`), inference (`routes/inference.rs`), ranked requests
//!   (`routes/rank.rs`), probes and metrics
//!   (`routes/probes.rs`).
//! - An inference call takes a place in the queue and waits for a worker on the FHE pool
//!   (`admission.rs`), which runs it with the key's decompressed copy, cached in `state.rs`.
//! - Its latency and stages land in [`ServiceMetrics`] (`metrics.rs`), what `/metrics` and
//!   `dlrm-he bench serve` report; failures answer with an [`ApiError`] (`error.rs`).
//!
//! The HTTP API is documented in `docs/api.md`.

mod admission;
mod auth;
mod bounded_read;
mod config;
mod error;
mod hex;
mod metrics;
mod observe;
mod routes;
mod service;
mod state;
mod store;
mod tenants;
mod tls;

pub use config::{Access, Limits, MAX_CANDIDATES, NamedModel, ServiceConfig};
pub use error::{ApiError, Result, ServeError};
pub use metrics::{STAGES, ServiceMetrics, latency_histogram, record};
pub use routes::message::{BINARY, KEY_HEADER};
pub use service::RunningService;
pub use store::{DirectoryKeyStore, KeyEntry, KeyId, KeyStore, Owner};
pub use tenants::{MAX_TENANTS_FILE_BYTES, Quotas, Tenant, Tenants, Token, valid_name};
pub use tls::{TlsConfig, TlsError};
