//! The encoding scales of a quantized model's layers: where each accumulator and activation
//! sits on the torus, from the model's tables and output width alone.

use dlrm::{IntLayer, QuantizedModel};

use crate::error::{InferError, Result};

/// Scale (log2) of a layer's inputs: a hidden layer's accumulator minus `lo` must land in the
/// positive half torus with box `k` at `k 2^(63 - lut_bits)`, so an accumulator unit is
/// `2^(63 - lut_bits - box_shift)`; the output layer's numerator gets `output_acc_bits` signed
/// bits under one padding bit.
pub(crate) fn input_scale_log(
    model: &QuantizedModel,
    layer: &IntLayer,
    may_be_output: bool,
) -> Result<u32> {
    match &layer.activation {
        Some(table) => activation_input_scale_log(table),
        None if may_be_output => output_scale_log(model),
        None => Err(InferError::Unsupported(
            "a hidden layer without an activation table".into(),
        )),
    }
}

/// Scale (log2) of the accumulators a table reads (see [`input_scale_log`]).
pub(crate) fn activation_input_scale_log(table: &dlrm::ActivationTable) -> Result<u32> {
    let used = table.lut_bits + table.box_shift;
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
