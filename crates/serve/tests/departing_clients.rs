//! Clients that are slow or leave: bodies sent below the minimum rate are cut off without
//! holding queue places other clients need, and the work of a client that disconnects stops at
//! the next layer boundary, after which the service goes on answering.

mod common;

use std::net::TcpStream;
use std::time::Duration;

use common::{call, error_code, eventually, keys, metric, read_answer, stalled_call};
use fhe::ParameterSetId;
use serve::{Access, Limits, RunningService};

/// The tiny model's inputs for row `i`: two dense features and an id per table.
fn row(i: usize) -> (Vec<f32>, Vec<u32>) {
    let dense = vec![(i % 7) as f32 * 0.25 - 0.5, 1.0 - (i % 5) as f32 * 0.5];
    (dense, vec![(i % 5) as u32, (i % 8) as u32])
}

/// A service with the tiny model and the file's key registered; returns the key's id.
fn start_with_key(store: &std::path::Path, limits: Limits) -> (RunningService, String) {
    let open = Access::Open {
        insecure_remote: false,
    };
    let service = common::start_tiny(store, open, limits).unwrap();
    let (status, body) = call(
        service.addr(),
        "POST",
        "/v1/keys",
        &[],
        &keys().server_bytes,
    );
    assert_eq!(status, 201, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    let key_id = answer["key_id"].as_str().unwrap().to_owned();
    (service, key_id)
}

/// Encrypts row `i` as request bytes.
fn request(i: usize) -> Vec<u8> {
    let model = infer::testing::tiny_model();
    let interface = infer::ModelInterface::for_model(&model, ParameterSetId::default()).unwrap();
    let (dense, ids) = row(i);
    infer::encrypt_request(&keys().client, &interface, &dense, &ids)
        .unwrap()
        .to_bytes()
        .unwrap()
}

/// Runs row `i` through the service and checks the decrypted numerator against the integer
/// reference (the tiny model's bootstraps are exact).
fn check_inference(service: &RunningService, key_id: &str, i: usize, request: &[u8]) {
    let answer = client::ServiceClient::new(&service.url(), Duration::from_secs(120))
        .unwrap()
        .infer("tiny", key_id, request)
        .unwrap();
    let model = infer::testing::tiny_model();
    let interface = infer::ModelInterface::for_model(&model, ParameterSetId::default()).unwrap();
    let response = infer::Response::from_bytes(&answer.bytes, &interface).unwrap();
    let numerator = infer::decrypt_response(&keys().client, &interface, &response).unwrap();
    let (dense, ids) = row(i);
    let reference = model.forward(&model.quantize_input(&dense), &ids).unwrap();
    assert_eq!(numerator, reference, "row {i}");
}

#[test]
fn slow_bodies_beyond_the_queue_do_not_stop_a_well_behaved_client() {
    let store = tempfile::tempdir().unwrap();
    let limits = Limits {
        workers: 1,
        queue: 1,
        ..Limits::default()
    };
    let (service, key_id) = start_with_key(store.path(), limits);
    let addr = service.addr();
    let good = request(3);
    // Four clients, twice what the workers and the queue hold, send 100 bytes and stall.
    let mut slow: Vec<TcpStream> = (0..4)
        .map(|_| {
            stalled_call(
                addr,
                "/v1/models/tiny/infer",
                &key_id,
                good.len(),
                &good[..100],
            )
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // The slow clients hold no queue place while their bodies are within their grace.
    check_inference(&service, &key_id, 3, &good);
    // Each slow client is cut off once its grace is over, for its rate.
    for stream in &mut slow {
        let (status, body) = read_answer(stream);
        assert_eq!((status, error_code(&body).as_str()), (408, "body_too_slow"));
    }
    service.shutdown().unwrap();
}

#[test]
fn the_work_of_a_client_that_leaves_stops_and_the_service_goes_on() {
    let store = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_batch: 400,
        ..Limits::default()
    };
    let (service, key_id) = start_with_key(store.path(), limits);
    let addr = service.addr();
    // A batch long enough that it is still running when its client leaves.
    let one = request(1);
    let batch = infer::encode_batch(&vec![one.clone(); 400]);
    let leaving = stalled_call(
        addr,
        "/v1/models/tiny/infer-batch",
        &key_id,
        batch.len(),
        &batch,
    );
    assert!(
        eventually(Duration::from_secs(60), || metric(
            addr,
            "dlrmhe_inference_running"
        ) == 1.0),
        "the batch never started"
    );
    drop(leaving);
    assert!(
        eventually(Duration::from_secs(60), || service
            .metrics()
            .abandoned_calls()
            == 1),
        "the batch of a client that left was not stopped"
    );
    assert!(eventually(Duration::from_secs(60), || metric(
        addr,
        "dlrmhe_inference_running"
    ) == 0.0));
    assert_eq!(metric(addr, "dlrmhe_inference_abandoned_total"), 1.0);
    check_inference(&service, &key_id, 1, &one);
    assert_eq!(service.metrics().abandoned_calls(), 1);
    service.shutdown().unwrap();
}
