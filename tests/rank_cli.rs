//! `dlrm-he infer --candidates` and `dlrm-he bench rank` from the command line, on the tiny
//! model (exact by construction) served with its digit table public: every candidate's
//! decrypted score is the integer reference's, and bad inputs stop with a reason.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{ServeProcess, dlrm_he};

struct Files {
    _dir: tempfile::TempDir,
    model: PathBuf,
    roles: PathBuf,
    keys: PathBuf,
    rows: PathBuf,
}

/// The tiny model, a roles file making table 1 public, keys with the packing key (from
/// `dlrm-he keygen --packing`), and 12 encoded rows whose table-1 ids cover the table.
fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    infer::testing::tiny_model()
        .save(&path("tiny.json"))
        .unwrap();
    std::fs::write(path("roles.json"), r#"{"tables": ["private", "public"]}"#).unwrap();
    let keygen = dlrm_he()
        .args(["keygen", "--packing", "--out"])
        .arg(path("keys"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&keygen.stdout);
    assert!(
        keygen.status.success() && stdout.contains("with packing key"),
        "{stdout}"
    );
    let mut rows = String::from("x0,x1,c0,c1\n");
    for k in 0..12 {
        rows += &format!(
            "{},{},{},{}\n",
            1.5 - 0.25 * k as f32,
            0.5,
            k % 5,
            (k * 7) % 10
        );
    }
    std::fs::write(path("rows.csv"), rows).unwrap();
    Files {
        model: path("tiny.json"),
        roles: path("roles.json"),
        keys: path("keys"),
        rows: path("rows.csv"),
        _dir: dir,
    }
}

/// `dlrm-he COMMAND --model M --keys K ARGS...`.
fn run(command: &[&str], f: &Files, args: &[&Path]) -> Output {
    dlrm_he()
        .args(command)
        .arg("--model")
        .arg(&f.model)
        .arg("--keys")
        .arg(&f.keys)
        .args(args.iter().map(|a| a.as_os_str()))
        .output()
        .unwrap()
}

/// Checks that `infer --candidates` ranked the 12 rows with every candidate's class and
/// numerator those of the integer reference (exact by construction), and returns its output.
fn every_candidate_as_the_reference(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("ranked request, 12 candidates"), "{stdout}");
    assert!(
        stdout.contains("class equal to the integer reference for 100.0% of candidates"),
        "{stdout}"
    );
    let exact = stdout
        .lines()
        .filter(|l| l.split_whitespace().nth(4) == Some("+0"))
        .count();
    assert_eq!(exact, 12, "{stdout}");
    stdout
}

#[test]
fn infer_ranks_candidates_as_the_reference_does() {
    let f = files();
    let p = Path::new;
    // The rows' first one is the user; `candidates` holds the candidates.
    let rank = |candidates: &Path| {
        let args = [p("--roles"), &f.roles, p("--encoded"), &f.rows];
        run(
            &["infer"],
            &f,
            &[&args[..], &[p("--candidates"), candidates]].concat(),
        )
    };
    let stdout = every_candidate_as_the_reference(&rank(&f.rows));
    // Exact by construction: every pair's order as the reference's too.
    assert!(stdout.contains(" 0 of "), "{stdout}");
    // The 12 scores come back packed in one GLWE ciphertext (32 KiB), not 12 x 16 KiB.
    let answer_kib: f64 = (stdout.split("answer ").nth(1))
        .and_then(|rest| rest.split(" KiB").next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or_else(|| panic!("no answer size in {stdout}"));
    assert!((32.0..33.0).contains(&answer_kib), "{stdout}");

    // Without public tables there is nothing to rank; an empty file holds no candidate.
    let output = run(
        &["infer"],
        &f,
        &[p("--encoded"), &f.rows, p("--candidates"), &f.rows],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("no public table") && !stderr.contains("panicked"),
        "{stderr}"
    );
    let empty = f.rows.with_file_name("empty.csv");
    std::fs::write(&empty, "x0,x1,c0,c1\n").unwrap();
    let output = rank(&empty);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("empty.csv") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[test]
fn bench_rank_times_ranked_requests_beside_single_rows() {
    let f = files();
    let p = Path::new;
    let output = run(
        &["bench", "rank"],
        &f,
        &[
            p("--roles"),
            &f.roles,
            p("--encoded"),
            &f.rows,
            p("--candidates"),
            p("1,12"),
            p("--single-requests"),
            p("1"),
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for k in ["1", "12"] {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(k))
            .unwrap_or_else(|| panic!("no line for K = {k}: {stdout}"));
        // 8 rotations and bootstraps once, none per candidate; every class as the reference's.
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!((fields[4], fields[5]), ("8", "0"), "{line}");
        assert!(line.contains("100.0%"), "{line}");
    }
    let output = run(
        &["bench", "rank"],
        &f,
        &[p("--encoded"), &f.rows, p("--candidates"), p("0")],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("at least 1") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[test]
fn infer_ranks_candidates_on_a_service() {
    let f = files();
    // The service serves the model file, so the roles are the file's own here.
    let ranked = f.model.with_file_name("ranked.json");
    let roles = dlrm::FeatureRoles {
        dense: vec![],
        tables: vec![dlrm::Role::Private, dlrm::Role::Public],
    };
    infer::testing::tiny_model()
        .with_roles(roles)
        .unwrap()
        .save(&ranked)
        .unwrap();
    let server = ServeProcess::start(&ranked, &f.model.with_file_name("store"));
    let output = dlrm_he()
        .args(["infer", "--server", &server.url(), "--model"])
        .arg(&ranked)
        .arg("--keys")
        .arg(&f.keys)
        .arg("--encoded")
        .arg(&f.rows)
        .arg("--candidates")
        .arg(&f.rows)
        .output()
        .unwrap();
    every_candidate_as_the_reference(&output);
}
