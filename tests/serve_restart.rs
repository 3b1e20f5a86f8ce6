//! `dlrm-he serve` killed with SIGKILL in the middle of a key upload and in the middle of an
//! inference, then restarted on the same key store: every key registered before the kill still
//! serves (answers checked against the integer reference), and the half-uploaded key left
//! nothing behind.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use client::{Client, ServiceClient};
use common::ServeProcess;
use fhe::{ClientKey, CompressedServerKey, KeySeed, ParameterSetId};

struct Tenant {
    client: ClientKey,
    server: CompressedServerKey,
}

fn tenant(seed: u128) -> Tenant {
    let client = ClientKey::from_seed(ParameterSetId::default(), KeySeed(seed));
    let server = client.compressed_server_key(KeySeed(seed + 1));
    Tenant { client, server }
}

fn service(process: &ServeProcess) -> ServiceClient {
    ServiceClient::new(&process.url(), Duration::from_secs(120)).unwrap()
}

/// Runs three rows with `key_id` and checks each decrypted numerator against the integer
/// reference (the tiny model's bootstraps are exact).
fn check_serves(process: &ServeProcess, tenant: &Tenant, key_id: &str) {
    let http = service(process);
    let interface = http.model_interface("tiny").unwrap();
    let client = Client::new(tenant.client.clone(), interface).unwrap();
    let model = infer::testing::tiny_model();
    for (dense, ids) in [
        ([0.5f32, -1.0], [3u32, 7]),
        ([-0.25, 0.75], [0, 1]),
        ([1.0, 0.0], [4, 2]),
    ] {
        let request = client.encrypt(&dense, &ids).unwrap().to_bytes().unwrap();
        let answer = http.infer("tiny", key_id, &request).unwrap();
        let prediction = client.decrypt_bytes(&answer.bytes).unwrap();
        let reference = model.forward(&model.quantize_input(&dense), &ids).unwrap();
        assert_eq!(prediction.logit_numerator, reference, "{dense:?} {ids:?}");
    }
}

/// Key ids the service lists.
fn listed(process: &ServeProcess) -> Vec<String> {
    let mut stream = TcpStream::connect(process.addr).unwrap();
    stream
        .write_all(b"GET /v1/keys HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let body = answer.split_once("\r\n\r\n").unwrap().1;
    let value: serde_json::Value = serde_json::from_str(body).unwrap();
    let mut ids: Vec<String> = value
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|key| key["key_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// Sends the headers of a POST of `length` bytes and the first bytes of `body`.
fn start_post(
    addr: SocketAddr,
    path: &str,
    headers: &str,
    length: usize,
    body: &[u8],
) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\ncontent-length: {length}\r\n{headers}\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    stream
}

/// Whether `/metrics` shows an inference running.
fn inference_running(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n");
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text.lines()
        .any(|line| line == "dlrmhe_inference_running 1")
}

fn kill(mut process: ServeProcess) {
    process.child.kill().unwrap(); // SIGKILL: no shutdown code runs.
    process.child.wait().unwrap();
}

fn start(model: &Path, store: &Path) -> ServeProcess {
    ServeProcess::start(model, store)
}

#[test]
fn keys_survive_kill_9_during_an_upload_and_during_an_inference() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.json");
    infer::testing::tiny_model().save(&model).unwrap();
    let store = dir.path().join("keys");
    let (first, second) = (tenant(61), tenant(63));

    let process = start(&model, &store);
    let first_id = service(&process)
        .register_key(&first.server)
        .unwrap()
        .key_id;
    // Killed while the second key's body is half sent.
    let second_bytes = second.server.to_bytes().unwrap();
    let mut upload = start_post(
        process.addr,
        "/v1/keys",
        "",
        second_bytes.len(),
        &second_bytes[..second_bytes.len() / 2],
    );
    upload.flush().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    kill(process);

    let process = start(&model, &store);
    assert_eq!(listed(&process), vec![first_id.clone()]);
    check_serves(&process, &first, &first_id);
    let second_id = service(&process)
        .register_key(&second.server)
        .unwrap()
        .key_id;

    // Killed while a long batch runs with the first key.
    let interface = service(&process).model_interface("tiny").unwrap();
    let client = Client::new(first.client.clone(), interface).unwrap();
    let request = client
        .encrypt(&[0.5, -1.0], &[3, 7])
        .unwrap()
        .to_bytes()
        .unwrap();
    let batch = infer::encode_batch(&vec![request; 32]);
    let headers = format!("x-key-id: {first_id}\r\n");
    let _running = start_post(
        process.addr,
        "/v1/models/tiny/infer-batch",
        &headers,
        batch.len(),
        &batch,
    );
    let started = Instant::now();
    while !inference_running(process.addr) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the batch never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    kill(process);

    let process = start(&model, &store);
    let mut both = vec![first_id.clone(), second_id.clone()];
    both.sort();
    assert_eq!(listed(&process), both);
    check_serves(&process, &first, &first_id);
    check_serves(&process, &second, &second_id);
}
