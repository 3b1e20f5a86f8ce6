//! `dlrm-he plan`, `dlrm-he keygen` and `dlrm-he serve` (with its log, and over TLS with
//! `infer --server https://... --ca`) from the command line.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use common::{ServeProcess, dlrm_he};

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
fn plan_counts_a_ranked_request() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.json");
    infer::testing::tiny_model().save(&path).unwrap();
    let roles = dir.path().join("roles.json");
    std::fs::write(&roles, r#"{"tables": ["private", "public"]}"#).unwrap();
    let plan = |roles: &Path, candidates: &str| {
        dlrm_he()
            .args([
                "plan".as_ref(),
                path.as_os_str(),
                "--roles".as_ref(),
                roles.as_os_str(),
            ])
            .args(["--candidates", candidates])
            .output()
            .unwrap()
    };
    let output = plan(&roles, "10");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    // Bottom 3 + 2 and the first top layer's 3 blind rotations once, read at every
    // candidate's offset: nothing per candidate.
    assert!(
        stdout.contains(
            "ranked request, 10 candidates: 8 bootstraps once + 0 per candidate x 10 = 8"
        ),
        "{stdout}"
    );
    // The dot variant: bottom 5, 2 bottom copies, 4 rotations of private entries and 2 private
    // pair squares once; the top layer's 3 activations per candidate.
    infer::testing::tiny_dot_model().save(&path).unwrap();
    let output = plan(&roles, "10");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(
            "ranked request, 10 candidates: 13 bootstraps once + 3 per candidate x 10 = 43"
        ),
        "{stdout}"
    );
    for (roles_json, candidates, expected) in [
        (r#"{"tables": ["public"]}"#, "2", "1 table roles for 2"),
        (r#"{"tables": ["private", "public"]}"#, "0", "--candidates"),
        (
            r#"{"dense": ["public", "private"]}"#,
            "2",
            "dense feature 0 is public",
        ),
    ] {
        std::fs::write(&roles, roles_json).unwrap();
        let output = plan(&roles, candidates);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{roles_json} {candidates}");
        assert!(
            stderr.contains(expected) && !stderr.contains("panicked"),
            "{stderr}"
        );
    }
}

#[test]
fn a_reader_that_stops_early_ends_the_report_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.json");
    infer::testing::tiny_model().save(&path).unwrap();
    // `dlrm-he plan tiny.json | true`: the reader is gone before the first line is written.
    let mut child = dlrm_he()
        .arg("plan")
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
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

#[test]
fn a_server_killed_during_a_key_upload_shows_no_key_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.json");
    infer::testing::tiny_model().save(&model).unwrap();
    let store = dir.path().join("store");
    let keys = dir.path().join("keys");
    client::KeyDirectory::generate(&keys, fhe::ParameterSetId::default()).unwrap();
    let key = std::fs::read(keys.join(client::SERVER_KEY_FILE)).unwrap();

    let mut server = ServeProcess::start(&model, &store);
    let mut upload = TcpStream::connect(server.addr).unwrap();
    let head = format!(
        "POST /v1/keys HTTP/1.1\r\nhost: test\r\ncontent-length: {}\r\n\r\n",
        key.len()
    );
    upload.write_all(head.as_bytes()).unwrap();
    upload.write_all(&key[..key.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);

    let server = ServeProcess::start(&model, &store);
    let http = client::ServiceClient::new(&server.url(), Duration::from_secs(60)).unwrap();
    let listed = get(&server, "/v1/keys");
    assert_eq!(listed.trim(), "[]", "{listed}");
    // The full upload then works, and the key is listed.
    let registered = http
        .register_key(
            &client::KeyDirectory::open(&keys)
                .unwrap()
                .load_server_key()
                .unwrap(),
        )
        .unwrap();
    assert!(registered.created);
    assert!(get(&server, "/v1/keys").contains(&registered.key_id));
}

/// `serve --tenants --tls-cert --tls-key` and `infer --server https://... --ca --token`: the
/// client refuses the service until given its CA, then runs the rows; a missing certificate
/// file stops `serve` with the file's name.
#[test]
fn infer_reaches_a_tls_service_given_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    infer::testing::tiny_model()
        .save(&path("tiny.json"))
        .unwrap();
    client::KeyDirectory::generate(&path("keys"), fhe::ParameterSetId::default()).unwrap();
    std::fs::write(
        path("rows.csv"),
        "x0,x1,c0,c1\n1.9,-3.9,4,9\n-2.0,4.0,0,9\n",
    )
    .unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    std::fs::write(path("cert.pem"), made.cert.pem()).unwrap();
    std::fs::write(path("key.pem"), made.signing_key.serialize_pem()).unwrap();
    let added = dlrm_he()
        .args(["token", "add", "--name", "acme", "--tenants"])
        .arg(path("tenants.json"))
        .output()
        .unwrap();
    assert!(added.status.success());
    let token = String::from_utf8(added.stdout).unwrap().trim().to_owned();

    let missing = dlrm_he()
        .args(["serve", "--model"])
        .arg(path("tiny.json"))
        .arg("--key-store")
        .arg(path("store"))
        .arg("--tls-cert")
        .arg(path("missing.pem"))
        .arg("--tls-key")
        .arg(path("key.pem"))
        .output()
        .unwrap();
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("missing.pem"), "{stderr}");

    let server = ServeProcess::start_with(&path("tiny.json"), &path("store"), |command| {
        command
            .arg("--tenants")
            .arg(path("tenants.json"))
            .arg("--tls-cert")
            .arg(path("cert.pem"))
            .arg("--tls-key")
            .arg(path("key.pem"));
    });
    assert!(server.url().starts_with("https://"), "{}", server.url());
    let infer = |ca: Option<&Path>| {
        let mut command = dlrm_he();
        command
            .args(["infer", "--server", &server.url(), "--token", &token])
            .arg("--model")
            .arg(path("tiny.json"))
            .arg("--keys")
            .arg(path("keys"))
            .arg("--encoded")
            .arg(path("rows.csv"));
        if let Some(ca) = ca {
            command.arg("--ca").arg(ca);
        }
        command.output().unwrap()
    };
    let untrusted = infer(None);
    assert!(!untrusted.status.success());
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert!(
        stderr.contains("not trusted") && stderr.contains("--ca"),
        "{stderr}"
    );
    let trusted = infer(Some(&path("cert.pem")));
    let stdout = String::from_utf8_lossy(&trusted.stdout);
    assert!(
        trusted.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    assert!(stdout.contains("registered now"), "{stdout}");
}

