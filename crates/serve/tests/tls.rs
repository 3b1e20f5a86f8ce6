//! The service over TLS, with a certificate generated here (rcgen): an encrypted inference over
//! https with tenants, checked against the integer reference; a client that does not trust the
//! certificate is refused at the handshake; plain HTTP to the TLS port is never answered; a
//! client that never starts its handshake neither holds up others nor keeps its connection
//! beyond the header time.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use client::{Client, ClientError, ServiceClient};
use fhe::{ClientKey, KeySeed, ParameterSetId};
use infer::ServerModel;
use serve::{
    Access, DirectoryKeyStore, Limits, NamedModel, Quotas, RunningService, ServiceConfig, Tenants,
    TlsConfig,
};

/// A self-signed certificate for the loopback address, and its key (PEM).
fn certificate() -> (String, String) {
    let made =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    (made.cert.pem(), made.signing_key.serialize_pem())
}

/// A TLS service with tenants serving the tiny model; returns it, the CA (its certificate) and
/// the one tenant's token.
fn start(store: &std::path::Path, limits: Limits) -> (RunningService, String, String) {
    let (cert, key) = certificate();
    let mut tenants = Tenants::default();
    let token = tenants.add("acme", Quotas::default()).unwrap();
    let config = ServiceConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        limits,
        access: Access::Tenants(tenants),
        tls: Some(TlsConfig::from_pem(cert.as_bytes(), key.as_bytes()).unwrap()),
        handle_signals: false,
    };
    let model = NamedModel {
        name: "tiny".into(),
        model: ServerModel::new(&infer::testing::tiny_model(), ParameterSetId::default()).unwrap(),
    };
    let store = Arc::new(DirectoryKeyStore::open(store).unwrap());
    let service = RunningService::start(config, store, vec![model]).unwrap();
    (service, cert, token.reveal().to_owned())
}

/// What the service sent on `stream` until it closed it (or reset it: a refused handshake may).
fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the service neither answered nor closed: {e}"),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

fn https_client(service: &RunningService) -> ServiceClient {
    ServiceClient::new(&service.url(), Duration::from_secs(120)).unwrap()
}

fn service_code(error: ClientError) -> String {
    match error {
        ClientError::Service { code, .. } => code,
        other => panic!("not a service error: {other}"),
    }
}

#[test]
fn inference_over_https_matches_the_integer_reference() {
    let store = tempfile::tempdir().unwrap();
    let (service, ca, token) = start(store.path(), Limits::default());
    assert!(service.url().starts_with("https://"), "{}", service.url());
    let http = https_client(&service)
        .with_ca(ca.as_bytes())
        .unwrap()
        .with_token(&token);

    let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(51));
    let registered = http
        .register_key(&key.compressed_server_key(KeySeed(52)))
        .unwrap();
    assert!(registered.created);
    let interface = http.model_interface("tiny").unwrap();
    let client = Client::new(key, interface).unwrap();
    let model = infer::testing::tiny_model();
    for (dense, ids) in [([1.9f32, -3.9], [4u32, 9]), ([-2.0, 4.0], [0, 9])] {
        let request = client.encrypt(&dense, &ids).unwrap().to_bytes().unwrap();
        let answer = http.infer("tiny", &registered.key_id, &request).unwrap();
        let got = client.decrypt_bytes(&answer.bytes).unwrap().logit_numerator;
        let want = model.forward(&model.quantize_input(&dense), &ids).unwrap();
        // The tiny model is exact by construction.
        assert_eq!(got, want, "decrypted {got}");
    }
    // The token is still required over TLS.
    let anonymous = https_client(&service).with_ca(ca.as_bytes()).unwrap();
    let refused = anonymous.model_interface("tiny").unwrap_err();
    assert_eq!(service_code(refused), "unauthenticated");
    service.shutdown().unwrap();
}

#[test]
fn a_client_that_does_not_trust_the_certificate_is_refused() {
    let store = tempfile::tempdir().unwrap();
    let (service, _, token) = start(store.path(), Limits::default());
    // Mozilla's roots (the default) do not include a self-signed certificate...
    let default_roots = https_client(&service).with_token(&token);
    let error = default_roots.model_interface("tiny").unwrap_err();
    let message = error.to_string();
    assert_eq!(service_code(error), "untrusted_certificate", "{message}");
    assert!(message.contains("--ca"), "{message}");
    // ...and neither does another CA.
    let (other, _) = certificate();
    let other_ca = https_client(&service)
        .with_ca(other.as_bytes())
        .unwrap()
        .with_token(&token);
    let error = other_ca.model_interface("tiny").unwrap_err();
    assert_eq!(service_code(error), "untrusted_certificate");
    // A CA file without a certificate, or a CA for plain HTTP, is refused before any call.
    let (_, key) = certificate();
    assert!(matches!(
        https_client(&service).with_ca(key.as_bytes()),
        Err(ClientError::BadCa(_))
    ));
    let plain = ServiceClient::new("http://127.0.0.1:1", Duration::from_secs(1)).unwrap();
    assert!(plain.with_ca(other.as_bytes()).is_err());
    service.shutdown().unwrap();
}

#[test]
fn plain_http_to_the_tls_port_is_not_served() {
    let store = tempfile::tempdir().unwrap();
    let (service, ca, token) = start(store.path(), Limits::default());
    let addr = service.addr();
    // A raw HTTP request: the handshake fails, no HTTP answer comes back.
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
        .unwrap();
    let answer = read_until_closed(&mut stream);
    assert!(!answer.contains("HTTP/1.1"), "answered in clear: {answer}");
    // The same through the client with an http:// URL.
    let plain = ServiceClient::new(&format!("http://{addr}"), Duration::from_secs(60))
        .unwrap()
        .with_token(&token);
    match plain.model_interface("tiny").unwrap_err() {
        ClientError::Service { status, .. } => assert_eq!(status, 0, "an HTTP answer came"),
        other => panic!("not a service error: {other}"),
    }
    // Over TLS the same service answers.
    let https = https_client(&service)
        .with_ca(ca.as_bytes())
        .unwrap()
        .with_token(&token);
    https.model_interface("tiny").unwrap();
    service.shutdown().unwrap();
}

#[test]
fn a_silent_connection_does_not_hold_up_others() {
    let store = tempfile::tempdir().unwrap();
    // A handshake timeout far longer than the client's: were handshakes run one at a time in
    // the accept loop, the call below would wait for the silent one and time out.
    let limits = Limits {
        header_timeout: Duration::from_secs(3600),
        ..Limits::default()
    };
    let (service, ca, token) = start(store.path(), limits);
    // A client that connects and never sends its ClientHello.
    let silent = TcpStream::connect(service.addr()).unwrap();
    let https = https_client(&service)
        .with_ca(ca.as_bytes())
        .unwrap()
        .with_token(&token);
    https.model_interface("tiny").unwrap();
    drop(silent);
    service.shutdown().unwrap();
}

#[test]
fn a_silent_connection_is_closed_after_the_header_time() {
    let store = tempfile::tempdir().unwrap();
    let limits = Limits {
        header_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let (service, _, _) = start(store.path(), limits);
    let mut silent = TcpStream::connect(service.addr()).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    // Closed by the service (EOF), not left open until the read timeout.
    let answer = read_until_closed(&mut silent);
    assert!(answer.is_empty(), "{answer}");
    service.shutdown().unwrap();
}
