//! Safetensors files read as checked `f32` tensors: model directories and imported PyTorch
//! checkpoints alike are untrusted bytes, so every dtype, shape and value is checked.

use std::path::Path;

use safetensors::SafeTensors;
use safetensors::tensor::Dtype;

use crate::{DenseLayer, DlrmError, Matrix, Result};

/// A parsed safetensors file whose tensors are read as checked `f32` values.
pub(crate) struct Tensors<'a> {
    path: &'a Path,
    file: SafeTensors<'a>,
}

impl<'a> Tensors<'a> {
    pub(crate) fn parse(path: &'a Path, bytes: &'a [u8]) -> Result<Self> {
        let file = SafeTensors::deserialize(bytes)
            .map_err(|e| DlrmError::file(path, format!("not a safetensors file: {e}")))?;
        Ok(Self { path, file })
    }

    /// The names of every tensor in the file.
    pub(crate) fn names(&self) -> Vec<&str> {
        self.file.names()
    }

    pub(crate) fn error(&self, reason: impl Into<String>) -> DlrmError {
        DlrmError::file(self.path, reason)
    }

    /// A tensor's shape and values as `f32`: F32, F16 and BF16 are read, and must be finite.
    pub(crate) fn values(&self, name: &str, rank: usize) -> Result<(Vec<usize>, Vec<f32>)> {
        let bad = |reason: String| self.error(format!("{name}: {reason}"));
        let view = self
            .file
            .tensor(name)
            .map_err(|_| self.error(format!("missing tensor {name}")))?;
        let shape = view.shape().to_vec();
        if shape.len() != rank {
            let what = if rank == 1 { "a vector" } else { "a matrix" };
            return Err(bad(format!("shape {shape:?}, expected {what} ({rank}-D)")));
        }
        if shape.contains(&0) {
            return Err(bad(format!("shape {shape:?} is empty")));
        }
        let data = view.data();
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => data
                .chunks_exact(2)
                .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
            Dtype::BF16 => data
                .chunks_exact(2)
                .map(|b| bf16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
            other => {
                return Err(bad(format!(
                    "dtype {other:?} is not supported (F32, F16 or BF16)"
                )));
            }
        };
        if let Some((k, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(bad(format!("value {v} at index {k} is not finite")));
        }
        Ok((shape, values))
    }

    pub(crate) fn matrix(&self, name: &str) -> Result<Matrix> {
        let (shape, values) = self.values(name, 2)?;
        Matrix::new(shape[0], shape[1], values).map_err(|e| self.error(format!("{name}: {e}")))
    }

    /// Layers `y = W x + b` chained: each weight's columns are the previous layer's outputs.
    pub(crate) fn mlp(&self, names: &[(String, String)]) -> Result<Vec<DenseLayer>> {
        let mut layers: Vec<DenseLayer> = Vec::with_capacity(names.len());
        for (weight_name, bias_name) in names {
            let weight = self.matrix(weight_name)?;
            if let Some(previous) = layers.last()
                && weight.cols != previous.weight.rows
            {
                return Err(self.error(format!(
                    "{weight_name}: shape [{}, {}], but the previous layer has {} outputs",
                    weight.rows, weight.cols, previous.weight.rows
                )));
            }
            let (_, bias) = self.values(bias_name, 1)?;
            if bias.len() != weight.rows {
                return Err(self.error(format!(
                    "{bias_name}: {} values for the {} outputs of {weight_name}",
                    bias.len(),
                    weight.rows
                )));
            }
            layers.push(DenseLayer { weight, bias });
        }
        Ok(layers)
    }
}

/// IEEE 754 half precision (1 sign, 5 exponent, 10 mantissa bits) to `f32`, exactly.
fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exponent = u32::from((h >> 10) & 0x1f);
    let mantissa = u32::from(h & 0x3ff);
    match exponent {
        // Zero and subnormals: mantissa * 2^-24 (exact in f32).
        0 => {
            let magnitude = mantissa as f32 * f32::from_bits(0x3380_0000);
            f32::from_bits(sign | magnitude.to_bits())
        }
        // Infinities and NaN.
        0x1f => f32::from_bits(sign | 0x7f80_0000 | (mantissa << 13)),
        _ => f32::from_bits(sign | ((exponent + 127 - 15) << 23) | (mantissa << 13)),
    }
}

/// bfloat16 (the upper half of an `f32`) to `f32`.
fn bf16_to_f32(b: u16) -> f32 {
    f32::from_bits(u32::from(b) << 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_bit_layouts() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0400), 2f32.powi(-14));
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x83ff), -1023.0 * 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
        assert_eq!(bf16_to_f32(0x3f80), 1.0);
        assert_eq!(bf16_to_f32(0xc0a0), -5.0);
        assert!(bf16_to_f32(0x7fc0).is_nan());
    }
}
