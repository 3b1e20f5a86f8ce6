//! The HTTP service: routes, admission control, the FHE thread pool and the server lifecycle.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use fhe::{CompressedServerKey, ParameterSetId, ServerKey};
use infer::{FhePlan, ModelInterface, ServerModel, StageTimings};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::error::{ApiError, Result, ServeError};
use crate::metrics::Metrics;
use crate::store::{KeyEntry, KeyId, KeyStore};

/// The header that names the registered server key an inference call runs with.
pub const KEY_HEADER: &str = "x-key-id";
/// Content type of keys, requests and responses (the bytes formats of `fhe` and `infer`).
pub const BINARY: &str = "application/octet-stream";

/// Limits and pool sizes. The defaults suit one machine: FHE work on every core, one call
/// running at a time (its bootstraps already use every core; on 2 cores a second concurrent call
/// added 2.5-5.3% throughput and made p99 1.5-2x p50 instead of 1.05x, see the README), and a
/// short queue behind it.
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
}

impl Default for Limits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Limits {
            fhe_threads: cores,
            workers: 1,
            queue: 4 * cores,
            queue_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            max_key_bytes: 64 << 20,
            key_uploads: 2,
            max_batch: 32,
            key_cache: 16,
        }
    }
}

/// How to start a service.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    pub addr: SocketAddr,
    pub limits: Limits,
    /// Stop gracefully on Ctrl-C and SIGTERM (the command line); tests and benchmarks stop the
    /// service through [`RunningService::shutdown`] instead.
    pub handle_signals: bool,
}

/// A model the service serves, under a name used in its URLs.
pub struct NamedModel {
    pub name: String,
    pub model: ServerModel,
}

struct LoadedModel {
    name: String,
    server: ServerModel,
    max_request_bytes: usize,
}

/// Decompressed server keys, least recently used dropped first.
struct KeyCache {
    capacity: usize,
    clock: AtomicU64,
    entries: Mutex<HashMap<KeyId, (Arc<ServerKey>, u64)>>,
}

impl KeyCache {
    fn get(&self, id: &KeyId) -> Option<Arc<ServerKey>> {
        let mut entries = self.entries.lock().expect("key cache lock");
        let (key, used) = entries.get_mut(id)?;
        *used = self.clock.fetch_add(1, Ordering::Relaxed);
        Some(key.clone())
    }

    fn insert(&self, id: KeyId, key: Arc<ServerKey>) {
        let mut entries = self.entries.lock().expect("key cache lock");
        while entries.len() >= self.capacity {
            let oldest = entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(id, _)| id.clone())
                .expect("a full cache is not empty");
            entries.remove(&oldest);
        }
        entries.insert(id, (key, self.clock.fetch_add(1, Ordering::Relaxed)));
    }

    fn remove(&self, id: &KeyId) {
        self.entries.lock().expect("key cache lock").remove(id);
    }

    fn len(&self) -> usize {
        self.entries.lock().expect("key cache lock").len()
    }
}

struct Shared {
    models: BTreeMap<String, Arc<LoadedModel>>,
    store: Arc<dyn KeyStore>,
    keys: KeyCache,
    limits: Limits,
    pool: rayon::ThreadPool,
    admission: Arc<Semaphore>,
    workers: Arc<Semaphore>,
    key_uploads: Arc<Semaphore>,
    metrics: Metrics,
    ready: AtomicBool,
}

type AppState = Arc<Shared>;

