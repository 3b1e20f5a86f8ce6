//! The tiny hand-made model, encrypted: every intermediate ciphertext is decrypted and checked
//! against the integer reference's trace, and the request/response formats reject bad bytes.

use dlrm::Execution;
use fhe::{ClientKey, KeySeed, ParameterSetId, ServerKey};
use infer::{InferError, Request, Response, ServerModel, decrypt_response, encrypt_request};

fn keys() -> (ClientKey, ServerKey) {
    let client = ClientKey::from_seed(ParameterSetId::default(), KeySeed(11));
    let server = client.compressed_server_key(KeySeed(12)).decompress();
    (client, server)
}

/// Rows covering ids 0 and V-1 of both tables, negative, zero and clamped dense values.
fn rows() -> Vec<([f32; 2], [u32; 2])> {
    vec![
        ([0.0, 0.0], [0, 0]),
        ([1.9, -3.9], [4, 9]),
        ([-2.0, 4.0], [0, 9]),
        ([0.75, 1.5], [2, 5]),
        ([-0.3, -0.6], [3, 1]),
        ([9.0, -9.0], [1, 8]),
    ]
}

#[test]
fn every_intermediate_ciphertext_matches_the_reference() {
    let model = infer::testing::tiny_model();
    let server = ServerModel::new(&model, ParameterSetId::default()).unwrap();
    let plan = server.plan();
    let (client_key, server_key) = keys();
    for (row, (dense, ids)) in rows().into_iter().enumerate() {
        let request = encrypt_request(&client_key, server.interface(), &dense, &ids).unwrap();
        let (response, trace) = server.infer_traced(&server_key, &request).unwrap();
        let reference = model
            .trace(&model.quantize_input(&dense), &ids, Execution::Exact, 0)
            .unwrap();
        let (layers, top_input) = trace.decrypt(&client_key, plan).unwrap();
        assert_eq!(layers.len(), reference.layers.len());
        for (k, (got, want)) in layers.iter().zip(&reference.layers).enumerate() {
            let half_box = plan.layers[k]
                .activation
                .map_or(1, |a| (1i64 << a.box_shift) / 2);
            for (g, w) in got.accumulators.iter().zip(&want.accumulators) {
                assert!(
                    (g - w).abs() <= half_box.max(1),
                    "row {row} layer {k}: accumulator {g}, reference {w}"
                );
            }
            assert_eq!(
                got.activations, want.activations,
                "row {row} layer {k}: activations"
            );
        }
        assert_eq!(top_input, reference.top_input, "row {row}: top input");
        let numerator = decrypt_response(&client_key, server.interface(), &response).unwrap();
        assert!(
            (numerator - reference.logit_numerator).abs() < 0.5,
            "row {row}: numerator {numerator}, reference {}",
            reference.logit_numerator
        );
    }
}

#[test]
fn bytes_round_trip_and_bad_bytes_are_rejected() {
    let model = infer::testing::tiny_model();
    let server = ServerModel::new(&model, ParameterSetId::default()).unwrap();
    let interface = server.interface();
    let (client_key, server_key) = keys();
    let request = encrypt_request(&client_key, interface, &[0.5, 1.0], &[1, 2]).unwrap();
    let bytes = request.to_bytes().unwrap();
    let (response_bytes, _) = server.infer_bytes(&server_key, &bytes).unwrap();
    let response = Response::from_bytes(&response_bytes, interface).unwrap();
    let numerator = decrypt_response(&client_key, interface, &response).unwrap();
    let exact = model
        .forward(&model.quantize_input(&[0.5, 1.0]), &[1, 2])
        .unwrap();
    assert!((numerator - exact as f64).abs() < 0.5);

    // Truncations, appended bytes and random bytes: errors, never panics.
    for cut in [0, 7, 8, 12, 40, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            Request::from_bytes(&bytes[..cut], interface).is_err(),
            "cut {cut}"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(Request::from_bytes(&longer, interface).is_err());
    let mut state = 0x1234_5678u64;
    let noise: Vec<u8> = (0..bytes.len())
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    assert!(Request::from_bytes(&noise, interface).is_err());
    let mut corrupted = bytes.clone();
    corrupted[20] ^= 0xff;
    assert!(Request::from_bytes(&corrupted, interface).is_err());
    assert!(Response::from_bytes(&bytes, interface).is_err()); // a request is not a response

    // Another model: refused by the reader and by the executor.
    let mut other = model.clone();
    other.logit_scale *= 2.0;
    let other_server = ServerModel::new(&other, ParameterSetId::default()).unwrap();
    assert!(matches!(
        Request::from_bytes(&bytes, other_server.interface()),
        Err(InferError::ModelMismatch { .. })
    ));
    assert!(matches!(
        other_server.infer(&server_key, &request),
        Err(InferError::ModelMismatch { .. })
    ));
}

#[test]
fn another_parameter_set_is_refused() {
    let model = infer::testing::tiny_model();
    let interface = infer::ModelInterface::for_model(
        &model,
        ParameterSetId::Tfhe1_8Message3Carry3KsPbsTUniform2M128,
    )
    .unwrap();
    let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    assert!(matches!(
        encrypt_request(&key, &interface, &[0.0, 0.0], &[0, 0]),
        Err(InferError::Fhe(fhe::FheError::ParameterSetMismatch { .. }))
    ));
    let server = ServerModel::new(&model, ParameterSetId::default()).unwrap();
    let request = encrypt_request(&key, server.interface(), &[0.0, 0.0], &[0, 0]).unwrap();
    let bytes = request.to_bytes().unwrap();
    assert!(matches!(
        Request::from_bytes(&bytes, &interface),
        Err(InferError::Fhe(fhe::FheError::ParameterSetMismatch { .. }))
    ));
}
