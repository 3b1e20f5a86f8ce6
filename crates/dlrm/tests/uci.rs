//! Acceptance on UCI Cleveland (the fixed stratified split of `dlrm-he prepare uci`): the `uci`
//! preset reaches AUC >= 0.90 and accuracy >= 0.83 on the test split, and its integer model,
//! exact and with simulated bootstrap noise, stays within 0.01 AUC; a wider embedding budget never
//! makes the quantizer's choice track the float model worse; the first top layer's embedding
//! columns get their extra weight bits; quantization-aware fine-tuning replays the integer
//! model's rounding.

mod common;

use datasets::SplitData;
use dlrm::{Dlrm, Execution, Interaction, Metrics, ModelPreset, QatConfig, QuantizeConfig};

/// The prepared UCI splits and the `uci` preset trained on train (see `common`).
fn trained_uci() -> Option<(SplitData, SplitData, Dlrm)> {
    common::trained_uci(Interaction::Concat)
}

#[test]
fn uci_preset_meets_the_acceptance_thresholds() {
    let Some((train, test, model)) = trained_uci() else {
        return;
    };
    let activations = model.config().activations();
    assert!(activations <= 48, "{activations} activations");
    let float = dlrm::evaluate(&model, &test).unwrap();
    eprintln!("float   {float}");
    assert!(float.auc >= 0.90, "{float}");
    assert!(float.accuracy >= 0.83, "{float}");

    let weights = model.to_weights().unwrap();
    // The plain-data copy of the weights computes the same logits as the trained model.
    let batched = dlrm::predict_logits(&model, &test).unwrap();
    for (r, logit) in batched.iter().enumerate() {
        let plain = weights
            .forward(test.dense_row(r), test.categorical_row(r))
            .unwrap();
        assert!(
            (f64::from(plain) - logit).abs() < 1e-4,
            "row {r}: {plain} vs {logit}"
        );
    }
    let (quantized, report) = dlrm::quantize(&weights, &train, &QuantizeConfig::default()).unwrap();
    eprintln!("{report:#?}");
    common::assert_auc_close(&quantized, &test, &float, 0.01);

    // The embedding width is chosen for fidelity to the float model: allowing more bits never
    // makes the chosen model track the float logits worse on the calibration rows.
    let logit_error = |model: &dlrm::QuantizedModel| -> f64 {
        (0..train.rows())
            .map(|r| {
                let (dense, ids) = (train.dense_row(r), train.categorical_row(r));
                let integer = model.logit(dense, ids, Execution::Exact, 0).unwrap();
                let float = f64::from(weights.forward(dense, ids).unwrap());
                (integer - float).powi(2)
            })
            .sum::<f64>()
    };
    let mut previous = f64::INFINITY;
    for bits in 2..=8 {
        let config = QuantizeConfig {
            embedding_bits: bits,
            ..QuantizeConfig::default()
        };
        let (model, _) = dlrm::quantize(&weights, &train, &config).unwrap();
        assert!(model.tables.iter().all(|t| t.value_bits <= bits));
        let error = logit_error(&model);
        eprintln!("embedding bits <= {bits}: squared logit error {error:.3}");
        assert!(error <= previous * (1.0 + 1e-9), "{error} after {previous}");
        previous = error;
    }

    // The first top layer's weights on embedding columns get `lookup_headroom_bits` more bits,
    // made room for by the bottom MLP's last table returning its activations times 2^headroom.
    let defaults = QuantizeConfig::default();
    let headroom = defaults.lookup_headroom_bits;
    assert!(headroom > 0);
    let last_bottom = quantized.bottom.last().unwrap();
    let table = last_bottom.activation.as_ref().unwrap();
    assert_eq!(table.output_bits, defaults.activation_bits + headroom);
    assert!(table.entries.iter().all(|e| e % (1 << headroom) == 0));
    assert!(table.entries.iter().any(|&e| e > 0));
    let choice = &report.layers[quantized.bottom.len()];
    let lookup_bits = choice.lookup_weight_bits.unwrap();
    assert_eq!(lookup_bits, choice.weight_bits + headroom);
    let first_top = &quantized.top[0];
    let bottom_width = last_bottom.rows;
    let largest = |columns: std::ops::Range<usize>| {
        first_top
            .weights
            .chunks(first_top.cols)
            .flat_map(|row| &row[columns.clone()])
            .map(|w| w.unsigned_abs())
            .max()
            .unwrap()
    };
    let limit = |bits: u32| (1u32 << (bits - 1)) - 1;
    let (on_bottom, on_lookups) = (
        largest(0..bottom_width),
        largest(bottom_width..first_top.cols),
    );
    assert!(on_bottom <= limit(choice.weight_bits) && on_lookups <= limit(lookup_bits));
    // The grid is as fine as those limits allow: one kind of column reaches its limit.
    assert!(
        on_bottom == limit(choice.weight_bits) || on_lookups == limit(lookup_bits),
        "{on_bottom} {on_lookups}"
    );
    assert!(on_lookups > limit(choice.weight_bits), "{on_lookups}");
    // Which is what keeps fine embedding entries from costing fidelity: at 8 bits, one grid for
    // every column tracks the float logits several times worse. Measured on a coarse activation
    // grid (5-bit activations, clean boxes), where one weight grid costs the most.
    let error_at_8_bits = |headroom: u32| {
        let config = QuantizeConfig {
            lookup_headroom_bits: headroom,
            activation_bits: 5,
            max_lut_bits: 7,
            min_clean_sigmas: 3.0,
            ..QuantizeConfig::default()
        };
        let (_, report) = dlrm::quantize(&weights, &train, &config).unwrap();
        report
            .embedding_widths
            .iter()
            .find(|t| t.bits == 8)
            .unwrap()
            .logit_mse
    };
    let (one_grid, with_headroom) = (error_at_8_bits(0), error_at_8_bits(headroom));
    eprintln!(
        "8-bit embeddings: squared logit error {one_grid:.4} on one grid, {with_headroom:.4} with headroom"
    );
    assert!(
        with_headroom * 2.0 < one_grid,
        "{with_headroom} vs {one_grid}"
    );
}

