//! Admission control: a bounded queue of inference calls in front of a fixed number of workers
//! on the FHE thread pool, and a bound on key uploads validated at once. Calls beyond the queue
//! are refused at once (429), calls that wait too long for a worker are refused (503), so an
//! overloaded service answers quickly instead of piling up work.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::config::Limits;
use crate::error::{ApiError, Result, ServeError};
use crate::metrics::ServiceMetrics;

/// The queue, the workers and the pool they run on.
pub(crate) struct Admission {
    /// Places for calls admitted and not finished: the workers plus the queue.
    places: Arc<Semaphore>,
    /// The number of places.
    capacity: usize,
    workers: Arc<Semaphore>,
    key_uploads: Arc<Semaphore>,
    /// Every FHE operation runs here, never on the async executor's threads.
    pool: rayon::ThreadPool,
    queue_timeout: Duration,
    metrics: Arc<ServiceMetrics>,
}

impl Admission {
    /// The queue, workers and FHE pool that `limits` size.
    pub(crate) fn new(limits: &Limits, metrics: Arc<ServiceMetrics>) -> Result<Arc<Self>> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(limits.fhe_threads)
            .thread_name(|i| format!("fhe-{i}"))
            .build()
            .map_err(|e| ServeError::Start(e.to_string()))?;
        Ok(Arc::new(Admission {
            places: Arc::new(Semaphore::new(limits.workers + limits.queue)),
            capacity: limits.workers + limits.queue,
            workers: Arc::new(Semaphore::new(limits.workers)),
            key_uploads: Arc::new(Semaphore::new(limits.key_uploads)),
            pool,
            queue_timeout: limits.queue_timeout,
            metrics,
        }))
    }

    /// Admits one inference call, or refuses it when every place is taken.
    pub(crate) fn admit(self: &Arc<Self>) -> std::result::Result<Admitted, ApiError> {
        let place = self.places.clone().try_acquire_owned().map_err(|_| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "overloaded",
                format!("{} calls are running or queued; retry later", self.capacity),
            )
        })?;
        self.metrics.admitted.fetch_add(1, Ordering::Relaxed);
        Ok(Admitted {
            _place: place,
            admission: self.clone(),
        })
    }

    /// Admits one key upload (held while its body is read and validated), or refuses it.
    pub(crate) fn admit_key_upload(&self) -> std::result::Result<OwnedSemaphorePermit, ApiError> {
        self.key_uploads.clone().try_acquire_owned().map_err(|_| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "busy",
                "too many key uploads at once; retry later",
            )
        })
    }
}

/// An admitted call; dropping it frees its place.
pub(crate) struct Admitted {
    _place: OwnedSemaphorePermit,
    admission: Arc<Admission>,
}

impl Admitted {
    /// Waits for a worker (within the queue timeout), then runs `work` on the FHE pool. `work`
    /// is given a question to ask between its steps: whether the caller has gone (the call's
    /// future was dropped, as when its client disconnects), so that it can stop early.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&(dyn Fn() -> bool + Sync)) -> T + Send + 'static,
    ) -> std::result::Result<T, ApiError> {
        let admission = &self.admission;
        let worker = tokio::time::timeout(
            admission.queue_timeout,
            admission.workers.clone().acquire_owned(),
        )
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue_timeout",
                format!(
                    "no worker became free within {} s",
                    admission.queue_timeout.as_secs_f64()
                ),
            )
        })?
        .map_err(|_| ApiError::internal("worker pool closed"))?;
        let (sender, receiver) = oneshot::channel();
        let metrics = admission.metrics.clone();
        admission.pool.spawn(move || {
            let _worker = worker;
            metrics.running.fetch_add(1, Ordering::Relaxed);
            // A panic (a bug) fails this call only: the pool, the service and the other calls
            // go on.
            let caller_gone = || sender.is_closed();
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&caller_gone)));
            metrics.running.fetch_sub(1, Ordering::Relaxed);
            // The caller may have gone; the work is done either way.
            let _ = sender.send(outcome);
        });
        receiver
            .await
            .map_err(|_| ApiError::internal("the FHE worker stopped"))?
            .map_err(|_| ApiError::internal("the computation failed; the service keeps serving"))
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.admission
            .metrics
            .admitted
            .fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_job_fails_its_call_and_the_next_call_runs() {
        let limits = Limits {
            fhe_threads: 1,
            ..Limits::default()
        };
        let admission = Admission::new(&limits, Arc::new(ServiceMetrics::default())).unwrap();
        let failed = admission
            .admit()
            .unwrap()
            .run(|_| -> u32 { panic!("injected") })
            .await
            .unwrap_err();
        assert_eq!((failed.status, failed.code), (500, "internal"));
        let answered = admission.admit().unwrap().run(|_| 7).await.unwrap();
        assert_eq!(answered, 7);
        assert_eq!(admission.metrics.running.load(Ordering::Relaxed), 0);
    }
}
