//! A float token-embedding matrix and its symmetric integer quantisation.

use crate::error::{EmbedError, Result};
use crate::shape::TableShape;
use crate::tables::EmbeddingTable;

/// Integer widths accepted; wider tables fail the exactness check of the plan anyway.
const QUANTIZATION_BITS: std::ops::RangeInclusive<u32> = 2..=16;

/// A float token-embedding matrix and its symmetric integer quantisation
/// `q = round(x / scale)`, `|q| <= 2^(bits-1) - 1`, `scale = max |x| / (2^(bits-1) - 1)`.
/// The float values stay as the reference the decrypted embeddings are compared with.
///
/// ```
/// use embed::llm::QuantizedTable;
/// let table = QuantizedTable::quantize(2, 2, vec![0.5, -1.0, 0.25, 0.0], 8).unwrap();
/// assert_eq!(table.scale(), 1.0 / 127.0);
/// assert_eq!(table.table().row(0), vec![64, -127]);
/// assert_eq!(table.float_row(1), &[0.25, 0.0]);
/// ```
#[derive(Clone, Debug)]
pub struct QuantizedTable {
    rows: usize,
    dim: usize,
    bits: u32,
    scale: f32,
    float_values: Vec<f32>,
    table: EmbeddingTable,
}

impl QuantizedTable {
    /// Quantises a row-major `rows x dim` float matrix to `bits`-bit signed integers.
    ///
    /// ```
    /// use embed::{EmbedError, llm::QuantizedTable};
    /// let table = QuantizedTable::quantize(1, 3, vec![2.0, -1.2, 0.1], 4).unwrap();
    /// assert_eq!(table.table().row(0), vec![7, -4, 0]); // scale 2/7
    /// assert!(matches!(QuantizedTable::quantize(1, 2, vec![1.0, f32::NAN], 8), Err(EmbedError::NonFiniteWeight { index: 1, .. })));
    /// assert!(QuantizedTable::quantize(2, 2, vec![1.0; 3], 8).is_err());
    /// assert!(QuantizedTable::quantize(1, 1, vec![1.0], 1).is_err());
    /// ```
    pub fn quantize(rows: usize, dim: usize, float_values: Vec<f32>, bits: u32) -> Result<Self> {
        if !QUANTIZATION_BITS.contains(&bits) {
            return Err(EmbedError::InvalidArgument(format!(
                "quantisation bits must be in {QUANTIZATION_BITS:?}, got {bits}"
            )));
        }
        let expected = rows.checked_mul(dim).ok_or_else(|| {
            EmbedError::InvalidArgument(format!("a {rows} x {dim} table is too large"))
        })?;
        if float_values.len() != expected {
            return Err(EmbedError::SizeMismatch {
                what: "float table entries (rows x dimension)".into(),
                expected,
                found: float_values.len(),
            });
        }
        if let Some((index, &value)) = float_values
            .iter()
            .enumerate()
            .find(|(_, v)| !v.is_finite())
        {
            return Err(EmbedError::NonFiniteWeight { index, value });
        }
        let max_level = (1i64 << (bits - 1)) - 1;
        let max_abs = float_values.iter().fold(0f32, |m, v| m.max(v.abs()));
        // An all-zero table quantises to zeros at any scale; 1 keeps dequantisation finite.
        let scale = if max_abs > 0.0 {
            max_abs / max_level as f32
        } else {
            1.0
        };
        let levels = float_values
            .iter()
            .map(|&v| ((v / scale).round() as i64).clamp(-max_level, max_level))
            .collect();
        let shape = TableShape::one_hot(rows as u64, dim, max_level)?;
        Ok(QuantizedTable {
            rows,
            dim,
            bits,
            scale,
            float_values,
            table: EmbeddingTable::new(shape, levels)?,
        })
    }

    /// Number of rows (tokens).
    ///
    /// ```
    /// use embed::llm::QuantizedTable;
    /// assert_eq!(QuantizedTable::quantize(3, 1, vec![1.0; 3], 8).unwrap().rows(), 3);
    /// ```
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Embedding dimension.
    ///
    /// ```
    /// use embed::llm::QuantizedTable;
    /// assert_eq!(QuantizedTable::quantize(1, 3, vec![1.0; 3], 8).unwrap().dim(), 3);
    /// ```
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Width of the signed integers.
    ///
    /// ```
    /// use embed::llm::QuantizedTable;
    /// assert_eq!(QuantizedTable::quantize(1, 1, vec![1.0], 6).unwrap().bits(), 6);
    /// ```
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// The float value of one integer step.
    ///
    /// ```
    /// use embed::llm::QuantizedTable;
    /// assert_eq!(QuantizedTable::quantize(1, 2, vec![-3.0, 1.0], 3).unwrap().scale(), 1.0);
    /// ```
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// The quantised integer table (the exact reference of an encrypted lookup).
    ///
    /// ```
    /// use embed::llm::QuantizedTable;
    /// let table = QuantizedTable::quantize(1, 2, vec![-3.0, 1.0], 3).unwrap();
    /// assert_eq!(table.table().row(0), vec![-3, 1]);
    /// ```
    pub fn table(&self) -> &EmbeddingTable {
        &self.table
    }

    /// Float row `id` as loaded. Panics if `id` is not a row.
    ///
    /// ```
    /// use embed::llm::QuantizedTable;
    /// let table = QuantizedTable::quantize(2, 1, vec![0.5, 0.25], 8).unwrap();
    /// assert_eq!(table.float_row(1), &[0.25]);
    /// ```
    pub fn float_row(&self, id: usize) -> &[f32] {
        &self.float_values[id * self.dim..(id + 1) * self.dim]
    }

    /// The float value an integer output stands for.
    ///
    /// ```
    /// use embed::llm::QuantizedTable;
    /// let table = QuantizedTable::quantize(1, 1, vec![2.0], 2).unwrap();
    /// assert_eq!(table.dequantize(-1), -2.0);
    /// ```
    pub fn dequantize(&self, value: i64) -> f32 {
        value as f32 * self.scale
    }
}
