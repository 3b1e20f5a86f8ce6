//! The error type of the crate.

use std::path::PathBuf;

/// Everything that can go wrong in an embedding lookup. Client mistakes (ids out of range, wrong
/// number of ids) and malformed server input are reported here, never by a panic.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// An error from the FHE layer (keys, ciphertexts, parameter sets, encodings).
    #[error(transparent)]
    Fhe(#[from] fhe::FheError),
    /// A lookup id is not a row of its table.
    #[error("id {id} of lookup {slot} is out of range for a table of {rows} rows")]
    IdOutOfRange {
        /// The lookup (slot) the id was given for.
        slot: usize,
        /// The id given.
        id: u64,
        /// Number of rows of the table.
        rows: u64,
    },
    /// A table, codebook or id list does not have the size its shape or plan says.
    #[error("{what}: expected {expected}, got {found}")]
    SizeMismatch {
        /// What was measured.
        what: String,
        /// The size required.
        expected: usize,
        /// The size given.
        found: usize,
    },
    /// A table value exceeds the bound its shape declares.
    #[error("a table holds {value}, beyond its declared bound {bound}")]
    ValueBeyondBound {
        /// The offending value.
        value: i64,
        /// The declared bound on absolute values.
        bound: i64,
    },
    /// The tables are too wide for exact decryption: the worst-case noise of a lookup output
    /// would reach half the encoding scale.
    #[error(
        "no exact encoding: outputs need {message_bits} bits and worst-case noise {noise_bits} bits of the 64"
    )]
    NoExactEncoding {
        /// Bits of the largest output magnitude (plus sign).
        message_bits: u32,
        /// Bits of the worst-case noise bound.
        noise_bits: u32,
    },
    /// An argument is invalid (for example a table with no rows or a digit base below 2).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A model file could not be read (missing, unreadable).
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A model file is larger than this crate accepts.
    #[error("{} holds {bytes} bytes, more than the {max} accepted", path.display())]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        bytes: u64,
        /// The largest size accepted.
        max: u64,
    },
    /// A `tokenizer.json` could not be parsed, or a text could not be tokenized.
    #[error("cannot use the tokenizer {}", path.display())]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// The error of the `tokenizers` crate.
        source: tokenizers::Error,
    },
    /// A safetensors file is malformed (truncated, bad header, offsets out of bounds).
    #[error("malformed safetensors file {}", path.display())]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// The error of the `safetensors` crate.
        source: safetensors::SafeTensorError,
    },
    /// The safetensors file has no tensor of the requested name.
    #[error("{} has no tensor named {name:?}", path.display())]
    TensorMissing {
        /// The file.
        path: PathBuf,
        /// The tensor looked for.
        name: String,
    },
    /// The embedding tensor is not F32.
    #[error("tensor {name:?} is {found}, expected F32")]
    TensorDtype {
        /// The tensor.
        name: String,
        /// Its data type.
        found: String,
    },
    /// The embedding tensor is not a non-empty matrix `[rows, dim]`.
    #[error("tensor {name:?} has shape {found:?}, expected a non-empty [rows, dim] matrix")]
    TensorShape {
        /// The tensor.
        name: String,
        /// Its shape.
        found: Vec<usize>,
    },
    /// The embedding table holds a NaN or an infinity.
    #[error("embedding entry {index} is not finite ({value})")]
    NonFiniteWeight {
        /// Row-major index of the entry.
        index: usize,
        /// The value.
        value: f32,
    },
    /// The tokenizer can produce ids that are not rows of the embedding table.
    #[error("the tokenizer has {tokenizer_vocabulary} tokens but the table only {table_rows} rows")]
    VocabularyMismatch {
        /// Tokens the tokenizer knows, added tokens included.
        tokenizer_vocabulary: usize,
        /// Rows of the embedding table.
        table_rows: usize,
    },
    /// The text gave no token to look up.
    #[error("the text has no tokens")]
    NoTokens,
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, EmbedError>;