/// A service running on its own threads. Dropping it shuts it down gracefully.
pub struct RunningService {
    addr: SocketAddr,
    shared: AppState,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl RunningService {
    /// Binds `config.addr`, loads nothing lazily (models are prepared already) and starts
    /// serving on a background thread. Use port 0 for any free port, then [`Self::addr`].
    pub fn start(
        config: ServiceConfig,
        store: Arc<dyn KeyStore>,
        models: Vec<NamedModel>,
    ) -> Result<Self> {
        let limits = config.limits.clone();
        check_limits(&limits)?;
        if models.is_empty() {
            return Err(ServeError::Config("no model to serve".into()));
        }
        let mut loaded = BTreeMap::new();
        for NamedModel { name, model } in models {
            if !valid_name(&name) {
                return Err(ServeError::Config(format!(
                    "model name `{name}`: use letters, digits, `-`, `_` and `.`"
                )));
            }
            let max_request_bytes = infer::Request::max_bytes(model.interface())?;
            let entry = Arc::new(LoadedModel {
                name: name.clone(),
                server: model,
                max_request_bytes,
            });
            if loaded.insert(name.clone(), entry).is_some() {
                return Err(ServeError::Config(format!("two models are named `{name}`")));
            }
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(limits.fhe_threads)
            .thread_name(|i| format!("fhe-{i}"))
            .build()
            .map_err(|e| ServeError::Start(e.to_string()))?;
        let shared = Arc::new(Shared {
            models: loaded,
            store,
            keys: KeyCache {
                capacity: limits.key_cache,
                clock: AtomicU64::new(0),
                entries: Mutex::default(),
            },
            admission: Arc::new(Semaphore::new(limits.workers + limits.queue)),
            workers: Arc::new(Semaphore::new(limits.workers)),
            key_uploads: Arc::new(Semaphore::new(limits.key_uploads)),
            limits,
            pool,
            metrics: Metrics::default(),
            ready: AtomicBool::new(true),
        });
        let listener = std::net::TcpListener::bind(config.addr)
            .map_err(|e| ServeError::Start(format!("bind {}: {e}", config.addr)))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| ServeError::Start(e.to_string()))?;
        let addr = listener
            .local_addr()
            .map_err(|e| ServeError::Start(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("http")
            .enable_all()
            .build()
            .map_err(|e| ServeError::Start(e.to_string()))?;
        let (stop, stopped) = oneshot::channel();
        let app = router(shared.clone());
        let signals = config.handle_signals;
        let state = shared.clone();
        let thread = std::thread::Builder::new()
            .name("serve".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .map_err(|e| ServeError::Start(e.to_string()))?;
                    accept_until_stopped(listener, app, &state, stop_requested(stopped, signals))
                        .await;
                    Ok(())
                })
            })
            .map_err(|e| ServeError::Start(e.to_string()))?;
        Ok(RunningService {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The live metrics (what `/metrics` renders).
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Stops accepting connections, lets in-flight calls finish, and returns.
    pub fn shutdown(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.join()
    }

    /// Blocks until the service stops (after a signal, when it handles them).
    pub fn wait(mut self) -> Result<()> {
        self.join()
    }

    fn join(&mut self) -> Result<()> {
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| ServeError::Start("the service thread panicked".into()))?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningService {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.join();
    }
}

/// Serves connections (HTTP/1.1, with a header-read timeout) until `stop` completes, then stops
/// accepting, asks open connections to close after their current call, and waits for them.
async fn accept_until_stopped(
    listener: tokio::net::TcpListener,
    app: Router,
    state: &Shared,
    stop: impl std::future::Future<Output = ()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(state.limits.header_timeout);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                // A failed accept (out of descriptors, a reset) concerns one connection only;
                // pause briefly so a persistent one does not spin.
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let service = hyper_util::service::TowerToHyperService::new(app.clone());
                let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
            _ = &mut stop => break,
        }
    }
    state.ready.store(false, Ordering::SeqCst);
    drop(listener);
    graceful.shutdown().await;
}

async fn stop_requested(stopped: oneshot::Receiver<()>, signals: bool) {
    // A dropped sender also stops the service.
    let stop = async {
        let _ = stopped.await;
    };
    if !signals {
        return stop.await;
    }
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = stop => {}
        _ = interrupt => {}
        _ = terminate => {}
    }
}

fn check_limits(limits: &Limits) -> Result<()> {
    let counts = [
        ("fhe_threads", limits.fhe_threads),
        ("workers", limits.workers),
        ("key_uploads", limits.key_uploads),
        ("max_batch", limits.max_batch),
        ("key_cache", limits.key_cache),
    ];
    match counts.iter().find(|(_, n)| *n == 0) {
        Some((name, _)) => Err(ServeError::Config(format!(
            "limit {name} must be at least 1"
        ))),
        None => Ok(()),
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/keys", post(register_key).get(list_keys))
        .route("/v1/keys/{id}", delete(delete_key).get(get_key))
        .route("/v1/models", get(list_models))
        .route("/v1/models/{name}", get(describe_model))
        .route("/v1/models/{name}/infer", post(infer_one))
        .route("/v1/models/{name}/infer-batch", post(infer_batch))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), track))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        // Bodies are read by the handlers, under per-endpoint limits and a timeout.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// Records every routed call's latency and status under its route template.
