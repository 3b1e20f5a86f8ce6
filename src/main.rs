//! `dlrm-he`: the command line of the dlrm-he toolkit (recommendation models on encrypted data).

mod bench_infer_command;
mod bench_rank_command;
mod bench_serve_command;
mod bench_serve_report;
mod bench_serve_sides;
mod compress_command;
mod demo;
mod embed_command;
mod eval_command;
mod import_command;
mod infer_command;
mod keygen_command;
mod logging;
mod percentile_plot;
mod plan_command;
mod prepare;
mod progress;
mod quantize_command;
mod ranking;
mod report;
mod roles_arg;
mod serve_command;
mod session;
mod token_command;
mod train_command;
mod training;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "dlrm-he",
    version,
    about = "Recommendation models (DLRMs) served on encrypted data with TFHE"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Turn raw data (UCI heart, Criteo TSV) into a prepared dataset directory, or generate
    /// Criteo-shaped data.
    #[command(subcommand)]
    Prepare(prepare::PrepareCommand),
    /// Run the main job end to end on data the toolkit generates itself.
    Demo(demo::DemoArgs),
    /// Look up the token embeddings of a text under encryption (LLM token-embedding mode) and
    /// print the decrypted embeddings' error against the plaintext table.
    Embed(embed_command::EmbedArgs),
    /// Train a DLRM on a prepared dataset (a preset or a JSON architecture) and save it.
    Train(train_command::TrainArgs),
    /// Turn a DLRM trained in PyTorch (safetensors: the reference DLRM's or TorchRec's names)
    /// into a model directory every other command reads.
    Import(import_command::ImportArgs),
    /// Evaluate a model (float, quantized integer reference, or PyTorch safetensors) on a split.
    Eval(eval_command::EvalArgs),
    /// Turn a trained model's full tables into digit tables (least squares), optionally fine-tune.
    Compress(compress_command::CompressArgs),
    /// Quantize a model into the integer model the encrypted executor runs.
    Quantize(quantize_command::QuantizeArgs),
    /// Print the FHE plan of a quantized model: kernels, encodings, bootstraps, estimated cost.
    Plan(plan_command::PlanArgs),
    /// Generate a client key and its compressed server key into a new directory.
    Keygen(keygen_command::KeygenArgs),
    /// Encrypt raw rows, run the model on ciphertexts, decrypt, and compare with the integer
    /// reference and the float model (client and server in one process).
    Infer(infer_command::InferArgs),
    /// Serve quantized models over HTTP for encrypted requests (keys, models, inference,
    /// health, Prometheus metrics); see docs/api.md.
    Serve(serve_command::ServeArgs),
    /// Manage the tenants of `serve --tenants FILE`: bearer tokens and quotas.
    #[command(subcommand)]
    Token(token_command::TokenCommand),
    /// Benchmarks (see also `cargo bench`).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Time encrypted requests of a quantized model: server compute per request (median),
    /// bootstraps and the ratio to the bootstrap floor, sizes, client times.
    Infer(bench_infer_command::BenchInferArgs),
    /// Time ranked requests (one user's private inputs, K candidates' public ids) beside
    /// single-row requests of the same model: server time per candidate, answer size,
    /// bootstraps, and each candidate against the integer reference.
    Rank(bench_rank_command::BenchRankArgs),
    /// Start the service on a loopback port and drive it with concurrent clients: throughput,
    /// latency percentiles, errors, peak memory with registered keys, and a percentile plot.
    Serve(bench_serve_command::BenchServeArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if !matches!(
        cli.command,
        Command::Serve(_) | Command::Bench(BenchCommand::Serve(_))
    ) {
        end_quietly_on_closed_stdout();
    }
    match cli.command {
        Command::Prepare(command) => prepare::run(command),
        Command::Demo(args) => demo::run(args),
        Command::Embed(args) => embed_command::run(args),
        Command::Train(args) => train_command::train(args),
        Command::Import(args) => import_command::import(args),
        Command::Eval(args) => eval_command::eval(args),
        Command::Compress(args) => compress_command::compress(args),
        Command::Quantize(args) => quantize_command::quantize(args),
        Command::Plan(args) => plan_command::plan(args),
        Command::Keygen(args) => keygen_command::keygen(args),
        Command::Infer(args) => infer_command::infer(args),
        Command::Serve(args) => serve_command::serve(args),
        Command::Token(command) => token_command::run(command),
        Command::Bench(BenchCommand::Infer(args)) => bench_infer_command::bench_infer(args),
        Command::Bench(BenchCommand::Rank(args)) => bench_rank_command::bench_rank(args),
        Command::Bench(BenchCommand::Serve(args)) => bench_serve_command::run(args),
    }
}

/// A report piped into a reader that stops early (`dlrm-he eval ... | head -1`) ends the
/// process quietly, as other command-line tools do, instead of panicking in `println!`.
/// The service keeps Rust's default of ignoring `SIGPIPE`: a client that hangs up must cost a
/// write error, not the server.
#[cfg(unix)]
fn end_quietly_on_closed_stdout() {
    // SAFETY: runs before any thread is started; `SIG_DFL` is always a valid disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn end_quietly_on_closed_stdout() {}
