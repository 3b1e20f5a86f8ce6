//! The tiny hand-made models (concat, dot and sanitised output), encrypted: every intermediate
//! ciphertext is decrypted and checked against the integer reference's trace, and the
//! request/response formats reject bad bytes.

use dlrm::{Execution, QuantizedModel};
use fhe::{ClientKey, KeySeed, ParameterSetId, ServerKey};
use infer::{
    BatchError, InferError, Request, Response, ServerModel, decrypt_response, encrypt_request,
};

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

/// Runs every row encrypted and checks each decrypted intermediate against the reference.
fn check_every_ciphertext(model: &QuantizedModel) {
    let server = ServerModel::new(model, ParameterSetId::default()).unwrap();
    let plan = server.plan();
    let (client_key, server_key) = keys();
    for (row, (dense, ids)) in rows().into_iter().enumerate() {
        let request = encrypt_request(&client_key, server.interface(), &dense, &ids).unwrap();
        let (response, trace) = server.infer_traced(&server_key, &request).unwrap();
        let reference = model
            .trace(&model.quantize_input(&dense), &ids, Execution::Exact, 0)
            .unwrap();
        let decrypted = trace.decrypt(&client_key, plan).unwrap();
        assert_eq!(decrypted.layers.len(), reference.layers.len());
        let half_box = |box_shift: u32| ((1i64 << box_shift) / 2).max(1);
        for (k, (got, want)) in decrypted.layers.iter().zip(&reference.layers).enumerate() {
            let tolerance = half_box(plan.layers[k].activation.map_or(0, |a| a.box_shift));
            for (g, w) in got.accumulators.iter().zip(&want.accumulators) {
                assert!(
                    (g - w).abs() <= tolerance,
                    "row {row} layer {k}: accumulator {g}, reference {w}"
                );
            }
            assert_eq!(
                got.activations, want.activations,
                "row {row} layer {k}: activations"
            );
        }
        match (
            &decrypted.interaction,
            &reference.interaction,
            &plan.interaction,
        ) {
            (Some(got), Some(want), Some(dot)) => {
                let tolerance = half_box(dot.activation.box_shift);
                assert_eq!(got.accumulators.len(), want.accumulators.len());
                for (g, w) in got.accumulators.iter().zip(&want.accumulators) {
                    assert!(
                        (g - w).abs() <= tolerance,
                        "row {row}: sum {g}, reference {w}"
                    );
                }
                assert_eq!(got.activations, want.activations, "row {row}: squares");
            }
            (None, None, None) => {}
            _ => panic!("row {row}: the interaction is traced on one side only"),
        }
        assert_eq!(
            decrypted.top_input, reference.top_input,
            "row {row}: top input"
        );
        let numerator = decrypt_response(&client_key, server.interface(), &response).unwrap();
        assert_eq!(
            numerator as f64, reference.logit_numerator,
            "row {row}: numerator {numerator}, reference {}",
            reference.logit_numerator
        );
    }
}

#[test]
fn every_intermediate_ciphertext_matches_the_reference() {
    check_every_ciphertext(&infer::testing::tiny_model());
}

