//! `dlrm-he bench serve`: the service on a loopback port in this process, driven by concurrent
//! clients: throughput, latency percentiles, errors, memory, a percentile plot. By default it
//! runs two services side by side, open access over plain HTTP and tenants over TLS
//! (`bench_serve_sides.rs`), in alternating rounds, and prints the ratio of their throughputs.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use client::Client;
use fhe::ClientKey;
use hdrhistogram::Histogram;
use infer::ServerModel;
use serve::NamedModel;

use crate::bench_serve_report::{Baseline, INFER_ENDPOINT, Identity, Measured, report};
use crate::bench_serve_sides::{Security, Side};
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
    /// Requests sent to each configuration (after one warm-up request per key).
    #[arg(long, default_value_t = 40)]
    pub requests: usize,
    /// Stop sending new requests after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub max_seconds: u64,
    /// Server keys registered (the first from --keys, the rest generated); requests use them in
    /// turn, so all are held in memory.
    #[arg(long, default_value_t = 10)]
    pub registered_keys: usize,
    /// Which configurations to measure: `both` runs open access over plain HTTP and tenants
    /// over TLS side by side (a temporary tenants file with one token, a certificate generated
    /// for the run), in alternating rounds, and prints the ratio of their throughputs.
    #[arg(long, value_enum, default_value = "both")]
    pub security: Security,
    /// Rounds the requests are split into; with `--security both` each round runs on one
    /// configuration, then the other (in turn first), so drifts of the machine hit both alike.
    #[arg(long, default_value_t = 4)]
    pub rounds: usize,
    /// Where to write the percentile plot (SVG).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Log every call of the service to stderr in this format (default: no log).
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
}

/// Bounds each call of the benchmark's clients.
const CALL_TIMEOUT: Duration = Duration::from_secs(600);

