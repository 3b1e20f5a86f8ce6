//! The `dlrm-he` binary: `prepare` and `demo` end to end, and clean failures on bad input.

use std::path::Path;
use std::process::{Command, Output};

fn dlrm_he(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dlrm-he"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn demo_generates_prepares_and_summarises() {
    let dir = tempfile::tempdir().unwrap();
    let out = dlrm_he(&["demo", "--dir", "demo", "--rows", "4000"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("wrote 4000 rows"), "{stdout}");
    assert!(stdout.contains("oracle AUC"), "{stdout}");
    assert!(stdout.contains("C26="), "{stdout}");
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("demo/prepared/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["rows"], 4000);
    // Running it again replaces its own earlier output.
    let again = dlrm_he(&["demo", "--dir", "demo", "--rows", "3000"], dir.path());
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(text(&again.stdout).contains("3000 rows"));
}

#[test]
fn bad_input_fails_with_file_and_line_and_no_panic() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.tsv"), "0\t1\t2\n").unwrap();
    let cases: [(&[&str], &str); 4] = [
        (
            &["prepare", "criteo", "--input", "missing.tsv", "--out", "o"],
            "missing.tsv",
        ),
        (
            &["prepare", "criteo", "--input", "bad.tsv", "--out", "o"],
            "bad.tsv:1: expected 40",
        ),
        (
            &["prepare", "uci", "--input", "bad.tsv", "--out", "o"],
            "bad.tsv:1: expected 14",
        ),
        (
            &[
                "prepare",
                "synthetic-criteo",
                "--out",
                "s.tsv",
                "--scale",
                "2",
            ],
            "--scale",
        ),
    ];
    for (args, needle) in cases {
        let out = dlrm_he(args, dir.path());
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!dir.path().join("o").exists());
    }
}

#[test]
fn skip_bad_rows_reports_the_count() {
    let dir = tempfile::tempdir().unwrap();
    let generated = dlrm_he(
        &[
            "prepare",
            "synthetic-criteo",
            "--out",
            "s.tsv",
            "--rows",
            "500",
        ],
        dir.path(),
    );
    assert!(generated.status.success(), "{}", text(&generated.stderr));
    let mut data = std::fs::read_to_string(dir.path().join("s.tsv")).unwrap();
    data.push_str("not a row\n");
    std::fs::write(dir.path().join("s.tsv"), data).unwrap();
    let out = dlrm_he(
        &[
            "prepare",
            "criteo",
            "--input",
            "s.tsv",
            "--out",
            "p",
            "--skip-bad-rows",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("skipped 1 malformed rows"));
    assert!(text(&out.stdout).contains("500 rows"));
}
