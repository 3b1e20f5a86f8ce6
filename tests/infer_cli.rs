//! `dlrm-he plan` and `dlrm-he keygen` from the command line.

use std::process::Command;

fn dlrm_he() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dlrm-he"))
}

#[test]
fn plan_prints_bootstraps_and_rejects_a_broken_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = infer::testing::tiny_model();
    let path = dir.path().join("tiny.json");
    model.save(&path).unwrap();
    let output = dlrm_he().arg("plan").arg(&path).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let bootstraps: usize = model
        .bottom
        .iter()
        .chain(&model.top)
        .filter(|l| l.activation.is_some())
        .map(|l| l.rows)
        .sum();
    assert!(
        stdout.contains(&format!("total: {bootstraps} bootstraps")),
        "{stdout}"
    );
    assert!(stdout.contains(&infer::model_id(&model)), "{stdout}");

    std::fs::write(&path, b"{\"format\": 1}").unwrap();
    let output = dlrm_he().arg("plan").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("tiny.json") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[test]
fn keygen_writes_a_key_directory_and_never_overwrites_it() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let output = dlrm_he()
        .arg("keygen")
        .arg("--out")
        .arg(&keys)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let description = client::KeyDirectory::open(&keys).unwrap();
    assert_eq!(
        std::fs::metadata(keys.join(client::SERVER_KEY_FILE))
            .unwrap()
            .len(),
        description.server_key_bytes
    );
    description.load_client_key().unwrap();
    let output = dlrm_he()
        .arg("keygen")
        .arg("--out")
        .arg(&keys)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("already exists") && !stderr.contains("panicked"),
        "{stderr}"
    );
    let output = dlrm_he()
        .args(["keygen", "--parameter-set", "no-such-set", "--out"])
        .arg(dir.path().join("other"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown parameter set"));
}