async fn track(
    State(state): State<AppState>,
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let endpoint = matched.map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    state.metrics.record_call(
        &format!("{method} {endpoint}"),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// Reads a body of at most `limit` bytes within the body timeout.
async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    timeout: Duration,
) -> std::result::Result<Bytes, ApiError> {
    let too_large = |size: String| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("body of {size} bytes, the limit is {limit}"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = declared.filter(|&l| l > limit as u64) {
        return Err(too_large(length.to_string()));
    }
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!("the body did not arrive within {} s", timeout.as_secs_f64()),
        )),
        Ok(Err(error)) => {
            let error = error.into_inner();
            if error.is::<http_body_util::LengthLimitError>() {
                Err(too_large(format!("more than {limit}")))
            } else {
                Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_body",
                    format!("reading the body: {error}"),
                ))
            }
        }
        Ok(Ok(bytes)) => Ok(bytes),
    }
}

#[derive(Deserialize)]
struct KeyQuery {
    parameter_set: Option<String>,
}

#[derive(Serialize)]
struct Registered {
    #[serde(flatten)]
    entry: KeyEntry,
    /// False when the same key was registered before.
    created: bool,
}

async fn register_key(
    State(state): State<AppState>,
    Query(query): Query<KeyQuery>,
    headers: HeaderMap,
    body: Body,
) -> std::result::Result<Response, ApiError> {
    let parameter_set = match query.parameter_set {
        None => ParameterSetId::default(),
        Some(name) => name.parse().map_err(|e: fhe::FheError| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "unknown_parameter_set",
                e.to_string(),
            )
        })?,
    };
    // Taken before the body is read, so concurrent uploads cannot exhaust memory.
    let _permit = state.key_uploads.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "busy",
            "too many key uploads at once; retry later",
        )
    })?;
    let bytes = read_body(
        body,
        &headers,
        state.limits.max_key_bytes,
        state.limits.body_timeout,
    )
    .await?;
    let store = state.store.clone();
    let registered = tokio::task::spawn_blocking(move || {
        CompressedServerKey::from_bytes(&bytes, parameter_set)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_key", e.to_string()))?;
        let key_id = KeyId::of(parameter_set, &bytes);
        let created = store.put(&key_id, parameter_set, &bytes)?;
        Ok::<_, ApiError>(Registered {
            entry: KeyEntry {
                key_id,
                parameter_set,
                bytes: bytes.len() as u64,
            },
            created,
        })
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    let status = if registered.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(registered)).into_response())
}

fn parse_key_id(text: &str) -> std::result::Result<KeyId, ApiError> {
    Ok(text.parse::<KeyId>()?)
}

fn unknown_key(id: &KeyId) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_key",
        format!("no key {id} is registered"),
    )
}

async fn list_keys(State(state): State<AppState>) -> std::result::Result<Response, ApiError> {
    Ok(axum::Json(state.store.list()?).into_response())
}

async fn get_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> std::result::Result<Response, ApiError> {
    let id = parse_key_id(&id)?;
    let entry = state.store.entry(&id)?.ok_or_else(|| unknown_key(&id))?;
    Ok(axum::Json(entry).into_response())
}

async fn delete_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> std::result::Result<Response, ApiError> {
    let id = parse_key_id(&id)?;
    if !state.store.delete(&id)? {
        return Err(unknown_key(&id));
    }
    state.keys.remove(&id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// What `GET /v1/models` lists per model.
#[derive(Serialize)]
struct ModelSummary<'a> {
    name: &'a str,
    model_id: &'a str,
    parameter_set: ParameterSetId,
    dense_features: usize,
    tables: usize,
    bootstraps: usize,
}

/// What `GET /v1/models/{name}` returns: everything a client needs to build requests.
#[derive(Serialize)]
struct ModelDescription<'a> {
    name: &'a str,
    interface: &'a ModelInterface,
    request: RequestLayout,
    plan: PlanSummary<'a>,
}

#[derive(Serialize)]
struct RequestLayout {
    /// Dense-feature GLWE ciphertexts, then query GLWE ciphertexts (digit one-hots, packed).
    dense_glwes: usize,
    query_glwes: usize,
    max_request_bytes: usize,
    key_header: &'static str,
    content_type: &'static str,
}

#[derive(Serialize)]
struct PlanSummary<'a> {
    bootstraps: usize,
    layers: &'a [infer::LayerPlan],
    lookup: &'a infer::LookupSummary,
}

