//! Latency histograms (hdrhistogram) per endpoint and per stage, exported in the Prometheus text
//! format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// The quantiles `/metrics` reports.
const QUANTILES: [f64; 5] = [0.5, 0.9, 0.99, 0.999, 1.0];

/// A latency histogram in microseconds, from 1 µs to one hour, three significant digits.
///
/// ```
/// let mut h = serve::latency_histogram();
/// h.record(1500).unwrap();
/// assert_eq!(h.value_at_quantile(0.5) / 10, 150);
/// ```
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// Records `elapsed` in microseconds, saturating at the histogram's bounds.
pub fn record(histogram: &mut Histogram<u64>, elapsed: Duration) {
    let micros = (elapsed.as_micros() as u64).clamp(1, histogram.high());
    histogram.saturating_record(micros);
}

/// One model's stages, in execution order.
pub const STAGES: [&str; 6] = infer::StageTimings::NAMES;

#[derive(Default)]
struct Tables {
    /// Per endpoint (the route template): latency, and the count per status code.
    endpoints: BTreeMap<String, (Histogram<u64>, BTreeMap<u16, u64>)>,
    /// Per (model, stage).
    stages: BTreeMap<(String, &'static str), Histogram<u64>>,
    /// Ranked requests per (model, stage): one call's stages cover all its candidates, so they
    /// are kept apart from the single rows'.
    rank_stages: BTreeMap<(String, &'static str), Histogram<u64>>,
    /// Candidates scored per model.
    candidates: BTreeMap<String, u64>,
}

/// The service's live metrics (what `/metrics` renders).
pub struct ServiceMetrics {
    tables: Mutex<Tables>,
    started: Instant,
    /// Inference calls admitted and not finished (waiting or running).
    pub(crate) admitted: AtomicU64,
    /// Inference calls running on the FHE pool.
    pub(crate) running: AtomicU64,
    /// Inference calls whose client left before the answer and whose work stopped early.
    pub(crate) abandoned: AtomicU64,
}

impl Default for ServiceMetrics {
    fn default() -> Self {
        ServiceMetrics {
            tables: Mutex::default(),
            started: Instant::now(),
            admitted: AtomicU64::new(0),
            running: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
        }
    }
}

impl ServiceMetrics {
    /// Records one HTTP call.
    pub fn record_call(&self, endpoint: &str, status: u16, elapsed: Duration) {
        let mut tables = self.tables.lock().expect("metrics lock");
        let (histogram, statuses) = tables
            .endpoints
            .entry(endpoint.to_owned())
            .or_insert_with(|| (latency_histogram(), BTreeMap::new()));
        record(histogram, elapsed);
        *statuses.entry(status).or_default() += 1;
    }

    /// Records the stages of one inference of `model`.
    pub fn record_stages(&self, model: &str, timings: &infer::StageTimings) {
        let mut tables = self.tables.lock().expect("metrics lock");
        record_each_stage(&mut tables.stages, model, timings);
    }

    /// Records the stages of one ranked request of `model` with `candidates` candidates.
    pub fn record_rank(&self, model: &str, candidates: usize, timings: &infer::StageTimings) {
        let mut tables = self.tables.lock().expect("metrics lock");
        record_each_stage(&mut tables.rank_stages, model, timings);
        *tables.candidates.entry(model.to_owned()).or_default() += candidates as u64;
    }

    /// Candidates of `model` scored by ranked requests so far.
    pub fn ranked_candidates(&self, model: &str) -> u64 {
        let tables = self.tables.lock().expect("metrics lock");
        tables.candidates.get(model).copied().unwrap_or(0)
    }

    /// Inference calls stopped early because their client left.
    pub fn abandoned_calls(&self) -> u64 {
        self.abandoned.load(Ordering::Relaxed)
    }

    /// The latency histogram of `endpoint` so far (empty if never called).
    pub fn endpoint_latency(&self, endpoint: &str) -> Histogram<u64> {
        let tables = self.tables.lock().expect("metrics lock");
        tables
            .endpoints
            .get(endpoint)
            .map_or_else(latency_histogram, |(h, _)| h.clone())
    }

    /// The histogram of `stage` (one of [`STAGES`]) of `model` so far (empty if none ran).
    pub fn stage_latency(&self, model: &str, stage: &str) -> Histogram<u64> {
        let tables = self.tables.lock().expect("metrics lock");
        tables
            .stages
            .iter()
            .find(|((m, s), _)| m == model && *s == stage)
            .map_or_else(latency_histogram, |(_, h)| h.clone())
    }

    /// Everything in the Prometheus text exposition format (summaries with quantiles).
    pub fn render(&self, gauges: &[(&str, &str, f64)]) -> String {
        let tables = self.tables.lock().expect("metrics lock");
        let mut out = String::new();
        header(
            &mut out,
            "dlrmhe_http_request_duration_seconds",
            "summary",
            "Latency of HTTP calls by endpoint, from the request's arrival to the response.",
        );
        for (endpoint, (histogram, _)) in &tables.endpoints {
            summary(
                &mut out,
                "dlrmhe_http_request_duration_seconds",
                &format!("endpoint=\"{endpoint}\""),
                histogram,
            );
        }
        header(
            &mut out,
            "dlrmhe_http_requests_total",
            "counter",
            "HTTP calls by endpoint and status.",
        );
        for (endpoint, (_, statuses)) in &tables.endpoints {
            for (status, count) in statuses {
                let _ = writeln!(
                    out,
                    "dlrmhe_http_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} {count}"
                );
            }
        }
        header(
            &mut out,
            "dlrmhe_stage_duration_seconds",
            "summary",
            "Server time per inference stage and model.",
        );
        for ((model, stage), histogram) in &tables.stages {
            summary(
                &mut out,
                "dlrmhe_stage_duration_seconds",
                &format!("model=\"{model}\",stage=\"{stage}\""),
                histogram,
            );
        }
        header(
            &mut out,
            "dlrmhe_rank_stage_duration_seconds",
            "summary",
            "Server time per ranked request (all its candidates), by stage and model.",
        );
        for ((model, stage), histogram) in &tables.rank_stages {
            summary(
                &mut out,
                "dlrmhe_rank_stage_duration_seconds",
                &format!("model=\"{model}\",stage=\"{stage}\""),
                histogram,
            );
        }
        header(
            &mut out,
            "dlrmhe_ranked_candidates_total",
            "counter",
            "Candidates scored by ranked requests, by model.",
        );
        for (model, count) in &tables.candidates {
            let _ = writeln!(
                out,
                "dlrmhe_ranked_candidates_total{{model=\"{model}\"}} {count}"
            );
        }
        let abandoned = self.abandoned_calls();
        header(
            &mut out,
            "dlrmhe_inference_abandoned_total",
            "counter",
            "Inference calls stopped at a layer boundary because their client left.",
        );
        let _ = writeln!(out, "dlrmhe_inference_abandoned_total {abandoned}");
        let admitted = self.admitted.load(Ordering::Relaxed) as f64;
        let running = self.running.load(Ordering::Relaxed) as f64;
        let uptime = self.started.elapsed().as_secs_f64();
        let builtin = [
            (
                "dlrmhe_inference_admitted",
                "Inference calls admitted and not finished (waiting or running).",
                admitted,
            ),
            (
                "dlrmhe_inference_running",
                "Inference calls running on the FHE thread pool.",
                running,
            ),
            ("dlrmhe_uptime_seconds", "Seconds since start.", uptime),
        ];
        for (name, help, value) in builtin.iter().chain(gauges) {
            header(&mut out, name, "gauge", help);
            let _ = writeln!(out, "{name} {value}");
        }
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn summary(out: &mut String, name: &str, labels: &str, histogram: &Histogram<u64>) {
    for q in QUANTILES {
        let seconds = histogram.value_at_quantile(q) as f64 * 1e-6;
        let _ = writeln!(out, "{name}{{{labels},quantile=\"{q}\"}} {seconds}");
    }
    let sum = histogram.mean() * histogram.len() as f64 * 1e-6;
    let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", histogram.len());
}

/// Records each stage of `timings` in `model`'s histogram of that stage.
fn record_each_stage(
    histograms: &mut BTreeMap<(String, &'static str), Histogram<u64>>,
    model: &str,
    timings: &infer::StageTimings,
) {
    for (stage, elapsed) in timings.stages() {
        let histogram = histograms
            .entry((model.to_owned(), stage))
            .or_insert_with(latency_histogram);
        record(histogram, elapsed);
    }
}
