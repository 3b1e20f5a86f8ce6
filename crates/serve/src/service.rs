//! The service's lifecycle: binding, the accept loop on its own runtime thread (with a TLS
//! handshake per connection when configured), and a graceful stop (no new connections, calls in
//! flight finished).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;

use crate::config::{NamedModel, ServiceConfig};
use crate::error::{Result, ServeError};
use crate::metrics::ServiceMetrics;
use crate::routes::router;
use crate::state::{AppState, Shared};
use crate::store::KeyStore;

/// A service running on its own threads. Dropping it shuts it down gracefully.
pub struct RunningService {
    addr: SocketAddr,
    tls: bool,
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
        config.access.check(config.addr)?;
        let shared = Arc::new(Shared::new(config.limits, config.access, store, models)?);
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
        let tls = config.tls.as_ref().map(|tls| tls.acceptor());
        let state = shared.clone();
        let thread = std::thread::Builder::new()
            .name("serve".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .map_err(|e| ServeError::Start(e.to_string()))?;
                    let stop = stop_requested(stopped, signals);
                    accept_until_stopped(listener, app, &state, tls, stop).await;
                    Ok(())
                })
            })
            .map_err(|e| ServeError::Start(e.to_string()))?;
        Ok(RunningService {
            addr,
            tls: config.tls.is_some(),
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The service's URL: `https://ADDR` with TLS, `http://ADDR` without.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The live metrics (what `/metrics` renders).
    pub fn metrics(&self) -> &ServiceMetrics {
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

/// Serves connections (HTTP/1.1, with a header-read timeout; over TLS when `tls` is given)
/// until `stop` completes, then stops accepting, asks open connections to close after their
/// current call, and waits for them.
async fn accept_until_stopped(
    listener: tokio::net::TcpListener,
    app: Router,
    state: &Shared,
    tls: Option<TlsAcceptor>,
    stop: impl std::future::Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(state.limits.header_timeout);
    // A handshake that does not finish in the time allowed for headers is a client that opens
    // connections and never speaks: the same bound applies.
    let handshake_timeout = state.limits.header_timeout;
    let connections = Arc::new(tokio::sync::Semaphore::new(state.limits.max_connections));
    tokio::pin!(stop);
    loop {
        // A place for one more connection first: at the cap, clients wait in the accept queue.
        let place = tokio::select! {
            place = connections.clone().acquire_owned() => place.expect("never closed"),
            _ = &mut stop => break,
        };
        tokio::select! {
            accepted = listener.accept() => {
                // A failed accept (out of descriptors, a reset) concerns one connection only;
                // pause briefly so a persistent one does not spin.
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let service = TowerToHyperService::new(app.clone());
                // Watched from now on: a shutdown waits for the handshake too (bounded by its
                // timeout), then closes the connection after its current call.
                let watcher = graceful.watcher();
                let http = http.clone();
                let tls = tls.clone();
                // The handshake runs in the connection's own task, so a slow one never holds up
                // accepting the next connection.
                tokio::spawn(async move {
                    let _place = place;
                    let Some(tls) = tls else {
                        return serve_connection(&http, watcher, stream, service).await;
                    };
                    match tokio::time::timeout(handshake_timeout, tls.accept(stream)).await {
                        Ok(Ok(stream)) => serve_connection(&http, watcher, stream, service).await,
                        Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                });
            }
            _ = &mut stop => break,
        }
    }
    state.ready.store(false, Ordering::SeqCst);
    drop(listener);
    graceful.shutdown().await;
}

/// Serves the HTTP/1.1 calls of one connection (plain or TLS) until it closes.
async fn serve_connection<IO>(
    http: &http1::Builder,
    watcher: Watcher,
    io: IO,
    service: TowerToHyperService<Router>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let _ = watcher
        .watch(http.serve_connection(TokioIo::new(io), service))
        .await;
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