impl LoadedModel {
    fn summary(&self) -> ModelSummary<'_> {
        let interface = self.server.interface();
        ModelSummary {
            name: &self.name,
            model_id: &interface.model_id,
            parameter_set: interface.parameter_set,
            dense_features: interface.dense_features,
            tables: interface.tables.len(),
            bootstraps: self.server.plan().bootstraps(),
        }
    }

    fn description(&self) -> std::result::Result<ModelDescription<'_>, ApiError> {
        let interface = self.server.interface();
        let plan: &FhePlan = self.server.plan();
        let (dense_glwes, query_glwes) = interface.request_glwe_counts()?;
        Ok(ModelDescription {
            name: &self.name,
            interface,
            request: RequestLayout {
                dense_glwes,
                query_glwes,
                max_request_bytes: self.max_request_bytes,
                key_header: KEY_HEADER,
                content_type: BINARY,
            },
            plan: PlanSummary {
                bootstraps: plan.bootstraps(),
                layers: &plan.layers,
                lookup: &plan.lookup,
            },
        })
    }
}

async fn list_models(State(state): State<AppState>) -> Response {
    let summaries: Vec<ModelSummary> = state.models.values().map(|m| m.summary()).collect();
    axum::Json(summaries).into_response()
}

impl Shared {
    fn model(&self, name: &str) -> std::result::Result<Arc<LoadedModel>, ApiError> {
        self.models.get(name).cloned().ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_model",
                format!(
                    "no model named `{}` is loaded",
                    name.chars().take(64).collect::<String>()
                ),
            )
        })
    }

    /// The registered key named by the call's header, checked against the model's parameter set.
    fn key_for(
        &self,
        headers: &HeaderMap,
        model: &LoadedModel,
    ) -> std::result::Result<KeyId, ApiError> {
        let text = headers
            .get(KEY_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "missing_key_id",
                    format!("name the registered server key in the `{KEY_HEADER}` header"),
                )
            })?;
        let id = parse_key_id(text)?;
        let entry = self.store.entry(&id)?.ok_or_else(|| unknown_key(&id))?;
        let expected = model.server.interface().parameter_set;
        if entry.parameter_set != expected {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "wrong_parameter_set",
                format!(
                    "key {id} is for parameter set {}, model `{}` uses {expected}",
                    entry.parameter_set, model.name
                ),
            ));
        }
        Ok(id)
    }

    /// Admits one inference call, or refuses it when the queue is full.
    fn admit(self: &Arc<Self>) -> std::result::Result<Admitted, ApiError> {
        let permit = self.admission.clone().try_acquire_owned().map_err(|_| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "overloaded",
                format!(
                    "{} calls are running or queued; retry later",
                    self.limits.workers + self.limits.queue
                ),
            )
        })?;
        self.metrics.admitted.fetch_add(1, Ordering::Relaxed);
        Ok(Admitted {
            _permit: permit,
            shared: self.clone(),
        })
    }

    /// The decompressed key `id` (loaded from the store on a miss). Runs on the FHE pool.
    fn server_key(&self, id: &KeyId) -> std::result::Result<Arc<ServerKey>, ApiError> {
        if let Some(key) = self.keys.get(id) {
            return Ok(key);
        }
        let (parameter_set, bytes) = self.store.load(id)?.ok_or_else(|| unknown_key(id))?;
        let key = CompressedServerKey::from_bytes(&bytes, parameter_set)
            .map_err(|e| ApiError::internal(format!("stored key {id} does not decode: {e}")))?;
        let key = Arc::new(key.decompress());
        self.keys.insert(id.clone(), key.clone());
        Ok(key)
    }

    /// Waits for a worker, then runs `requests` (encrypted request bytes) on the FHE pool.
    async fn run(
        self: &Arc<Self>,
        model: Arc<LoadedModel>,
        key: KeyId,
        requests: Vec<Bytes>,
    ) -> std::result::Result<Vec<(Vec<u8>, StageTimings)>, ApiError> {
        let worker: OwnedSemaphorePermit = tokio::time::timeout(
            self.limits.queue_timeout,
            self.workers.clone().acquire_owned(),
        )
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue_timeout",
                format!(
                    "no worker became free within {} s",
                    self.limits.queue_timeout.as_secs_f64()
                ),
            )
        })?
        .map_err(|_| ApiError::internal("worker pool closed"))?;
        let (sender, receiver) = oneshot::channel();
        let shared = self.clone();
        self.pool.spawn(move || {
            let _worker = worker;
            shared.metrics.running.fetch_add(1, Ordering::Relaxed);
            let outcome = shared.execute(&model, &key, &requests);
            shared.metrics.running.fetch_sub(1, Ordering::Relaxed);
            // The caller may have gone; the work is done either way.
            let _ = sender.send(outcome);
        });
        receiver
            .await
            .map_err(|_| ApiError::internal("the FHE worker stopped"))?
    }

    fn execute(
        &self,
        model: &LoadedModel,
        key: &KeyId,
        requests: &[Bytes],
    ) -> std::result::Result<Vec<(Vec<u8>, StageTimings)>, ApiError> {
        let key = self.server_key(key)?;
        let interface = model.server.interface();
        let batch = requests.len() > 1;
        let decoded: Vec<(infer::Request, Duration)> = requests
            .par_iter()
            .enumerate()
            .map(|(index, bytes)| {
                let started = Instant::now();
                infer::Request::from_bytes(bytes, interface)
                    .map(|request| (request, started.elapsed()))
                    .map_err(|e| {
                        let mut error = ApiError::from(e);
                        if batch {
                            error.message = format!("request {index}: {}", error.message);
                        }
                        error
                    })
            })
            .collect::<std::result::Result<_, _>>()?;
        let outcomes = decoded
            .into_par_iter()
            .map(|(request, decode)| {
                let (response, mut timings) = model
                    .server
                    .infer(&key, &request)
                    .map_err(|e| ApiError::internal(e.to_string()))?;
                timings.decode = decode;
                let started = Instant::now();
                let bytes = response
                    .to_bytes()
                    .map_err(|e| ApiError::internal(e.to_string()))?;
                timings.encode = started.elapsed();
                Ok((bytes, timings))
            })
            .collect::<std::result::Result<Vec<_>, ApiError>>()?;
        for (_, timings) in &outcomes {
            self.metrics.record_stages(&model.name, timings);
        }
        Ok(outcomes)
    }
}

