//! The files of a model directory, read as untrusted input: sizes capped, the safetensors
//! header, dtype, shape and byte count checked, every problem a typed error.

use std::path::Path;

use safetensors::{Dtype, SafeTensorError, SafeTensors};

use super::quantized_table::QuantizedTable;
use crate::error::{EmbedError, Result};

/// The token-embedding tensor of BERT-style models such as all-MiniLM-L6-v2.
pub const BERT_TOKEN_TENSOR: &str = "embeddings.word_embeddings.weight";
/// The tokenizer file of a model directory.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// The weights file of a model directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Largest safetensors file read (it is read whole into memory).
const MAX_WEIGHTS_BYTES: u64 = 4 << 30;
/// Largest tokenizer file read (all-MiniLM-L6-v2's is 0.5 MB).
pub(super) const MAX_TOKENIZER_BYTES: u64 = 64 << 20;

impl QuantizedTable {
    /// Reads tensor `tensor` of a safetensors file (F32, `[rows, dim]`) and quantises it. The
    /// file is untrusted: its size, header, dtype and shape are checked, and every problem is a
    /// typed error.
    ///
    /// ```
    /// use embed::{EmbedError, llm::QuantizedTable};
    /// use safetensors::{Dtype, tensor::TensorView};
    /// let path = std::env::temp_dir().join(format!("embed-doc-load-{}.safetensors", std::process::id()));
    /// let bytes: Vec<u8> = [0.5f32, -0.25, 1.0, 0.0, 0.75, -1.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    /// let view = TensorView::new(Dtype::F32, vec![3, 2], &bytes).unwrap();
    /// std::fs::write(&path, safetensors::serialize([("weight", view)], None).unwrap()).unwrap();
    /// let table = QuantizedTable::load_safetensors(&path, "weight", 8).unwrap();
    /// assert_eq!((table.rows(), table.dim()), (3, 2));
    /// assert_eq!(table.table().row(2), vec![95, -127]);
    /// assert!(matches!(QuantizedTable::load_safetensors(&path, "other", 8), Err(EmbedError::TensorMissing { .. })));
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn load_safetensors(path: &Path, tensor: &str, bits: u32) -> Result<Self> {
        let bytes = read_limited(path, MAX_WEIGHTS_BYTES)?;
        let file = SafeTensors::deserialize(&bytes).map_err(|source| EmbedError::Safetensors {
            path: path.to_path_buf(),
            source,
        })?;
        let view = file.tensor(tensor).map_err(|source| match source {
            SafeTensorError::TensorNotFound(_) => EmbedError::TensorMissing {
                path: path.to_path_buf(),
                name: tensor.to_string(),
            },
            source => EmbedError::Safetensors {
                path: path.to_path_buf(),
                source,
            },
        })?;
        if view.dtype() != Dtype::F32 {
            return Err(EmbedError::TensorDtype {
                name: tensor.to_string(),
                found: format!("{:?}", view.dtype()),
            });
        }
        let (rows, dim) = match *view.shape() {
            [rows, dim] if rows > 0 && dim > 0 => (rows, dim),
            _ => {
                return Err(EmbedError::TensorShape {
                    name: tensor.to_string(),
                    found: view.shape().to_vec(),
                });
            }
        };
        let data = view.data();
        let expected = rows
            .checked_mul(dim)
            .and_then(|entries| entries.checked_mul(4))
            .ok_or_else(|| EmbedError::TensorShape {
                name: tensor.to_string(),
                found: view.shape().to_vec(),
            })?;
        if data.len() != expected {
            return Err(EmbedError::SizeMismatch {
                what: format!("bytes of tensor {tensor:?}"),
                expected,
                found: data.len(),
            });
        }
        let float_values = data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Self::quantize(rows, dim, float_values, bits)
    }
}

/// Reads a whole file of at most `max` bytes.
pub(super) fn read_limited(path: &Path, max: u64) -> Result<Vec<u8>> {
    let io_error = |source| EmbedError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bytes = std::fs::metadata(path).map_err(io_error)?.len();
    if bytes > max {
        return Err(EmbedError::FileTooLarge {
            path: path.to_path_buf(),
            bytes,
            max,
        });
    }
    std::fs::read(path).map_err(io_error)
}