#[test]
fn the_dot_interaction_matches_the_reference_ciphertext_by_ciphertext() {
    let model = infer::testing::tiny_dot_model();
    // The hand-made model is sound: over every input it can get, no accumulator leaves its
    // table's boxes, and the exact squares give twice the integer dot products.
    let d = model.config.embedding_dim;
    for (x0, x1) in (-4..4).flat_map(|a| (-4..4).map(move |b| (a, b))) {
        for ids in (0..5u32).flat_map(|a| (0..10u32).map(move |b| [a, b])) {
            let trace = model.trace(&[x0, x1], &ids, Execution::Exact, 0).unwrap();
            for (layer, traced) in model.bottom.iter().chain(&model.top).zip(&trace.layers) {
                if let Some(table) = &layer.activation {
                    let (low, high) = (table.lo - 1, table.hi() + 1);
                    assert!(traced.accumulators.iter().all(|a| (low..high).contains(a)));
                }
            }
            let square = &model.dot.as_ref().unwrap().square;
            let sums = &trace.interaction.as_ref().unwrap().accumulators;
            assert!(sums.iter().all(|u| (square.lo..=square.hi()).contains(u)));
            let mut vectors = vec![trace.layers[model.bottom.len() - 1].activations.clone()];
            for ((table, spec), &id) in model.tables.iter().zip(&model.config.tables).zip(&ids) {
                vectors.push(table.lookup(spec, d, id));
            }
            let mut expected = vectors[0].clone();
            for i in 0..vectors.len() {
                for j in 0..i {
                    expected.push((0..d).map(|k| 2 * vectors[i][k] * vectors[j][k]).sum());
                }
            }
            assert_eq!(trace.top_input, expected);
        }
    }
    let server = ServerModel::new(&model, ParameterSetId::default()).unwrap();
    let dot = server.plan().interaction.as_ref().unwrap();
    // 3 pairs x 2 sums, then the entries of the bottom output and of the digit table (the
    // full table returns its norms): 10 squares instead of the 12 of (a + b)^2 - (a - b)^2.
    assert_eq!(
        (dot.pairs, dot.squares, dot.table_norms, dot.bottom_copies),
        (3, 10, 1, 2)
    );
    assert_eq!(server.plan().bootstraps(), 3 + 2 + 3 + 10 + 2);
    assert!(server.plan().to_string().contains("squares (PBS)"));
    check_every_ciphertext(&model);
}