/// An admitted call; dropping it frees its place in the queue.
struct Admitted {
    _permit: OwnedSemaphorePermit,
    shared: AppState,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.shared.metrics.admitted.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn describe_model(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> std::result::Result<Response, ApiError> {
    let model = state.model(&name)?;
    Ok(axum::Json(model.description()?).into_response())
}

fn binary(bytes: Vec<u8>, timings: Option<&StageTimings>) -> Response {
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(BINARY));
    if let Some(t) = timings {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let value = t
            .stages()
            .iter()
            .map(|(name, d)| format!("{name};dur={:.3}", ms(*d)))
            .collect::<Vec<_>>()
            .join(", ");
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert("server-timing", value);
        }
    }
    response
}

/// The common start of an inference call: the model, its key, a place in the queue, then the
/// body (read only once admitted, under a limit of `items` requests).
async fn accept_call(
    state: &AppState,
    name: &str,
    headers: &HeaderMap,
    body: Body,
    items: usize,
) -> std::result::Result<(Arc<LoadedModel>, KeyId, Admitted, Bytes), ApiError> {
    let model = state.model(name)?;
    let key = state.key_for(headers, &model)?;
    let admitted = state.admit()?;
    let limit = match items {
        1 => model.max_request_bytes,
        n => n * (model.max_request_bytes + 8) + 16,
    };
    let bytes = read_body(body, headers, limit, state.limits.body_timeout).await?;
    Ok((model, key, admitted, bytes))
}

async fn infer_one(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> std::result::Result<Response, ApiError> {
    let (model, key, _admitted, bytes) = accept_call(&state, &name, &headers, body, 1).await?;
    let mut outcomes = state.run(model, key, vec![bytes]).await?;
    let (response, timings) = outcomes.pop().expect("one request gives one response");
    Ok(binary(response, Some(&timings)))
}

async fn infer_batch(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> std::result::Result<Response, ApiError> {
    let max_items = state.limits.max_batch;
    let (model, key, _admitted, bytes) =
        accept_call(&state, &name, &headers, body, max_items).await?;
    let requests: Vec<Bytes> = infer::decode_batch(&bytes, max_items)?
        .into_iter()
        .map(|item| bytes.slice_ref(item))
        .collect();
    let outcomes = state.run(model, key, requests).await?;
    let responses: Vec<Vec<u8>> = outcomes.into_iter().map(|(bytes, _)| bytes).collect();
    Ok(binary(infer::encode_batch(&responses), None))
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the service is shutting down",
        )
        .into_response()
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let registered = state
        .store
        .list()
        .map_or(f64::NAN, |keys| keys.len() as f64);
    let gauges = [
        (
            "dlrmhe_registered_keys",
            "Server keys in the key store.",
            registered,
        ),
        (
            "dlrmhe_loaded_keys",
            "Decompressed server keys held in memory.",
            state.keys.len() as f64,
        ),
    ];
    let mut response = state.metrics.render(&gauges).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}
