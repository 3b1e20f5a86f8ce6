//! The output sanitiser: its table is the identity on the box centres and the reference rounds
//! to them, the quantizer chooses it when asked and writes format version 3, and model files
//! without it load and run as before.

use dlrm::{Execution, OutputSanitiser, QuantizeConfig, QuantizedModel};

#[test]
fn the_table_is_the_identity_on_box_centres_and_the_reference_rounds_to_them() {
    for (acc_bits, lut_bits) in [(1, 1), (3, 3), (5, 4), (8, 4), (12, 7), (14, 8)] {
        let s = OutputSanitiser::spanning(acc_bits, lut_bits).unwrap();
        let width = 1i64 << s.box_shift;
        let entries = s.entries();
        assert_eq!(entries.len(), 1 << lut_bits);
        for (k, &entry) in entries.iter().enumerate() {
            assert_eq!(entry, s.centre(k));
            assert_eq!(s.apply(entry), entry, "{acc_bits}/{lut_bits}: centre {k}");
            assert_eq!(s.box_index(entry), k);
        }
        let half = 1i64 << (acc_bits - 1);
        for n in (1 - half)..=half {
            let r = s.apply(n);
            assert!(entries.contains(&r));
            assert!(
                2 * (r - n).abs() <= width,
                "{acc_bits}/{lut_bits}: {n} -> {r}"
            );
            assert_eq!(
                r > 0,
                n > 0,
                "{acc_bits}/{lut_bits}: {n} -> {r} crosses the threshold"
            );
        }
        assert_eq!(s.apply(i64::MIN / 2), s.lo);
        assert_eq!(s.apply(i64::MAX / 2), s.hi());
    }
    assert!(OutputSanitiser::spanning(4, 5).is_err());
    assert!(OutputSanitiser::spanning(63, 8).is_err());
    assert!(OutputSanitiser::spanning(8, 0).is_err());
}

fn data(rows: usize) -> datasets::SplitData {
    let mut state = 7u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as f32 / (1u64 << 31) as f32) * 4.0 - 2.0
    };
    let dense: Vec<f32> = (0..rows * 2).map(|_| next()).collect();
    let categorical = (0..rows as u32).map(|r| r % 3).collect();
    let labels = (0..rows)
        .map(|r| u8::from(dense[2 * r] + dense[2 * r + 1] > 0.0))
        .collect();
    datasets::SplitData {
        labels,
        dense,
        categorical,
        dense_names: vec!["a".into(), "b".into()],
        categorical_names: vec!["c".into()],
    }
}

fn quantized(sanitise_output: bool) -> (QuantizedModel, datasets::SplitData) {
    let config = dlrm::ModelPreset::Uci.config(2, &[3]);
    let weights = dlrm::Dlrm::new(&config, 3).unwrap().to_weights().unwrap();
    let data = data(200);
    let quantize = QuantizeConfig {
        sanitise_output,
        ..QuantizeConfig::default()
    };
    let (model, report) = dlrm::quantize(&weights, &data, &quantize).unwrap();
    let output = report.layers.last().unwrap();
    assert_eq!(
        output.lut_bits,
        model.output_sanitiser.as_ref().map(|s| s.lut_bits)
    );
    (model, data)
}

#[test]
fn the_quantizer_sanitises_when_asked_and_the_reference_follows() {
    let (model, data) = quantized(true);
    assert_eq!(model.format_version, 3);
    let s = model.output_sanitiser.clone().unwrap();
    let c = QuantizeConfig::default();
    assert!(s.lut_bits <= c.max_lut_bits.min(model.output_acc_bits));
    assert_eq!(s.lut_bits + s.box_shift, model.output_acc_bits);
    // The widest clean boxes: half a box at least `min_clean_sigmas` read deviations wide.
    let width = (1i64 << s.box_shift) as f64;
    let read_sd = model.sanitiser_read_sd();
    assert!(width / 2.0 >= c.min_clean_sigmas * read_sd || s.lut_bits == 1);
    assert!(model.output_noise_sd() >= read_sd);
    for r in 0..data.rows() {
        let dense = model.quantize_input(data.dense_row(r));
        let ids = data.categorical_row(r);
        let trace = model.trace(&dense, ids, Execution::Exact, 0).unwrap();
        let output = trace.layers.last().unwrap();
        let centre = s.apply(output.accumulators[0]);
        assert_eq!(output.activations, vec![centre]);
        assert_eq!(trace.logit_numerator, centre as f64);
        assert_eq!(model.forward(&dense, ids).unwrap(), centre);
        assert_eq!(
            centre > 0,
            output.accumulators[0] > 0,
            "row {r}: class kept"
        );
    }
    // Simulate: a box centre plus the bootstrap's fresh noise, far below a box.
    let logits = model
        .logits(&data, Execution::Simulate { seed: 5 })
        .unwrap();
    let fresh = model.noise.accumulator_sd(1.0, model.output_acc_bits);
    for logit in logits {
        let numerator = logit / model.logit_scale;
        let nearest = s.apply(numerator.round() as i64) as f64;
        assert!(
            (numerator - nearest).abs() <= 8.0 * fresh + 1e-9,
            "{numerator}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sanitised.json");
    model.save(&path).unwrap();
    assert_eq!(QuantizedModel::load(&path).unwrap(), model);
}

#[test]
fn a_model_without_a_sanitiser_is_written_and_read_as_before() {
    let (model, data) = quantized(false);
    assert_eq!(model.format_version, 2);
    assert!(model.output_sanitiser.is_none());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.json");
    model.save(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains("output_sanitiser"),
        "the version-2 form is unchanged"
    );
    let loaded = QuantizedModel::load(&path).unwrap();
    assert_eq!(loaded, model);
    for r in 0..data.rows() {
        let dense = model.quantize_input(data.dense_row(r));
        let ids = data.categorical_row(r);
        let trace = loaded.trace(&dense, ids, Execution::Exact, 0).unwrap();
        let output = trace.layers.last().unwrap();
        assert!(output.activations.is_empty());
        assert_eq!(trace.logit_numerator, output.accumulators[0] as f64);
    }

    // A version-2 file that carries a sanitiser is refused: a version-2 reader would ignore it.
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["output_sanitiser"] = serde_json::json!({ "lo": -119, "box_shift": 4, "lut_bits": 4 });
    let mut sanitised: QuantizedModel = serde_json::from_value(value).unwrap();
    sanitised.output_acc_bits = 8;
    assert!(sanitised.validate().is_err());
    sanitised.format_version = 3;
    sanitised.validate().unwrap();
    // Box centres the output encoding cannot hold, and too many table bits, are refused.
    sanitised.output_acc_bits = 6;
    assert!(sanitised.validate().is_err());
    sanitised.output_acc_bits = 8;
    sanitised.output_sanitiser.as_mut().unwrap().lut_bits = 17;
    assert!(sanitised.validate().is_err());
    // A version newer than this build's is not read.
    let mut future = model.clone();
    future.format_version = dlrm::QUANTIZED_FORMAT_VERSION + 1;
    assert!(future.validate().is_err());
}
