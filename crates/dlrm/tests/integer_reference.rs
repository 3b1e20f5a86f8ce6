//! The integer reference executor against a tiny model computed by hand, its simulate mode,
//! and its refusal of inconsistent model files.

use dlrm::{
    EmbeddingKind, Execution, IntTable, Interaction, NoiseModel, QuantizedModel, TableConfig,
};

/// dense 2 -> bottom [2] -> concat with one 3-row table (d = 1) -> top [2, 1].
fn tiny_model() -> QuantizedModel {
    let json = serde_json::json!({
        "format": "dlrm-he/quantized-model",
        "format_version": 1,
        "config": {
            "dense_features": 2, "bottom": [2], "embedding_dim": 1,
            "tables": [{ "rows": 3, "kind": "full" }], "interaction": "concat", "top": [2, 1]
        },
        "input": { "bits": 8, "scales": [1.0, 1.0] },
        "bottom": [{
            "rows": 2, "cols": 2, "weight_bits": 3, "weights": [1, 2, -1, 1], "bias": [1, 0],
            // Box centres -4, -2, 0, 2, ..., 10; entry = relu(centre) / 2.
            "activation": { "lo": -4, "box_shift": 1, "lut_bits": 3, "output_bits": 3,
                            "entries": [0, 0, 0, 1, 2, 3, 4, 5] }
        }],
        "tables": [{ "value_bits": 4, "values": [5, -3, 7] }],
        "top": [
            { "rows": 2, "cols": 3, "weight_bits": 3, "weights": [1, 0, 1, 0, -1, 1], "bias": [0, 2],
              // Box centres -8, -4, 0, 4.
              "activation": { "lo": -8, "box_shift": 2, "lut_bits": 2, "output_bits": 2,
                              "entries": [0, 0, 1, 3] } },
            { "rows": 1, "cols": 2, "weight_bits": 3, "weights": [2, -1], "bias": [3], "activation": null }
        ],
        "logit_scale": 0.25,
        "output_acc_bits": 8,
        "noise": { "polynomial_size": 2048, "bootstrap_output_sd": 0.13, "modulus_switch_sd": 4.8 }
    });
    let text = json.to_string();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn matches_the_hand_computed_model() {
    let model = tiny_model();
    model.validate().unwrap();
    // Row 1: dense (3.2, 0.9) -> (3, 1); id 2 -> embedding 7.
    //   bottom acc (3+2+1, -3+1) = (6, -2) -> boxes (5, 1) -> activations (3, 0)
    //   top input (3, 0, 7); acc (10, 9) -> boxes clamp to 3 -> (3, 3)
    //   logit numerator 2*3 - 3 + 3 = 6, logit 1.5
    let dense = model.quantize_input(&[3.2, 0.9]);
    assert_eq!(dense, vec![3, 1]);
    let trace = model.trace(&dense, &[2], Execution::Exact, 0).unwrap();
    assert_eq!(trace.layers[0].accumulators, vec![6, -2]);
    assert_eq!(trace.layers[0].activations, vec![3, 0]);
    assert_eq!(trace.top_input, vec![3, 0, 7]);
    assert_eq!(trace.layers[1].accumulators, vec![10, 9]);
    assert_eq!(trace.layers[1].activations, vec![3, 3]);
    assert_eq!(trace.layers[2].accumulators, vec![6]);
    assert_eq!(model.forward(&dense, &[2]).unwrap(), 6);
    assert_eq!(
        model.logit(&[3.2, 0.9], &[2], Execution::Exact, 0).unwrap(),
        1.5
    );

    // Row 2: dense (-1.0, 0.4) -> (-1, 0); id 1 -> -3.
    //   bottom acc (0, 1) -> boxes (2, 3) -> (0, 1); top input (0, 1, -3)
    //   top acc (-3, -2) -> boxes (1, 2) -> (0, 1); numerator 0 - 1 + 3 = 2
    let dense = model.quantize_input(&[-1.0, 0.4]);
    let trace = model.trace(&dense, &[1], Execution::Exact, 0).unwrap();
    assert_eq!(trace.layers[0].activations, vec![0, 1]);
    assert_eq!(trace.layers[1].accumulators, vec![-3, -2]);
    assert_eq!(trace.layers[1].activations, vec![0, 1]);
    assert_eq!(model.forward(&dense, &[1]).unwrap(), 2);
}

#[test]
fn simulate_without_noise_is_exact_and_with_noise_is_seeded() {
    let mut model = tiny_model();
    let exact = model.logit(&[3.2, 0.9], &[2], Execution::Exact, 0).unwrap();
    let noisy = |m: &QuantizedModel, seed| {
        m.logit(&[3.2, 0.9], &[2], Execution::Simulate { seed }, 5)
            .unwrap()
    };
    assert_eq!(noisy(&model, 1), noisy(&model, 1));
    model.noise = NoiseModel {
        polynomial_size: 2048,
        bootstrap_output_sd: 0.0,
        modulus_switch_sd: 0.0,
        packed_answer_sd: 0.0,
    };
    assert_eq!(noisy(&model, 1), exact);
    // Noise a thousand boxes wide scrambles the activations.
    model.noise = NoiseModel {
        polynomial_size: 2048,
        bootstrap_output_sd: 50.0,
        modulus_switch_sd: 1e5,
        packed_answer_sd: 0.0,
    };
    assert!((0..20).any(|seed| noisy(&model, seed) != exact));
}

#[test]
fn inconsistent_models_and_inputs_are_rejected() {
    let model = tiny_model();
    assert!(model.forward(&[1], &[0]).is_err(), "dense width");
    assert!(
        model.forward(&[1, 1], &[3]).is_err(),
        "id outside the table"
    );
    assert!(
        model.forward(&[1000, 1], &[0]).is_err(),
        "input wider than 8 bits"
    );

    let mut bad = tiny_model();
    bad.bottom[0].weights[0] = 4; // 3-bit weights stop at 3
    assert!(bad.validate().is_err());
    let mut bad = tiny_model();
    bad.top[0].activation.as_mut().unwrap().entries.pop();
    assert!(bad.validate().is_err());
    let mut bad = tiny_model();
    bad.top[0].activation.as_mut().unwrap().entries[0] = 4; // 2 output bits
    assert!(bad.validate().is_err());
    let mut bad = tiny_model();
    bad.top[1].activation = bad.top[0].activation.clone();
    assert!(bad.validate().is_err(), "the output layer has no table");
    let mut bad = tiny_model();
    bad.config.interaction = Interaction::Dot;
    assert!(bad.validate().is_err());
    let mut bad = tiny_model();
    bad.format_version = 99;
    assert!(bad.validate().is_err());
}

#[test]
fn save_and_load_round_trip_and_garbage_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.json");
    let model = tiny_model();
    model.save(&path).unwrap();
    assert_eq!(QuantizedModel::load(&path).unwrap(), model);
    std::fs::write(&path, b"{\"format\": 1").unwrap();
    assert!(QuantizedModel::load(&path).is_err());
}

#[test]
fn digit_tables_sum_their_codebook_rows() {
    let spec = TableConfig {
        rows: 9,
        kind: EmbeddingKind::Digits(dlrm::DigitCode { base: 3, digits: 2 }),
    };
    let table = IntTable {
        value_bits: 8,
        values: vec![0, 1, 2, 0, 10, 20],
    };
    for id in 0..9u32 {
        assert_eq!(
            table.lookup(&spec, 1, id),
            vec![i64::from(id % 3 + 10 * (id / 3))]
        );
    }
}
