//! A tiny hand-made quantized model for examples and tests: two dense features, a bottom MLP
//! 2-3-2, a full table and a digit table of dimension 2, a top MLP 6-3-1. Its tables cover
//! every accumulator its inputs can produce, and with 16 boxes of two accumulator units every
//! accumulator sits a quarter box from the nearest box edge (the executor's half-unit tie
//! offset included), more than six noise standard deviations: an encrypted run reproduces the
//! reference exactly, not just with high probability. [`tiny_dot_model`] is its dot-interaction
//! variant, [`tiny_sanitised_model`] the variant whose output is sanitised.

use dlrm::{
    ActivationTable, DigitCode, DotInteraction, EmbeddingKind, InputQuantizer, IntLayer, IntTable,
    Interaction, ModelConfig, NoiseModel, OutputSanitiser, QuantizedModel, TableConfig,
};

/// ReLU, then `>> 2`, clamped to `[0, 4)`, on the centres of `2^lut_bits` boxes of two units
/// starting at `-2^lut_bits` (for 4 bits, accumulators -17..=14; the concat model's layers
/// stay within -13..=13).
fn relu_table(lut_bits: u32) -> ActivationTable {
    let (lo, box_shift, output_bits) = (-(1i64 << lut_bits), 1, 2);
    let entries = (0..1i64 << lut_bits)
        .map(|k| {
            let centre = lo + (k << box_shift);
            (centre.max(0) >> 2).min((1 << output_bits) - 1) as u32
        })
        .collect();
    ActivationTable {
        lo,
        box_shift,
        lut_bits,
        output_bits,
        entries,
    }
}

/// Weights `((r * 7 + c * 3 + salt) % 3) - 1`, in `[-1, 1]`; biases `r - 1`.
fn layer(rows: usize, cols: usize, salt: i32, activation: Option<ActivationTable>) -> IntLayer {
    let weights = (0..rows * cols)
        .map(|i| {
            let (r, c) = ((i / cols) as i32, (i % cols) as i32);
            (r * 7 + c * 3 + salt).rem_euclid(3) - 1
        })
        .collect();
    let bias = (0..rows as i64).map(|r| r - 1).collect();
    IntLayer {
        rows,
        cols,
        weight_bits: 2,
        weights,
        bias,
        activation,
    }
}

/// The tiny model (see the module documentation).
///
/// ```
/// let model = infer::testing::tiny_model();
/// assert!(model.validate().is_ok());
/// assert_eq!(model.bottom.len() + model.top.len(), 4);
/// ```
pub fn tiny_model() -> QuantizedModel {
    let config = ModelConfig {
        dense_features: 2,
        bottom: vec![3, 2],
        embedding_dim: 2,
        tables: vec![
            TableConfig {
                rows: 5,
                kind: EmbeddingKind::Full,
            },
            TableConfig {
                rows: 10,
                kind: EmbeddingKind::Digits(DigitCode { base: 4, digits: 2 }),
            },
        ],
        interaction: Interaction::Concat,
        top: vec![3, 1],
        roles: Default::default(),
    };
    let table = |stored_rows: usize, salt: i32| IntTable {
        value_bits: 2,
        values: (0..stored_rows as i32 * 2)
            .map(|i| (i * 5 + salt).rem_euclid(3) - 1)
            .collect(),
    };
    QuantizedModel {
        format: "dlrm-he/quantized-model".into(),
        // Version 3 as written before roles existed (model ids of the tiny models unchanged).
        format_version: 3,
        config,
        input: InputQuantizer {
            bits: 3,
            scales: vec![0.25, 0.5],
        },
        bottom: vec![
            layer(3, 2, 1, Some(relu_table(4))),
            layer(2, 3, 2, Some(relu_table(4))),
        ],
        tables: vec![table(5, 3), table(8, 4)],
        top: vec![layer(3, 6, 5, Some(relu_table(4))), layer(1, 3, 6, None)],
        logit_scale: 0.05,
        output_acc_bits: 8,
        noise: NoiseModel::TFHE_2_2,
        dot: None,
        output_sanitiser: None,
    }
}

/// [`tiny_model`] with a dot interaction: the same bottom MLP and tables, the three pair
/// features through an exact square table (`c^2` on single-integer boxes -8..=7, so that
/// `(a + b)^2 - a^2 - b^2 = 2 a b` and a pair feature is twice the integer dot product; the
/// full table of 5 rows returns its rows' squared norms with the lookup), and a top MLP 5-3-1
/// whose first table has 32 boxes of two units (accumulators -33..=30).
///
/// ```
/// let model = infer::testing::tiny_dot_model();
/// assert!(model.validate().is_ok());
/// assert_eq!(model.top[0].cols, 2 + 3);
/// ```
pub fn tiny_dot_model() -> QuantizedModel {
    let mut model = tiny_model();
    model.config.interaction = Interaction::Dot;
    model.dot = Some(DotInteraction {
        square: ActivationTable {
            lo: -8,
            box_shift: 0,
            lut_bits: 4,
            output_bits: 7,
            entries: (-8i64..8).map(|c| (c * c) as u32).collect(),
        },
        square_unit: 1.0,
    });
    model.top = vec![layer(3, 5, 5, Some(relu_table(5))), layer(1, 3, 6, None)];
    model
}

/// [`tiny_model`] with its output sanitised: the numerator (-10..=8: three activations of at
/// most 3 with weights in `[-1, 1]`, bias -1) gets 5 signed bits, and the sanitiser 16 boxes of
/// two units centred at -14, -12, .., 16, so 0 and -1 return 0 and 1 and 2 return 2. Every
/// numerator sits a quarter box from a box edge (the executor's half-unit tie offset
/// included), over six noise standard deviations, as in the hidden layers: the encrypted
/// numerator is the reference's exactly.
///
/// ```
/// let model = infer::testing::tiny_sanitised_model();
/// assert!(model.validate().is_ok());
/// let sanitiser = model.output_sanitiser.as_ref().unwrap();
/// assert_eq!((sanitiser.lo, sanitiser.hi()), (-14, 16));
/// ```
pub fn tiny_sanitised_model() -> QuantizedModel {
    let mut model = tiny_model();
    model.format_version = 3;
    model.output_acc_bits = 5;
    model.output_sanitiser =
        Some(OutputSanitiser::spanning(5, 4).expect("4 table bits over a 5-bit numerator"));
    model
}
