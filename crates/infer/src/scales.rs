//! The encoding scales of a quantized model's layers: where each accumulator and activation
//! sits on the torus, from the model's tables and output width alone, and how biases are
//! encoded at them.

use dlrm::{IntLayer, QuantizedModel};
use fhe::{Encoding, ScaleLog};

use crate::error::{InferError, Result};

/// Scale (log2) of a layer's inputs: a hidden layer's accumulator minus `lo` must land in the
/// positive half torus with box `k` at `k 2^(63 - lut_bits)`, so an accumulator unit is
/// `2^(63 - lut_bits - box_shift)`; the output layer's numerator gets `output_acc_bits` signed
/// bits under one padding bit, or, when the model sanitises its output, is read by the
/// sanitiser's table as a hidden layer's by its activation table.
pub(crate) fn input_scale_log(
    model: &QuantizedModel,
    layer: &IntLayer,
    may_be_output: bool,
) -> Result<u32> {
    match (&layer.activation, &model.output_sanitiser) {
        (Some(table), _) => activation_input_scale_log(table),
        (None, Some(sanitiser)) if may_be_output => {
            boxes_scale_log(sanitiser.lut_bits, sanitiser.box_shift)
        }
        (None, None) if may_be_output => output_scale_log(model),
        (None, _) => Err(InferError::Unsupported(
            "a hidden layer without an activation table".into(),
        )),
    }
}

/// Scale (log2) of the accumulators a table reads (see [`input_scale_log`]).
pub(crate) fn activation_input_scale_log(table: &dlrm::ActivationTable) -> Result<u32> {
    boxes_scale_log(table.lut_bits, table.box_shift)
}

/// Scale (log2) of accumulators read in `2^lut_bits` boxes of `2^box_shift` units.
fn boxes_scale_log(lut_bits: u32, box_shift: u32) -> Result<u32> {
    let used = lut_bits + box_shift;
    if used >= 63 {
        return Err(InferError::Unsupported(format!(
            "an activation reads {used} accumulator bits; at most 62 fit a ciphertext"
        )));
    }
    Ok(63 - used)
}

pub(crate) fn output_scale_log(model: &QuantizedModel) -> Result<u32> {
    let bits = model.output_acc_bits;
    if !(1..=62).contains(&bits) {
        return Err(InferError::Unsupported(format!(
            "an output of {bits} bits does not fit a ciphertext"
        )));
    }
    Ok(63 - bits)
}

/// An encoding for a scale the interface has validated.
pub(crate) fn encoding(scale_log: u32) -> Encoding {
    Encoding::new(ScaleLog(scale_log)).expect("scale validated to 1..=63")
}

/// A layer's bias as the executor adds it: `b - lo` for a hidden layer, so that the table's
/// first box sits at phase 0, plus half an accumulator unit when boxes are wider than one unit.
/// The reference breaks ties between two boxes upwards; an accumulator exactly between two box
/// centres would otherwise sit on the bootstrap's box boundary, while every other accumulator
/// is at least one unit from a boundary and keeps half a unit of margin. The half unit is
/// encoded at half the input scale. `boxes` is the table's `(lo, box_shift)`, `None` for an
/// output layer without a sanitiser, whose bias is added as is.
pub(crate) fn shifted_bias(
    bias: &[i64],
    boxes: Option<(i64, u32)>,
    scale: u32,
) -> (Vec<i64>, Encoding) {
    let (lo, box_shift) = boxes.unwrap_or((0, 0));
    if box_shift > 0 {
        let half = encoding(scale - 1);
        let bias = bias
            .iter()
            .map(|b| half.reduce((b - lo).wrapping_mul(2) + 1))
            .collect();
        (bias, half)
    } else {
        let unit = encoding(scale);
        (bias.iter().map(|b| unit.reduce(b - lo)).collect(), unit)
    }
}
