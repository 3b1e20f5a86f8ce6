//! Latency histograms (hdrhistogram) per endpoint and per stage, exported in the Prometheus text
//! format, and the percentile plot the benchmark draws from them.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// The quantiles `/metrics` and the benchmark report.
pub const QUANTILES: [f64; 5] = [0.5, 0.9, 0.99, 0.999, 1.0];

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
}

/// The service's live metrics.
pub struct Metrics {
    tables: Mutex<Tables>,
    started: Instant,
    /// Inference calls admitted and not finished (waiting or running).
    pub(crate) admitted: AtomicU64,
    /// Inference calls running on the FHE pool.
    pub(crate) running: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            tables: Mutex::default(),
            started: Instant::now(),
            admitted: AtomicU64::new(0),
            running: AtomicU64::new(0),
        }
    }
}

impl Metrics {
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
        for (stage, elapsed) in timings.stages() {
            let histogram = tables
                .stages
                .entry((model.to_owned(), stage))
                .or_insert_with(latency_histogram);
            record(histogram, elapsed);
        }
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

/// A percentile plot of latency histograms (one line per series), as a standalone SVG: the x
/// axis is the percentile on the usual `1 / (1 - q)` scale (50%, 90%, 99%, 99.9%), the y axis
/// the latency in milliseconds.
///
/// ```
/// let mut h = serve::latency_histogram();
/// for micros in 1000..2000 { h.record(micros).unwrap(); }
/// let svg = serve::percentile_plot(&[("uci", &h)], "latency");
/// assert!(svg.starts_with("<svg") && svg.contains("uci") && svg.contains("99.9%"));
/// ```
pub fn percentile_plot(series: &[(&str, &Histogram<u64>)], title: &str) -> String {
    const WIDTH: f64 = 720.0;
    const HEIGHT: f64 = 420.0;
    const LEFT: f64 = 70.0;
    const RIGHT: f64 = 20.0;
    const TOP: f64 = 40.0;
    const BOTTOM: f64 = 50.0;
    const COLOURS: [&str; 6] = [
        "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
    ];
    // x: log10(1 / (1 - q)) from q = 0 to q = 0.999.
    let max_x = 3.0;
    let max_ms = series
        .iter()
        .map(|(_, h)| h.max() as f64 / 1000.0)
        .fold(0.0, f64::max)
        .max(0.001)
        * 1.1;
    let px = |x: f64| LEFT + x / max_x * (WIDTH - LEFT - RIGHT);
    let py = |ms: f64| HEIGHT - BOTTOM - ms / max_ms * (HEIGHT - TOP - BOTTOM);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    // Axes, grid and labels.
    for (x, label) in [
        (0.0, "0%"),
        (1.0, "90%"),
        (2.0, "99%"),
        (3.0, "99.9%"),
        (std::f64::consts::LOG10_2, "50%"),
    ] {
        let _ = writeln!(
            svg,
            "<line x1=\"{0:.1}\" y1=\"{TOP}\" x2=\"{0:.1}\" y2=\"{1:.1}\" stroke=\"#ddd\"/><text x=\"{0:.1}\" y=\"{2:.1}\" text-anchor=\"middle\">{label}</text>",
            px(x),
            HEIGHT - BOTTOM,
            HEIGHT - BOTTOM + 16.0
        );
    }
    for k in 0..=5 {
        let ms = max_ms * k as f64 / 5.0;
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{0:.1}\" x2=\"{1:.1}\" y2=\"{0:.1}\" stroke=\"#ddd\"/><text x=\"{2:.1}\" y=\"{3:.1}\" text-anchor=\"end\">{4}</text>",
            py(ms),
            WIDTH - RIGHT,
            LEFT - 6.0,
            py(ms) + 4.0,
            format_ms(ms)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">percentile</text>"#,
        (LEFT + WIDTH - RIGHT) / 2.0,
        HEIGHT - 12.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="16" y="{0}" text-anchor="middle" transform="rotate(-90 16 {0})">latency (ms)</text>"#,
        (TOP + HEIGHT - BOTTOM) / 2.0
    );
    for (k, (name, histogram)) in series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let points: Vec<String> = (0..=300)
            .map(|step| {
                let x = max_x * step as f64 / 300.0;
                let q = 1.0 - 10f64.powf(-x);
                let ms = histogram.value_at_quantile(q) as f64 / 1000.0;
                format!("{:.1},{:.1}", px(x), py(ms))
            })
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" fill="{colour}">{} (n = {})</text>"#,
            LEFT + 10.0,
            TOP + 16.0 * (k as f64 + 1.0),
            escape(name),
            histogram.len()
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn format_ms(ms: f64) -> String {
    if ms == 0.0 {
        "0".into()
    } else if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 1.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.3}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