#[test]
fn the_sanitised_output_matches_the_reference_and_its_simulate_prediction() {
    let model = infer::testing::tiny_sanitised_model();
    let plain = infer::testing::tiny_model();
    let sanitiser = model.output_sanitiser.clone().unwrap();
    // Over every input: the numerator stays inside the sanitiser's boxes, and the reference
    // returns its box centre, on the same side of the class threshold.
    for (x0, x1) in (-4..4).flat_map(|a| (-4..4).map(move |b| (a, b))) {
        for ids in (0..5u32).flat_map(|a| (0..10u32).map(move |b| [a, b])) {
            let n = plain.forward(&[x0, x1], &ids).unwrap();
            assert!(
                (sanitiser.lo - 1..=sanitiser.hi()).contains(&n),
                "numerator {n}"
            );
            let trace = model.trace(&[x0, x1], &ids, Execution::Exact, 0).unwrap();
            let output = trace.layers.last().unwrap();
            assert_eq!(output.accumulators, vec![n]);
            assert_eq!(output.activations, vec![sanitiser.apply(n)]);
            assert_eq!(trace.logit_numerator, sanitiser.apply(n) as f64);
            assert!((sanitiser.apply(n) - n).abs() <= 1);
            assert_eq!(sanitiser.apply(n) > 0, n > 0);
        }
    }
    let server = ServerModel::new(&model, ParameterSetId::default()).unwrap();
    let plain_server = ServerModel::new(&plain, ParameterSetId::default()).unwrap();
    assert_eq!(
        server.plan().bootstraps(),
        plain_server.plan().bootstraps() + 1
    );
    let output = server.plan().layers.last().unwrap();
    assert_eq!(output.bootstraps(), 1);
    assert_eq!(output.activation.unwrap().lut_bits, 4);
    assert_ne!(
        server.interface().model_id,
        plain_server.interface().model_id
    );
    // Every ciphertext, the sanitised output included, equals the reference's value.
    check_every_ciphertext(&model);
    // `simulate` predicts the encrypted run as for the larger models: each simulated numerator
    // is a box centre (plus the fresh bootstrap noise), the encrypted numerator lies within the
    // simulated range, and the class agreement within five binomial deviations of the
    // predicted one. (`simulate` does not model the executor's half-unit tie offset, so rows
    // whose hidden accumulators sit on a box edge move there and not in the encrypted run.)
    let server_key_pair = keys();
    let (mut expected, mut variance, mut agreed) = (0.0, 0.0, 0.0);
    for (row, (dense, ids)) in rows().into_iter().enumerate() {
        let inputs = model.quantize_input(&dense);
        let exact = model.forward(&inputs, &ids).unwrap();
        let request =
            encrypt_request(&server_key_pair.0, server.interface(), &dense, &ids).unwrap();
        let (response, _) = server.infer(&server_key_pair.1, &request).unwrap();
        let encrypted =
            decrypt_response(&server_key_pair.0, server.interface(), &response).unwrap();
        let simulated: Vec<i64> = (0..32)
            .map(|seed| {
                let trace = model
                    .trace(&inputs, &ids, Execution::Simulate { seed }, row as u64)
                    .unwrap();
                let numerator = trace.logit_numerator;
                let centre = trace.layers.last().unwrap().activations[0];
                assert!(
                    (numerator - centre as f64).abs() < 0.01,
                    "row {row}: {numerator}"
                );
                assert_eq!(sanitiser.apply(centre), centre, "row {row}: a box centre");
                centre
            })
            .collect();
        let (low, high) = (simulated.iter().min(), simulated.iter().max());
        assert!(
            (*low.unwrap()..=*high.unwrap()).contains(&encrypted),
            "row {row}: encrypted {encrypted} outside simulate's {simulated:?}"
        );
        let kept = model
            .simulated_class_kept(&inputs, &ids, row as u64, 0..32)
            .unwrap();
        expected += kept;
        variance += kept * (1.0 - kept);
        agreed += f64::from(u8::from((encrypted > 0) == (exact > 0)));
    }
    assert!(
        (agreed - expected).abs() <= 5.0 * variance.sqrt() + 1.0,
        "class agreement {agreed}, simulate predicts {expected}"
    );
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
    assert_eq!(numerator, exact);

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
fn a_batch_answers_in_order_and_names_the_request_that_does_not_decode() {
    let model = infer::testing::tiny_model();
    let server = ServerModel::new(&model, ParameterSetId::default()).unwrap();
    let interface = server.interface();
    let (client_key, server_key) = keys();
    let rows = [([0.5, 1.0], [1, 2]), ([-2.0, 4.0], [0, 9])];
    let requests: Vec<Vec<u8>> = rows
        .iter()
        .map(|(dense, ids)| {
            let request = encrypt_request(&client_key, interface, dense, ids).unwrap();
            request.to_bytes().unwrap()
        })
        .collect();
    let answers = server.infer_batch_bytes(&server_key, &requests).unwrap();
    for ((bytes, timings), (dense, ids)) in answers.iter().zip(&rows) {
        let response = Response::from_bytes(bytes, interface).unwrap();
        let numerator = decrypt_response(&client_key, interface, &response).unwrap();
        let exact = model.forward(&model.quantize_input(dense), ids).unwrap();
        assert_eq!(numerator, exact);
        assert!(timings.decode > std::time::Duration::ZERO);
    }

    let truncated = &requests[1][..requests[1].len() - 1];
    let batch = [requests[0].as_slice(), truncated];
    assert!(matches!(
        server.infer_batch_bytes(&server_key, &batch),
        Err(BatchError::Request { index: 1, .. })
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

/// A model quantized for the 3_3 set's finer bootstraps is refused on the 2_2 set (its widths
/// would misread far more often than its reference says) and compiles on its own set; a 2_2
/// model may run on the finer set.
#[test]
fn a_model_is_refused_on_a_set_noisier_than_it_was_quantized_for() {
    let coarse = infer::testing::tiny_model();
    let mut fine = coarse.clone();
    fine.noise = dlrm::NoiseModel::TFHE_3_3;
    let set_3_3 = ParameterSetId::Tfhe1_8Message3Carry3KsPbsTUniform2M128;
    let Err(InferError::Unsupported(reason)) = ServerModel::new(&fine, ParameterSetId::default())
    else {
        panic!("a 3_3 model compiled on the 2_2 set");
    };
    assert!(reason.contains(set_3_3.name()), "{reason}");
    assert!(ServerModel::new(&fine, set_3_3).is_ok());
    assert!(ServerModel::new(&coarse, set_3_3).is_ok());
}