// Quantization-aware fine-tuning: the float forward pass with the integer model's rounding
// reproduces the integer model's logits, and fine-tuning keeps an integer model that tracks the
// float model.
#[test]
fn rounding_replays_the_integer_model_and_finetuning_keeps_it_close() {
    let Some((train, test, model)) = trained_uci() else {
        return;
    };
    let weights = model.to_weights().unwrap();
    let float = dlrm::predict_logits(&model, &train).unwrap();

    let quantize = QuantizeConfig::default();
    let (integer_model, report) = dlrm::quantize(&weights, &train, &quantize).unwrap();
    let integer = integer_model.logits(&train, Execution::Exact).unwrap();
    let rounded = dlrm::rounded_logits(&weights, &integer_model, &report, &train).unwrap();
    let mean_square = |a: &[f64], b: &[f64]| {
        a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / a.len() as f64
    };
    let (rounded_error, float_error) = (
        mean_square(&rounded, &integer),
        mean_square(&float, &integer),
    );
    eprintln!(
        "squared distance to the integer logits: rounded {rounded_error:.5}, float {float_error:.5}"
    );
    assert!(
        rounded_error * 2.0 < float_error,
        "{rounded_error} vs {float_error}"
    );

    let mut settings = ModelPreset::Uci.train_config();
    settings.epochs = 3;
    settings.learning_rate = 1e-4;
    let qat = QatConfig {
        quantize,
        train: settings,
    };
    let result =
        dlrm::finetune_quantized(&weights, &train, &train, &train, &qat, &mut dlrm::Silent)
            .unwrap();
    assert_eq!(result.epochs.len(), 4);
    let kept = &result.epochs[result.kept_epoch];
    assert!(
        result
            .epochs
            .iter()
            .all(|e| e.integer_validation.log_loss >= kept.integer_validation.log_loss)
    );
    // The kept integer model is the quantization of the kept weights.
    let (again, _) = dlrm::quantize(&result.weights, &train, &qat.quantize).unwrap();
    assert_eq!(again, result.model);
    let float_test = dlrm::evaluate(&model, &test).unwrap();
    let integer_test = Metrics::from_logits(
        &result.model.logits(&test, Execution::Exact).unwrap(),
        &test.labels,
    );
    eprintln!("float {float_test}\nfine-tuned integer {integer_test}");
    assert!((integer_test.auc - float_test.auc).abs() <= 0.01);
}
