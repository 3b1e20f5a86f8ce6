//! `dlrm-he bench serve`: the service on a loopback port in this process, driven by concurrent
//! clients: throughput, latency percentiles, errors, memory, a percentile plot.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use client::{Client, ServiceClient};
use fhe::ClientKey;
use hdrhistogram::Histogram;
use serve::{DirectoryKeyStore, NamedModel, RunningService, ServiceConfig};

use crate::logging::{self, LogFormat};
use crate::percentile_plot::percentile_plot;
use crate::serve_command::LimitArgs;
use crate::session::{Session, SessionArgs, model_name, split_rows};

#[derive(Args)]
pub(crate) struct BenchServeArgs {
    #[command(flatten)]
    pub session: SessionArgs,
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Requests in all (after one warm-up request per key).
    #[arg(long, default_value_t = 40)]
    pub requests: usize,
    /// Stop sending new requests after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub max_seconds: u64,
    /// Server keys registered (the first from --keys, the rest generated); requests use them in
    /// turn, so all are held in memory.
    #[arg(long, default_value_t = 10)]
    pub registered_keys: usize,
    /// Where to write the percentile plot (SVG).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Log every call of the service to stderr in this format (default: no log).
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
}

/// One client identity of the benchmark: a key registered with the service.
struct Identity {
    client: Client,
    key_id: String,
}

/// What one benchmark client saw.
struct ClientResults {
    latency: Histogram<u64>,
    /// Request index and encrypted answer.
    answers: Vec<(usize, Vec<u8>)>,
    errors: Vec<String>,
}

impl Default for ClientResults {
    fn default() -> Self {
        ClientResults {
            latency: serve::latency_histogram(),
            answers: Vec::new(),
            errors: Vec::new(),
        }
    }
}

/// The route the benchmark measures on the server side.
const INFER_ENDPOINT: &str = "POST /v1/models/{name}/infer";

