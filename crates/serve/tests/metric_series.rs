//! 10,000 calls with made-up methods and paths leave `/metrics` a fixed set of series and the
//! process's resident memory flat. In a file of its own, so that no other test shares the
//! process whose memory it measures.

mod common;

use std::net::SocketAddr;

use common::{call, error_code};
use serve::{Access, Limits};

/// Made-up calls in one round: a method on a real path, a made-up path, and both at once.
const MADE_UP_PER_ROUND: usize = 3;

/// More than the 10,000 made-up calls, after a warm-up of as many.
const ROUNDS: usize = 10_000 / MADE_UP_PER_ROUND + 1;

/// Resident memory of this process in KiB (Linux; `None` elsewhere).
fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

fn round(addr: SocketAddr, i: usize) {
    call(addr, &format!("X{i}"), "/healthz", &[], b"");
    call(addr, "GET", &format!("/made-up/{i}"), &[], b"");
    call(addr, &format!("Y{i}"), &format!("/v1/keys/{i}"), &[], b"");
    call(addr, "GET", "/healthz", &[], b"");
}

#[test]
fn made_up_methods_and_paths_leave_the_metrics_and_memory_flat() {
    let store = tempfile::tempdir().unwrap();
    let open = Access::Open {
        insecure_remote: false,
    };
    let service = common::start_tiny(store.path(), open, Limits::default()).unwrap();
    let addr = service.addr();
    let metrics = || call(addr, "GET", "/metrics", &[], b"").1;
    let series = |text: &str| text.lines().filter(|l| !l.starts_with('#')).count();
    // A warm-up as long as the measured part: every series that can exist exists, and the
    // allocator and the runtime have reached their working size.
    let (status, body) = call(addr, "GET", "/made-up/first", &[], b"");
    assert_eq!((status, error_code(&body).as_str()), (404, "not_found"));
    for i in 0..ROUNDS {
        round(addr, i);
    }
    metrics(); // `/metrics` itself is a series from its first call on.
    let before_text = metrics();
    let before = (series(&before_text), before_text.len(), resident_kib());
    for i in ROUNDS..2 * ROUNDS {
        round(addr, i);
    }
    let after_text = metrics();
    let after = (series(&after_text), after_text.len(), resident_kib());
    eprintln!(
        "{} made-up calls: series {} -> {}, /metrics {} -> {} bytes, resident {:?} -> {:?} KiB",
        ROUNDS * MADE_UP_PER_ROUND,
        before.0,
        after.0,
        before.1,
        after.1,
        before.2,
        after.2
    );
    assert_eq!(after.0, before.0, "{after_text}");
    assert!(
        !after_text.contains("X17") && !after_text.contains("made-up"),
        "{after_text}"
    );
    // Counts grow by digits only: the text stays within a few bytes per series.
    assert!(after.1 <= before.1 + 8 * before.0, "{after_text}");
    if let (Some(before), Some(after)) = (before.2, after.2) {
        // Before the fixed label set, each made-up call kept a series of about 190 KiB; the
        // bound allows allocator noise and is a thousandth of what the calls used to keep.
        assert!(
            after <= before + 2 * 1024,
            "resident memory grew from {before} KiB to {after} KiB"
        );
    }
    service.shutdown().unwrap();
}
