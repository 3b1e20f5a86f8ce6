//! The service on a loopback port with the tiny hand-made model: key registration and
//! persistence, encrypted inference (single and batched) checked against the integer
//! reference, metrics, and every kind of bad input and overload answered with a JSON error
//! while other clients keep being served.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use client::{Client, ServiceClient};
use fhe::{ClientKey, CompressedServerKey, KeySeed, ParameterSetId};
use infer::ServerModel;
mod common;

use common::{call, error_code, parse_answer, read_answer, read_raw};
use serve::{Access, DirectoryKeyStore, Limits, NamedModel, RunningService, ServiceConfig};

struct Keys {
    client: ClientKey,
    server: CompressedServerKey,
    server_bytes: Vec<u8>,
}

/// One key pair for the whole file (key generation is the slow part).
fn keys() -> &'static Keys {
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

fn tiny() -> dlrm::QuantizedModel {
    infer::testing::tiny_model()
}

/// The tiny model with one bias changed: same shapes, another model id.
fn other_model() -> dlrm::QuantizedModel {
    let mut model = tiny();
    model.top.last_mut().unwrap().bias[0] += 1;
    model
}

fn start(store: &Path, limits: Limits) -> RunningService {
    let models = vec![NamedModel {
        name: "tiny".into(),
        model: ServerModel::new(&tiny(), ParameterSetId::default()).unwrap(),
    }];
    let config = ServiceConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        limits,
        access: Access::Open {
            insecure_remote: false,
        },
        tls: None,
        handle_signals: false,
    };
    let store = Arc::new(DirectoryKeyStore::open(store).unwrap());
    RunningService::start(config, store, models).unwrap()
}

/// A service whose store holds the file's server key; returns the key's id.
fn start_with_key(store: &Path, limits: Limits) -> (RunningService, String) {
    let service = start(store, limits);
    let key_id = service_client(&service)
        .register_key(&keys().server)
        .unwrap()
        .key_id;
    (service, key_id)
}

fn url(service: &RunningService) -> String {
    format!("http://{}", service.addr())
}

fn service_client(service: &RunningService) -> ServiceClient {
    ServiceClient::new(&url(service), Duration::from_secs(120)).unwrap()
}