/// `dlrm-he bench serve`: starts the service on a loopback port in this process, registers
/// keys, and drives it with concurrent clients.
pub(crate) fn run(args: BenchServeArgs) -> anyhow::Result<()> {
    if args.clients == 0 || args.requests == 0 || args.registered_keys == 0 {
        bail!("--clients, --requests and --registered-keys must be at least 1");
    }
    if let Some(format) = args.log_format {
        logging::install(format)?;
    }
    // The session's prepared model is what the service serves.
    let Session {
        model: quantized,
        server: model,
        client_key,
        ..
    } = Session::open(&args.session.model, &args.session.keys)?;
    let name = model_name(&args.session.model)?;
    let data = args
        .session
        .data
        .as_deref()
        .context("bench serve sends rows of a prepared dataset's split: give --data")?;
    let rows = split_rows(data, &args.split, args.requests)?;
    let store_dir = tempfile::tempdir()?;
    let bootstraps = model.plan().bootstraps();
    let limits = args.limits.limits();
    let config = ServiceConfig {
        addr: "127.0.0.1:0".parse().expect("a valid address"),
        limits: limits.clone(),
        // The benchmark's own loopback service.
        access: serve::Access::Open {
            insecure_remote: false,
        },
        handle_signals: false,
    };
    let store = Arc::new(DirectoryKeyStore::open(store_dir.path())?);
    let service = RunningService::start(
        config,
        store,
        vec![NamedModel {
            name: name.clone(),
            model,
        }],
    )?;
    let base = format!("http://{}", service.addr());
    let http = ServiceClient::new(&base, Duration::from_secs(600))?;
    let identities = register_identities(&http, &name, &args, client_key)?;

    // Requests use the keys in turn; one warm-up per key loads every key into memory.
    let encrypt = |index: usize| -> anyhow::Result<(usize, Vec<u8>)> {
        let identity = index % identities.len();
        let row = &rows[index % rows.len()];
        let request = identities[identity].client.encrypt(&row.dense, &row.ids)?;
        Ok((identity, request.to_bytes()?))
    };
    println!("warming up: one request per key ...");
    for index in 0..identities.len() {
        let (identity, request) = encrypt(index)?;
        http.infer(&name, &identities[identity].key_id, &request)?;
    }
    let requests: Vec<(usize, Vec<u8>)> =
        (0..args.requests).map(encrypt).collect::<Result<_, _>>()?;
    let warm_ups = service.metrics().endpoint_latency(INFER_ENDPOINT);
    let stage_warm_ups: Vec<_> = serve::STAGES
        .iter()
        .map(|stage| service.metrics().stage_latency(&name, stage))
        .collect();

    println!(
        "{} requests of `{name}` ({bootstraps} bootstraps each) from {} concurrent clients ...",
        requests.len(),
        args.clients
    );
    let started = Instant::now();
    let results = drive(&base, &name, &identities, &requests, &args);
    let wall = started.elapsed();
    let peak_rss = peak_rss_mib();

    let mut latency = serve::latency_histogram();
    let mut errors = Vec::new();
    let mut wrong = 0;
    let mut answered = 0;
    let bound = 6.0 * quantized.output_noise_sd().max(1.0);
    for result in &results {
        latency.add(&result.latency).expect("same histogram bounds");
        errors.extend(result.errors.iter().cloned());
        for (index, bytes) in &result.answers {
            let (identity, _) = &requests[*index];
            let prediction = identities[*identity].client.decrypt_bytes(bytes)?;
            let row = &rows[index % rows.len()];
            let reference = quantized.forward(&quantized.quantize_input(&row.dense), &row.ids)?;
            answered += 1;
            if (prediction.logit_numerator > 0) != (reference > 0)
                && (prediction.logit_numerator - reference).abs() as f64 > bound
            {
                wrong += 1;
            }
        }
    }
    let mut server = service.metrics().endpoint_latency(INFER_ENDPOINT);
    server
        .subtract(&warm_ups)
        .expect("the warm-ups are part of the same histogram");
    println!(
        "machine: {} cores; service: {} FHE threads, {} workers",
        cores(),
        limits.fhe_threads,
        limits.workers
    );
    println!(
        "answered {answered} of {} in {:.1} s: throughput {:.2} requests/s; errors {}; answers far from the reference {wrong}",
        requests.len(),
        wall.as_secs_f64(),
        answered as f64 / wall.as_secs_f64(),
        errors.len()
    );
    for error in errors.iter().take(5) {
        println!("  error: {error}");
    }
    println!(
        "client latency (ms): p50 {:.1} | p90 {:.1} | p99 {:.1} | max {:.1}; p99 / p50 = {:.2}",
        ms(&latency, 0.5),
        ms(&latency, 0.9),
        ms(&latency, 0.99),
        ms(&latency, 1.0),
        ms(&latency, 0.99) / ms(&latency, 0.5)
    );
    println!(
        "server /infer latency (ms, from arrival to answer): p50 {:.1} | p90 {:.1} | p99 {:.1}",
        ms(&server, 0.5),
        ms(&server, 0.9),
        ms(&server, 0.99)
    );
    println!("server stages (ms): p50 / p90 / p99");
    for (stage, warm_ups) in serve::STAGES.iter().zip(&stage_warm_ups) {
        let mut histogram = service.metrics().stage_latency(&name, stage);
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
    println!(
        "peak resident memory {peak_rss:.0} MiB (service with {} registered and loaded keys, and the bench's clients, in one process)",
        identities.len()
    );
    if let Some(path) = &args.plot {
        let title = format!(
            "{name}: {} requests, {} clients, {} cores",
            answered,
            args.clients,
            cores()
        );
        let svg = percentile_plot(
            &[("client round trip", &latency), ("server /infer", &server)],
            &title,
        );
        std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    service.shutdown()?;
    if !errors.is_empty() || wrong > 0 {
        bail!(
            "{} errors, {wrong} answers far from the reference",
            errors.len()
        );
    }
    Ok(())
}

/// Registers the session's server key and `--registered-keys - 1` generated ones.
fn register_identities(
    http: &ServiceClient,
    name: &str,
    args: &BenchServeArgs,
    client_key: ClientKey,
) -> anyhow::Result<Vec<Identity>> {
    let interface = http.model_interface(name)?;
    let parameter_set = client_key.parameters().id();
    println!("registering {} server keys ...", args.registered_keys);
    let mut identities = Vec::with_capacity(args.registered_keys);
    let first = client::KeyDirectory::open(&args.session.keys)?.load_server_key()?;
    identities.push(Identity {
        client: Client::new(client_key, interface.clone())?,
        key_id: http.register_key(&first)?.key_id,
    });
    for _ in 1..args.registered_keys {
        let key = ClientKey::generate(parameter_set);
        let server_key = key.compressed_server_key(fhe::KeySeed::from_entropy());
        identities.push(Identity {
            key_id: http.register_key(&server_key)?.key_id,
            client: Client::new(key, interface.clone())?,
        });
    }
    Ok(identities)
}

/// Sends `requests` (identity, bytes) from `--clients` threads, each taking the next unsent one,
/// until all are sent or `--max-seconds` passed.
fn drive(
    base: &str,
    name: &str,
    identities: &[Identity],
    requests: &[(usize, Vec<u8>)],
    args: &BenchServeArgs,
) -> Vec<ClientResults> {
    let next = AtomicUsize::new(0);
    let deadline = Instant::now() + Duration::from_secs(args.max_seconds);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..args.clients)
            .map(|_| {
                scope.spawn(|| {
                    let http = ServiceClient::new(base, Duration::from_secs(600))
                        .expect("the URL was accepted above");
                    let mut results = ClientResults::default();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        if index >= requests.len() || Instant::now() > deadline {
                            break;
                        }
                        let (identity, request) = &requests[index];
                        let sent = Instant::now();
                        let answer = http.infer(name, &identities[*identity].key_id, request);
                        let elapsed = sent.elapsed();
                        match answer {
                            Ok(answer) => {
                                serve::record(&mut results.latency, elapsed);
                                results.answers.push((index, answer.bytes));
                            }
                            Err(error) => results.errors.push(error.to_string()),
                        }
                    }
                    results
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a client thread panicked"))
            .collect()
    })
}

fn ms(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1000.0
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Peak resident set size of this process (Linux), in MiB; NaN elsewhere.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}
