//! The service under test (the tiny model on a loopback port), raw HTTP/1.1 calls to it, and
//! reading its JSON errors.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use fhe::{ClientKey, CompressedServerKey, KeySeed, ParameterSetId};
use infer::ServerModel;
use serve::{Access, DirectoryKeyStore, Limits, NamedModel, RunningService, ServiceConfig};

/// A client key and its server key, in both forms.
#[allow(dead_code)] // Not every test file registers a key.
pub(crate) struct Keys {
    pub(crate) client: ClientKey,
    pub(crate) server: CompressedServerKey,
    pub(crate) server_bytes: Vec<u8>,
}

/// One key pair per test process (key generation is the slow part).
#[allow(dead_code)] // Not every test file registers a key.
pub(crate) fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let client = ClientKey::from_seed(ParameterSetId::default(), KeySeed(31));
        let server = client.compressed_server_key(KeySeed(32));
        let server_bytes = server.to_bytes().unwrap();
        Keys {
            client,
            server,
            server_bytes,
        }
    })
}

/// [`tiny`] served on a free loopback port, its keys kept in `store`.
#[allow(dead_code)] // Not every test file serves the tiny model alone.
pub(crate) fn start_tiny(
    store: &Path,
    access: Access,
    limits: Limits,
) -> serve::Result<RunningService> {
    start_models(store, access, limits, vec![tiny()])
}

/// `models` served on a free loopback port, their keys kept in `store`.
pub(crate) fn start_models(
    store: &Path,
    access: Access,
    limits: Limits,
    models: Vec<NamedModel>,
) -> serve::Result<RunningService> {
    let config = ServiceConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        limits,
        access,
        tls: None,
        handle_signals: false,
    };
    let store = Arc::new(DirectoryKeyStore::open(store).unwrap());
    RunningService::start(config, store, models)
}

/// The tiny hand-made model (`infer::testing`) under the name `tiny`.
#[allow(dead_code)] // Not every test file serves the tiny model alone.
pub(crate) fn tiny() -> NamedModel {
    NamedModel {
        name: "tiny".into(),
        model: ServerModel::new(&infer::testing::tiny_model(), ParameterSetId::default()).unwrap(),
    }
}

/// Opens a call that declares a body of `length` bytes and sends only `sent` of them.
#[allow(dead_code)] // Not every test file stalls a call.
pub(crate) fn stalled_call(
    addr: SocketAddr,
    path: &str,
    key_id: &str,
    length: usize,
    sent: &[u8],
) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\nx-key-id: {key_id}\r\ncontent-length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(sent).unwrap();
    stream
}

/// A raw HTTP call; returns the status and the body.
pub(crate) fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    // The service may answer (and close) before reading a body it refuses.
    let _ = stream.write_all(body);
    read_answer(&mut stream)
}

pub(crate) fn read_answer(stream: &mut TcpStream) -> (u16, String) {
    parse_answer(&read_raw(stream))
}

/// Everything the service sent, headers included.
pub(crate) fn read_raw(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

pub(crate) fn parse_answer(text: &str) -> (u16, String) {
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

/// The `code` of a JSON error body.
pub(crate) fn error_code(body: &str) -> String {
    let value: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    value["error"]["code"].as_str().unwrap().to_owned()
}

/// The value of an unlabelled series of `/metrics`.
#[allow(dead_code)] // Not every test file reads metrics.
pub(crate) fn metric(addr: SocketAddr, name: &str) -> f64 {
    let (_, text) = call(addr, "GET", "/metrics", &[], b"");
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// Polls `condition` every 20 ms until it holds, for at most `within`.
#[allow(dead_code)] // Not every test file waits.
pub(crate) fn eventually(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < within {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    condition()
}