/// `dlrm-he bench serve`: starts the services on loopback ports in this process, registers
/// keys, and drives them with concurrent clients in alternating rounds.
pub(crate) fn run(args: BenchServeArgs) -> anyhow::Result<()> {
    if args.clients == 0 || args.requests == 0 || args.registered_keys == 0 || args.rounds == 0 {
        bail!("--clients, --requests, --registered-keys and --rounds must be at least 1");
    }
    if let Some(format) = args.log_format {
        logging::install(format)?;
    }
    // The session's prepared model is what the services serve.
    let Session {
        model: quantized,
        server,
        client_key,
        ..
    } = Session::open(&args.session.model, &args.session.keys)?;
    let bootstraps = server.plan().bootstraps();
    drop(server);
    let name = model_name(&args.session.model)?;
    let data = args
        .session
        .data
        .as_deref()
        .context("bench serve sends rows of a prepared dataset's split: give --data")?;
    let rows = split_rows(data, &args.split, args.requests)?;
    let limits = args.limits.limits();
    let parameter_set = client_key.parameters().id();
    let sides = args
        .security
        .protections()
        .iter()
        .map(|&protection| {
            let model = ServerModel::new(&quantized, parameter_set)?;
            let model = NamedModel {
                name: name.clone(),
                model,
            };
            Side::start(
                protection,
                &limits,
                model,
                args.registered_keys,
                args.clients,
            )
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let identities = register_identities(&sides, &name, &args, client_key)?;

    // Requests use the keys in turn; one warm-up per key loads every key into memory.
    let encrypt = |index: usize| -> anyhow::Result<(usize, Vec<u8>)> {
        let identity = index % identities.len();
        let row = &rows[index % rows.len()];
        let request = identities[identity].client.encrypt(&row.dense, &row.ids)?;
        Ok((identity, request.to_bytes()?))
    };
    println!("warming up: one request per key and service ...");
    for (s, side) in sides.iter().enumerate() {
        let http = side.client(CALL_TIMEOUT)?;
        for index in 0..identities.len() {
            let (identity, request) = encrypt(index)?;
            http.infer(&name, &identities[identity].key_ids[s], &request)?;
        }
    }
    let requests: Vec<(usize, Vec<u8>)> =
        (0..args.requests).map(encrypt).collect::<Result<_, _>>()?;
    let baselines: Vec<Baseline> = sides
        .iter()
        .map(|side| Baseline {
            endpoint: side.service.metrics().endpoint_latency(INFER_ENDPOINT),
            stages: serve::STAGES
                .iter()
                .map(|stage| side.service.metrics().stage_latency(&name, stage))
                .collect(),
        })
        .collect();

    let rounds = args.rounds.min(requests.len());
    println!(
        "{} requests of `{name}` ({bootstraps} bootstraps each) from {} concurrent clients, in {rounds} rounds, on: {} ...",
        requests.len(),
        args.clients,
        sides
            .iter()
            .map(|s| s.protection.label())
            .collect::<Vec<_>>()
            .join("; ")
    );
    let deadline = Instant::now() + Duration::from_secs(args.max_seconds);
    let mut measured: Vec<Measured> = sides.iter().map(|_| Measured::default()).collect();
    for round in 0..rounds {
        let range = round * requests.len() / rounds..(round + 1) * requests.len() / rounds;
        let mut order: Vec<usize> = (0..sides.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for s in order {
            let started = Instant::now();
            let results = drive(
                &sides[s],
                s,
                &name,
                &identities,
                &requests,
                range.clone(),
                &args,
                deadline,
            );
            let wall = started.elapsed();
            let answered = results.answers.len();
            measured[s].add(results);
            measured[s].wall += wall;
            measured[s]
                .rounds
                .push(answered as f64 / wall.as_secs_f64());
        }
    }
    let peak_rss = peak_rss_mib();

    println!(
        "machine: {} cores; each service: {} FHE threads, {} workers",
        cores(),
        limits.fhe_threads,
        limits.workers
    );
    let mut failures = 0;
    let mut curves = Vec::new();
    for ((side, measured), baseline) in sides.iter().zip(&measured).zip(&baselines) {
        println!("\n{}:", side.protection.label());
        let server = report(
            side,
            measured,
            baseline,
            &name,
            &identities,
            &requests,
            &rows,
            &quantized,
        )?;
        failures += server.1;
        curves.push((
            format!("client round trip, {}", side.protection.label()),
            measured.latency.clone(),
        ));
        curves.push((
            format!("server /infer, {}", side.protection.label()),
            server.0,
        ));
    }
    if let [open, protected] = &measured[..] {
        // The same ciphertexts under the same keys: bootstrapping is deterministic, so any
        // difference is the service's doing (framing, TLS, authentication).
        let (compared, differing) = compare_answers(open, protected);
        println!(
            "\nrequests answered with the same bytes by both services: {} of {compared}",
            compared - differing
        );
        failures += differing;
        let ratio = protected.throughput() / open.throughput();
        println!(
            "\nthroughput with tenants + TLS / without: {:.2} / {:.2} requests/s = {ratio:.3} ({:+.1}%)",
            protected.throughput(),
            open.throughput(),
            (ratio - 1.0) * 100.0
        );
        // Round by round (each pair ran back to back), which a drift of the machine's load
        // between rounds affects less than the totals.
        let mut pairs: Vec<f64> = protected
            .rounds
            .iter()
            .zip(&open.rounds)
            .map(|(on, off)| on / off)
            .collect();
        let listed: Vec<String> = pairs.iter().map(|r| format!("{r:.3}")).collect();
        pairs.sort_by(f64::total_cmp);
        let middle = pairs.len() / 2;
        let median = if pairs.len() % 2 == 1 {
            pairs[middle]
        } else {
            (pairs[middle - 1] + pairs[middle]) / 2.0
        };
        println!(
            "ratio round by round: {}; median {median:.3}",
            listed.join(", ")
        );
    }
    println!(
        "peak resident memory {peak_rss:.0} MiB ({} service(s) with {} registered and loaded keys each, and the bench's clients, in one process)",
        sides.len(),
        identities.len()
    );
    if let Some(path) = &args.plot {
        let title = format!(
            "{name}: {} requests, {} clients, {} cores",
            requests.len(),
            args.clients,
            cores()
        );
        let series: Vec<(&str, &Histogram<u64>)> = curves
            .iter()
            .map(|(label, h)| (label.as_str(), h))
            .collect();
        let svg = percentile_plot(&series, &title);
        std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    for side in sides {
        side.service.shutdown()?;
    }
    if failures > 0 {
        bail!("{failures} errors, or answers that differ between the services");
    }
    Ok(())
}

/// Requests answered by both services, and how many of them with different bytes.
fn compare_answers(one: &Measured, other: &Measured) -> (usize, usize) {
    let theirs: std::collections::HashMap<usize, &Vec<u8>> =
        other.answers.iter().map(|(i, bytes)| (*i, bytes)).collect();
    let pairs: Vec<bool> = one
        .answers
        .iter()
        .filter_map(|(i, bytes)| theirs.get(i).map(|other| *other == bytes))
        .collect();
    let differing = pairs.iter().filter(|same| !**same).count();
    (pairs.len(), differing)
}

/// Registers the session's server key and `--registered-keys - 1` generated ones with every
/// service.
fn register_identities(
    sides: &[Side],
    name: &str,
    args: &BenchServeArgs,
    client_key: ClientKey,
) -> anyhow::Result<Vec<Identity>> {
    let clients = sides
        .iter()
        .map(|side| side.client(CALL_TIMEOUT))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let interface = clients[0].model_interface(name)?;
    let parameter_set = client_key.parameters().id();
    println!(
        "registering {} server keys with {} service(s) ...",
        args.registered_keys,
        sides.len()
    );
    let register = |key: &fhe::CompressedServerKey| -> anyhow::Result<Vec<String>> {
        clients
            .iter()
            .map(|http| Ok(http.register_key(key)?.key_id))
            .collect()
    };
    let mut identities = Vec::with_capacity(args.registered_keys);
    let first = client::KeyDirectory::open(&args.session.keys)?.load_server_key()?;
    identities.push(Identity {
        client: Client::new(client_key, interface.clone())?,
        key_ids: register(&first)?,
    });
    for _ in 1..args.registered_keys {
        let key = ClientKey::generate(parameter_set);
        let server_key = key.compressed_server_key(fhe::KeySeed::from_entropy());
        identities.push(Identity {
            key_ids: register(&server_key)?,
            client: Client::new(key, interface.clone())?,
        });
    }
    Ok(identities)
}

/// Sends the requests `range` (identity, bytes) to side `s` from `--clients` threads, each
/// taking the next unsent one, until all are sent or the deadline passed.
#[allow(clippy::too_many_arguments)]
fn drive(
    side: &Side,
    s: usize,
    name: &str,
    identities: &[Identity],
    requests: &[(usize, Vec<u8>)],
    range: Range<usize>,
    args: &BenchServeArgs,
    deadline: Instant,
) -> Measured {
    let next = AtomicUsize::new(range.start);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..args.clients)
            .map(|_| {
                scope.spawn(|| {
                    let mut results = Measured::default();
                    let http = match side.client(CALL_TIMEOUT) {
                        Ok(http) => http,
                        Err(error) => {
                            results.errors.push(error.to_string());
                            return results;
                        }
                    };
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        if index >= range.end || Instant::now() > deadline {
                            break;
                        }
                        let (identity, request) = &requests[index];
                        let sent = Instant::now();
                        let answer = http.infer(name, &identities[*identity].key_ids[s], request);
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
        let mut all = Measured::default();
        for worker in workers {
            all.add(worker.join().expect("a client thread panicked"));
        }
        all
    })
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
