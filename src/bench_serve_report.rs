//! What `dlrm-he bench serve` measured on one service, and how it prints it: throughput per
//! round, client and server latency percentiles, server stages, answers checked against the
//! integer reference.

use std::time::Duration;

use client::Client;
use dlrm::QuantizedModel;
use hdrhistogram::Histogram;

use crate::bench_serve_sides::Side;

/// One client identity of the benchmark: a key registered with every service.
pub(crate) struct Identity {
    pub(crate) client: Client,
    /// The key's id on each service, in the order of the sides.
    pub(crate) key_ids: Vec<String>,
}

/// The route the benchmark measures on the server side.
pub(crate) const INFER_ENDPOINT: &str = "POST /v1/models/{name}/infer";

/// What the benchmark's clients saw on one service.
pub(crate) struct Measured {
    pub(crate) latency: Histogram<u64>,
    /// Request index and encrypted answer.
    pub(crate) answers: Vec<(usize, Vec<u8>)>,
    pub(crate) errors: Vec<String>,
    /// Time spent driving this service, all rounds together.
    pub(crate) wall: Duration,
    /// Answers per second of each round.
    pub(crate) rounds: Vec<f64>,
}

impl Default for Measured {
    fn default() -> Self {
        Measured {
            latency: serve::latency_histogram(),
            answers: Vec::new(),
            errors: Vec::new(),
            wall: Duration::ZERO,
            rounds: Vec::new(),
        }
    }
}

impl Measured {
    pub(crate) fn add(&mut self, other: Measured) {
        self.latency
            .add(&other.latency)
            .expect("same histogram bounds");
        self.answers.extend(other.answers);
        self.errors.extend(other.errors);
    }

    pub(crate) fn throughput(&self) -> f64 {
        self.answers.len() as f64 / self.wall.as_secs_f64()
    }
}

/// The server-side histograms of one service before the measured requests (the warm-ups).
pub(crate) struct Baseline {
    pub(crate) endpoint: Histogram<u64>,
    pub(crate) stages: Vec<Histogram<u64>>,
}

/// Prints one service's figures, answers far from the integer reference included (bootstrap
/// misreads, which the quantizer's fidelity figures account for); returns its server-side
/// /infer latency (warm-ups left out) and its count of errors.
#[allow(clippy::too_many_arguments)]
pub(crate) fn report(
    side: &Side,
    measured: &Measured,
    baseline: &Baseline,
    name: &str,
    identities: &[Identity],
    requests: &[(usize, Vec<u8>)],
    rows: &[datasets::MappedRow],
    quantized: &QuantizedModel,
) -> anyhow::Result<(Histogram<u64>, usize)> {
    let bound = 6.0 * quantized.output_noise_sd().max(1.0);
    let mut far = Vec::new();
    for (index, bytes) in &measured.answers {
        let (identity, _) = &requests[*index];
        let prediction = identities[*identity].client.decrypt_bytes(bytes)?;
        let row = &rows[index % rows.len()];
        let reference = quantized.forward(&quantized.quantize_input(&row.dense), &row.ids)?;
        if (prediction.logit_numerator > 0) != (reference > 0)
            && (prediction.logit_numerator - reference).abs() as f64 > bound
        {
            far.push(*index);
        }
    }
    far.sort_unstable();
    let wrong = far.len();
    let latency = &measured.latency;
    println!(
        "answered {} of {} in {:.1} s: throughput {:.2} requests/s (rounds: {}); errors {}; answers far from the reference {wrong}",
        measured.answers.len(),
        requests.len(),
        measured.wall.as_secs_f64(),
        measured.throughput(),
        measured
            .rounds
            .iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(", "),
        measured.errors.len()
    );
    if !far.is_empty() {
        // Bootstrap misreads of those ciphertexts (FHE's own error rate, which `eval` and
        // `bench infer` report against `simulate`), not the service's doing: every service
        // returns the same bytes for the same request (checked by the caller).
        println!("  far answers (class flipped by bootstrap misreads): requests {far:?}");
    }
    for error in measured.errors.iter().take(5) {
        println!("  error: {error}");
    }
    println!(
        "client latency (ms): p50 {:.1} | p90 {:.1} | p99 {:.1} | max {:.1}; p99 / p50 = {:.2}",
        ms(latency, 0.5),
        ms(latency, 0.9),
        ms(latency, 0.99),
        ms(latency, 1.0),
        ms(latency, 0.99) / ms(latency, 0.5)
    );
    let metrics = side.service.metrics();
    let mut server = metrics.endpoint_latency(INFER_ENDPOINT);
    server
        .subtract(&baseline.endpoint)
        .expect("the warm-ups are part of the same histogram");
    println!(
        "server /infer latency (ms, from arrival to answer): p50 {:.1} | p90 {:.1} | p99 {:.1}",
        ms(&server, 0.5),
        ms(&server, 0.9),
        ms(&server, 0.99)
    );
    println!("server stages (ms): p50 / p90 / p99");
    for (stage, warm_ups) in serve::STAGES.iter().zip(&baseline.stages) {
        let mut histogram = metrics.stage_latency(name, stage);
        histogram
            .subtract(warm_ups)
            .expect("the warm-ups are part of the same histogram");
        println!(
            "  {stage:<7} {:>9.1} {:>9.1} {:>9.1}",
            ms(&histogram, 0.5),
            ms(&histogram, 0.9),
            ms(&histogram, 0.99)
        );
    }
    Ok((server, measured.errors.len()))
}

pub(crate) fn ms(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1000.0
}