fn get(server: &ServeProcess, path: &str) -> String {
    let mut stream = TcpStream::connect(server.addr).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    answer.split_once("\r\n\r\n").unwrap().1.to_owned()
}

/// `dlrm-he serve --log-format json|text`: one line per call on stderr with the request id,
/// method, route template, status, the key id's first digits, the model and the stage timings,
/// and never a whole key id.
#[test]
fn each_call_logs_one_line_with_its_fields_and_no_key_id() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.json");
    infer::testing::tiny_model().save(&model).unwrap();
    let keys =
        client::KeyDirectory::generate(&dir.path().join("keys"), Default::default()).unwrap();

    let (server, log) = logging_server(&model, &dir.path().join("store"), "json");
    let http = client::ServiceClient::new(&server.url(), Duration::from_secs(60)).unwrap();
    let key_id = http
        .register_key(&keys.load_server_key().unwrap())
        .unwrap()
        .key_id;
    let registered: serde_json::Value = serde_json::from_str(&next_line(&log)).unwrap();
    let interface = http.model_interface("tiny").unwrap();
    let described: serde_json::Value = serde_json::from_str(&next_line(&log)).unwrap();
    let client = client::Client::new(keys.load_client_key().unwrap(), interface).unwrap();
    let request = client
        .encrypt(&[0.5, -1.0], &[3, 7])
        .unwrap()
        .to_bytes()
        .unwrap();
    http.infer("tiny", &key_id, &request).unwrap();
    let line = next_line(&log);
    let inferred: serde_json::Value = serde_json::from_str(&line).unwrap();

    assert_eq!(registered["span"]["route"], "/v1/keys", "{registered}");
    assert_eq!(registered["status"], 201);
    assert_eq!(
        described["span"]["route"], "/v1/models/{name}",
        "{described}"
    );
    assert_eq!(described["span"]["model"], "tiny");
    let call = &inferred["span"];
    assert_eq!(inferred["level"], "INFO", "{line}");
    assert_eq!(inferred["status"], 200);
    assert!(inferred["latency_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(call["method"], "POST");
    assert_eq!(call["route"], "/v1/models/{name}/infer");
    assert_eq!(call["model"], "tiny");
    assert_eq!(call["key"], &key_id[..8]);
    assert_eq!(call["items"], 1);
    for stage in ["decode", "bottom", "lookup", "interaction", "top", "encode"] {
        assert!(
            call[format!("{stage}_ms")].as_f64().is_some(),
            "{stage}: {line}"
        );
    }
    let ids: Vec<u64> = [&registered, &described, &inferred]
        .iter()
        .map(|line| line["span"]["id"].as_u64().unwrap())
        .collect();
    assert!(ids[0] < ids[1] && ids[1] < ids[2], "{ids:?}");
    for line in [&registered, &described, &inferred] {
        assert!(!line.to_string().contains(&key_id), "{line}");
    }

    // A refused call: its error code, and no key digits for a key that is not registered.
    let unknown = "0".repeat(32);
    assert!(http.infer("tiny", &unknown, &request).is_err());
    let refused: serde_json::Value = serde_json::from_str(&next_line(&log)).unwrap();
    assert_eq!(refused["status"], 404, "{refused}");
    assert_eq!(refused["error"], "unknown_key");
    assert!(refused["span"].get("key").is_none(), "{refused}");
    drop(server);

    let (server, log) = logging_server(&model, &dir.path().join("store"), "text");
    let http = client::ServiceClient::new(&server.url(), Duration::from_secs(60)).unwrap();
    http.model_interface("tiny").unwrap();
    let line = next_line(&log);
    for field in [
        "request{id=",
        "method=GET",
        "route=\"/v1/models/{name}\"",
        "model=\"tiny\"",
        "status=200",
        "latency_ms=",
    ] {
        assert!(line.contains(field), "{field}: {line}");
    }
}

/// `dlrm-he serve --log-format FORMAT` at level `info`, its log lines arriving on the receiver.
fn logging_server(model: &Path, store: &Path, format: &str) -> (ServeProcess, Receiver<String>) {
    let mut server = ServeProcess::start_with(model, store, |command| {
        command
            .args(["--log-format", format])
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped());
    });
    let stderr = BufReader::new(server.child.stderr.take().unwrap());
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    (server, receiver)
}

/// The next log line (a call's line is written before its answer is sent).
fn next_line(log: &Receiver<String>) -> String {
    log.recv_timeout(Duration::from_secs(30))
        .expect("a log line within 30 s")
}
