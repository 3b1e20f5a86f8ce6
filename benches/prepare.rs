//! `cargo bench --bench prepare`: throughput and peak memory of `dlrm-he prepare criteo` on
//! generated Criteo-shaped files of two sizes, each run in its own process so its peak resident
//! memory is its own. Rows per size: `DLRM_HE_BENCH_ROWS` (comma-separated), default
//! 500000,2000000.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

const SCALE: &str = "0.01";

/// Runs the binary to completion and returns (wall seconds, peak resident set in MiB).
#[allow(
    clippy::zombie_processes,
    reason = "the child is reaped by wait4, which also reports its peak memory"
)]
fn run_measured(args: &[&str]) -> (f64, f64) {
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_dlrm-he"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("dlrm-he starts");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, which std has not reaped (we never call `wait` on it).
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "dlrm-he {args:?} failed"
    );
    (
        started.elapsed().as_secs_f64(),
        usage.ru_maxrss as f64 / 1024.0,
    )
}

fn vocabulary_entries(prepared: &Path) -> u64 {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(prepared.join("manifest.json")).unwrap())
            .unwrap();
    manifest["categorical"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["table_size"].as_u64().unwrap())
        .sum()
}

fn main() {
    let sizes: Vec<u64> = std::env::var("DLRM_HE_BENCH_ROWS")
        .unwrap_or_else(|_| "500000,2000000".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("DLRM_HE_BENCH_ROWS: comma-separated row counts")
        })
        .collect();
    let dir = tempfile::tempdir().expect("a temporary directory");
    println!(
        "prepare criteo on generated data (scale {SCALE}), {} threads",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:>10} {:>9} {:>9} {:>11} {:>13} {:>13}",
        "rows", "file MiB", "seconds", "rows/s", "peak RSS MiB", "vocab entries"
    );
    let mut peaks = Vec::new();
    for rows in sizes {
        let raw = dir.path().join(format!("criteo-{rows}.tsv"));
        let prepared = dir.path().join(format!("prepared-{rows}"));
        let raw_arg = raw.to_str().unwrap();
        run_measured(&[
            "prepare",
            "synthetic-criteo",
            "--rows",
            &rows.to_string(),
            "--scale",
            SCALE,
            "--out",
            raw_arg,
        ]);
        let (seconds, peak) = run_measured(&[
            "prepare",
            "criteo",
            "--input",
            raw_arg,
            "--out",
            prepared.to_str().unwrap(),
        ]);
        let megabytes = std::fs::metadata(&raw).unwrap().len() as f64 / (1 << 20) as f64;
        let entries = vocabulary_entries(&prepared);
        println!(
            "{rows:>10} {megabytes:>9.0} {seconds:>9.2} {:>11.0} {peak:>13.0} {entries:>13}",
            rows as f64 / seconds
        );
        peaks.push((rows, peak));
        std::fs::remove_file(&raw).ok();
        std::fs::remove_dir_all(&prepared).ok();
    }
    if let [(small_rows, small_peak), .., (large_rows, large_peak)] = peaks[..] {
        println!(
            "rows x{:.1} -> peak memory x{:.2}",
            large_rows as f64 / small_rows as f64,
            large_peak / small_peak
        );
    }
}