/// Opens a call that declares a body of `length` bytes and sends only `sent` of them.
fn stalled_call(
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

/// Encrypts `rows` for the served model, runs them through the service one by one and as a
/// batch, and checks every decrypted numerator against the integer reference.
fn check_inference(service: &RunningService, key_id: &str) {
    let http = service_client(service);
    let interface = http.model_interface("tiny").unwrap();
    let client = Client::new(keys().client.clone(), interface).unwrap();
    let model = tiny();
    let rows: [([f32; 2], [u32; 2]); 3] = [
        ([0.0, 0.0], [0, 0]),
        ([1.9, -3.9], [4, 9]),
        ([-2.0, 4.0], [0, 9]),
    ];
    let requests: Vec<Vec<u8>> = rows
        .iter()
        .map(|(dense, ids)| client.encrypt(dense, ids).unwrap().to_bytes().unwrap())
        .collect();
    let reference: Vec<i64> = rows
        .iter()
        .map(|(dense, ids)| model.forward(&model.quantize_input(dense), ids).unwrap())
        .collect();
    // The tiny model is exact by construction: the decrypted numerator rounds to the reference.
    for (request, want) in requests.iter().zip(&reference) {
        let answer = http.infer("tiny", key_id, request).unwrap();
        assert!(answer.stages.unwrap().lookup > Duration::ZERO);
        let got = client.decrypt_bytes(&answer.bytes).unwrap().logit_numerator;
        assert_eq!(got, *want, "decrypted {got}");
    }
    let answers = http.infer_batch("tiny", key_id, &requests).unwrap();
    for (answer, want) in answers.iter().zip(&reference) {
        let got = client.decrypt_bytes(answer).unwrap().logit_numerator;
        assert_eq!(got, *want, "decrypted {got}");
    }
}

#[test]
fn keys_persist_and_encrypted_answers_match_the_reference() {
    let store = tempfile::tempdir().unwrap();
    let service = start(store.path(), Limits::default());
    let http = service_client(&service);
    let registered = http.register_key(&keys().server).unwrap();
    assert!(registered.created);
    assert_eq!(registered.bytes, keys().server_bytes.len() as u64);
    // The same key again: same id, nothing new.
    let again = http.register_key(&keys().server).unwrap();
    assert_eq!(again.key_id, registered.key_id);
    assert!(!again.created);

    let (status, models) = call(service.addr(), "GET", "/v1/models", &[], b"");
    assert_eq!(status, 200);
    let models: serde_json::Value = serde_json::from_str(&models).unwrap();
    assert_eq!(models[0]["name"], "tiny");
    assert_eq!(models[0]["tables"], 2);
    let (status, description) = call(service.addr(), "GET", "/v1/models/tiny", &[], b"");
    assert_eq!(status, 200);
    let description: serde_json::Value = serde_json::from_str(&description).unwrap();
    assert_eq!(description["request"]["key_header"], "x-key-id");
    assert_eq!(
        description["interface"]["tables"].as_array().unwrap().len(),
        2
    );
    assert!(description["plan"]["bootstraps"].as_u64().unwrap() > 0);

    check_inference(&service, &registered.key_id);

    let (status, metrics) = call(service.addr(), "GET", "/metrics", &[], b"");
    assert_eq!(status, 200);
    assert!(metrics.contains(
        "dlrmhe_http_request_duration_seconds_count{endpoint=\"POST /v1/models/{name}/infer\"} 3"
    ), "{metrics}");
    assert!(metrics.contains(
        "dlrmhe_stage_duration_seconds{model=\"tiny\",stage=\"lookup\",quantile=\"0.99\"}"
    ));
    assert!(
        metrics.contains("dlrmhe_stage_duration_seconds_count{model=\"tiny\",stage=\"top\"} 6")
    );
    assert!(metrics.contains("dlrmhe_registered_keys 1"));
    service.shutdown().unwrap();

    // A restart keeps the key; deleting it makes inference calls fail with unknown_key.
    let service = start(store.path(), Limits::default());
    let (status, listed) = call(service.addr(), "GET", "/v1/keys", &[], b"");
    assert_eq!(status, 200);
    assert!(listed.contains(&registered.key_id), "{listed}");
    check_inference(&service, &registered.key_id);
    let path = format!("/v1/keys/{}", registered.key_id);
    assert_eq!(call(service.addr(), "DELETE", &path, &[], b"").0, 204);
    let (status, body) = call(service.addr(), "DELETE", &path, &[], b"");
    assert_eq!((status, error_code(&body).as_str()), (404, "unknown_key"));
    let (status, body) = call(
        service.addr(),
        "POST",
        "/v1/models/tiny/infer",
        &[("x-key-id", &registered.key_id)],
        b"",
    );
    assert_eq!((status, error_code(&body).as_str()), (404, "unknown_key"));
}

#[test]
fn bad_input_gets_a_json_error_and_leaves_other_clients_served() {
    let store = tempfile::tempdir().unwrap();
    let limits = Limits {
        body_timeout: Duration::from_secs(1),
        header_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let (service, key_id) = start_with_key(store.path(), limits);
    let addr = service.addr();
    let infer = "/v1/models/tiny/infer";
    let with_key = [("x-key-id", key_id.as_str())];
    let expect = |(status, body): (u16, String), want_status: u16, want_code: &str| {
        assert_eq!(status, want_status, "{body}");
        assert_eq!(error_code(&body), want_code);
    };

    // Keys: truncated, random, another parameter set's name, an unknown set.
    let truncated = &keys().server_bytes[..keys().server_bytes.len() / 2];
    expect(
        call(addr, "POST", "/v1/keys", &[], truncated),
        400,
        "bad_key",
    );
    expect(
        call(addr, "POST", "/v1/keys", &[], &[7u8; 4096]),
        400,
        "bad_key",
    );
    let other_set = format!("/v1/keys?parameter_set={}", ParameterSetId::ALL[1].name());
    expect(
        call(addr, "POST", &other_set, &[], &keys().server_bytes),
        400,
        "bad_key",
    );
    expect(
        call(addr, "POST", "/v1/keys?parameter_set=nope", &[], b""),
        400,
        "unknown_parameter_set",
    );
    let mut oversized = stalled_call(addr, "/v1/keys", "", (64 << 20) + 1, b"");
    expect(read_answer(&mut oversized), 413, "body_too_large");

    // Requests: no key, a bad or unknown key id, an unknown model, random and truncated bytes,
    // a request for another model, an empty or oversized body. (Calls refused before their body
    // is read send none: a server closing a connection with unread bytes resets it, and the
    // client could miss the answer.)
    expect(call(addr, "POST", infer, &[], b""), 400, "missing_key_id");
    expect(
        call(
            addr,
            "POST",
            infer,
            &[("x-key-id", "../../etc/passwd")],
            b"",
        ),
        400,
        "bad_key_id",
    );
    expect(
        call(addr, "POST", infer, &[("x-key-id", &"0".repeat(32))], b""),
        404,
        "unknown_key",
    );
    expect(
        call(addr, "POST", "/v1/models/nope/infer", &with_key, b""),
        404,
        "unknown_model",
    );
    expect(
        call(addr, "POST", infer, &with_key, &[3u8; 1000]),
        400,
        "bad_request",
    );
    expect(
        call(addr, "POST", infer, &with_key, b""),
        400,
        "bad_request",
    );
    let interface = service_client(&service).model_interface("tiny").unwrap();
    let client = Client::new(keys().client.clone(), interface.clone()).unwrap();
    let good = client
        .encrypt(&[0.5, -1.0], &[3, 7])
        .unwrap()
        .to_bytes()
        .unwrap();
    expect(
        call(addr, "POST", infer, &with_key, &good[..good.len() - 9]),
        400,
        "bad_request",
    );
    let other =
        infer::ModelInterface::for_model(&other_model(), ParameterSetId::default()).unwrap();
    let foreign = infer::encrypt_request(&keys().client, &other, &[0.5, -1.0], &[3, 7]).unwrap();
    expect(
        call(addr, "POST", infer, &with_key, &foreign.to_bytes().unwrap()),
        400,
        "wrong_model",
    );
    let limit = infer::Request::max_bytes(&interface).unwrap();
    let mut oversized = stalled_call(addr, infer, &key_id, limit + 1, b"");
    expect(read_answer(&mut oversized), 413, "body_too_large");
    expect(
        call(
            addr,
            "POST",
            "/v1/models/tiny/infer-batch",
            &with_key,
            &good,
        ),
        400,
        "bad_request",
    );
    expect(call(addr, "GET", "/v1/nothing", &[], b""), 404, "not_found");

    // A client that never finishes its headers is disconnected after the header timeout.
    let mut trickle = TcpStream::connect(addr).unwrap();
    trickle
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    trickle
        .write_all(b"POST /v1/keys HTTP/1.1\r\nhost: te")
        .unwrap();
    let mut rest = Vec::new();
    assert!(
        trickle.read_to_end(&mut rest).is_ok(),
        "the connection stayed open"
    );
    // A slow client is cut off after the body timeout.
    let mut slow = stalled_call(addr, infer, &key_id, good.len(), &good[..100]);
    expect(read_answer(&mut slow), 408, "body_timeout");

    // After all that, a good request is answered.
    let answer = service_client(&service)
        .infer("tiny", &key_id, &good)
        .unwrap();
    assert!(client.decrypt_bytes(&answer.bytes).is_ok());
    let (status, _) = call(addr, "GET", "/healthz", &[], b"");
    assert_eq!(status, 200);
}

#[test]
fn saturation_is_refused_and_shutdown_finishes_in_flight_calls() {
    let store = tempfile::tempdir().unwrap();
    let limits = Limits {
        workers: 1,
        queue: 0,
        key_uploads: 1,
        ..Limits::default()
    };
    let (service, key_id) = start_with_key(store.path(), limits);
    let addr = service.addr();
    let interface = service_client(&service).model_interface("tiny").unwrap();
    let client = Client::new(keys().client.clone(), interface).unwrap();
    let good = client
        .encrypt(&[0.5, -1.0], &[3, 7])
        .unwrap()
        .to_bytes()
        .unwrap();

    // A call whose body has not arrived holds no place: while it uploads, a complete call takes
    // the only place and is answered.
    let mut first = stalled_call(
        addr,
        "/v1/models/tiny/infer",
        &key_id,
        good.len(),
        &good[..good.len() / 2],
    );
    std::thread::sleep(Duration::from_millis(300));
    let (status, _) = call(
        addr,
        "POST",
        "/v1/models/tiny/infer",
        &[("x-key-id", &key_id)],
        &good,
    );
    assert_eq!(status, 200);
    // A batch running in the only place: a complete call meanwhile is refused.
    let batch = infer::encode_batch(&vec![good.clone(); 32]);
    let batch_key = key_id.clone();
    let running = std::thread::spawn(move || {
        call(
            addr,
            "POST",
            "/v1/models/tiny/infer-batch",
            &[("x-key-id", &batch_key)],
            &batch,
        )
        .0
    });
    std::thread::sleep(Duration::from_millis(150));
    let mut refused = stalled_call(addr, "/v1/models/tiny/infer", &key_id, good.len(), &good);
    let raw = read_raw(&mut refused);
    let (status, body) = parse_answer(&raw);
    assert_eq!((status, error_code(&body).as_str()), (429, "overloaded"));
    assert!(raw.to_ascii_lowercase().contains("retry-after: 1"), "{raw}");
    assert_eq!(running.join().unwrap(), 200);
    // Likewise for key uploads.
    let mut upload = stalled_call(
        addr,
        "/v1/keys",
        "",
        keys().server_bytes.len(),
        &keys().server_bytes[..1000],
    );
    std::thread::sleep(Duration::from_millis(300));
    let mut refused = stalled_call(addr, "/v1/keys", "", keys().server_bytes.len(), b"");
    let (status, body) = read_answer(&mut refused);
    assert_eq!((status, error_code(&body).as_str()), (429, "busy"));

    // Shut down while the first call is in flight: it still gets its answer, decryptable.
    let stopping = std::thread::spawn(move || service.shutdown());
    std::thread::sleep(Duration::from_millis(300));
    first.write_all(&good[good.len() / 2..]).unwrap();
    upload.write_all(&keys().server_bytes[1000..]).unwrap();
    let mut answer = Vec::new();
    first.read_to_end(&mut answer).unwrap();
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer[..split])
    );
    let prediction = client.decrypt_bytes(&answer[split + 4..]).unwrap();
    let model = tiny();
    let want = model
        .forward(&model.quantize_input(&[0.5, -1.0]), &[3, 7])
        .unwrap();
    assert_eq!(prediction.logit_numerator, want);
    assert_eq!(read_answer(&mut upload).0, 200);
    stopping.join().unwrap().unwrap();
    assert!(TcpStream::connect(addr).is_err());
}
