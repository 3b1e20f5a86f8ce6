//! The encrypted inference service: an HTTP API (axum) over the FHE executor with a persistent
//! key store, admission control (a bounded queue in front of a fixed FHE thread pool) and
//! latency histograms (hdrhistogram) exported for Prometheus. It must never see a secret key or
//! a plaintext request, and never run FHE work on the async executor's threads.
//!
//! - [`RunningService::start`] serves [`NamedModel`]s with a [`KeyStore`] under [`Limits`].
//! - [`DirectoryKeyStore`]: registered keys on disk, never visible half-written.
//! - [`Metrics`], [`percentile_plot`]: what `/metrics` and `dlrm-he bench serve` report.
//!
//! The HTTP API is documented in `docs/api.md`.

mod error;
mod metrics;
mod service;
mod store;
mod tenants;

pub use error::{ApiError, Result, ServeError};
pub use metrics::{Metrics, QUANTILES, STAGES, latency_histogram, percentile_plot, record};
pub use service::{BINARY, KEY_HEADER, Limits, NamedModel, RunningService, ServiceConfig};
pub use store::{DirectoryKeyStore, KeyEntry, KeyId, KeyStore};
pub use tenants::{MAX_TENANTS_FILE_BYTES, Quotas, Tenant, Tenants, Token, valid_name};
