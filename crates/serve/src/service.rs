//! The service's lifecycle: binding, the accept loop on its own runtime thread, and a graceful
//! stop (no new connections, calls in flight finished).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use tokio::sync::oneshot;

use crate::config::{NamedModel, ServiceConfig};
use crate::error::{Result, ServeError};
use crate::metrics::ServiceMetrics;
use crate::routes::router;
use crate::state::{AppState, Shared};
use crate::store::KeyStore;

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
                let service = hyper_util::service::TowerToHyperService::new(app.clone());
                let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    let _place = place;
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
