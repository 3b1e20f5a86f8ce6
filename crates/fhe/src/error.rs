//! The one error type of the crate.

use crate::parameter_set::ParameterSetId;

/// Everything that can go wrong in this crate. Bad input (wrong parameter set, wrong lengths,
/// truncated or oversized bytes, values that do not fit an encoding) is reported here, never by a
/// panic.
#[derive(Debug, thiserror::Error)]
pub enum FheError {
    /// An object was made for, or with, another parameter set than the one expected.
    #[error("parameter set mismatch: expected {expected}, found {found}")]
    ParameterSetMismatch {
        /// The parameter set the caller works with.
        expected: ParameterSetId,
        /// The parameter set the object carries.
        found: ParameterSetId,
    },
    /// Bytes could not be decoded (truncated, corrupted, over the size limit, wrong type name or
    /// format version).
    #[error("cannot decode {what}: {reason}")]
    Decode {
        /// The kind of object being decoded.
        what: &'static str,
        /// The decoder's explanation.
        reason: String,
    },
    /// An object could not be encoded to bytes.
    #[error("cannot encode {what}: {reason}")]
    Encode {
        /// The kind of object being encoded.
        what: &'static str,
        /// The encoder's explanation.
        reason: String,
    },
    /// A decoded object has the right parameter set but inconsistent dimensions.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// The kind of object.
        what: &'static str,
        /// Which dimension is wrong.
        reason: String,
    },
    /// A slice or list has the wrong number of elements.
    #[error("wrong length for {what}: expected {expected}, got {found}")]
    LengthMismatch {
        /// What was measured.
        what: &'static str,
        /// The length required.
        expected: usize,
        /// The length given.
        found: usize,
    },
    /// A value does not fit the encoding or range it is used with.
    #[error("{what} out of range: {value} (allowed {min}..={max})")]
    OutOfRange {
        /// What the value is.
        what: &'static str,
        /// The value given.
        value: i128,
        /// Smallest allowed value.
        min: i128,
        /// Largest allowed value.
        max: i128,
    },
    /// An argument that is not a value or a length is invalid (for example an empty matrix).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, FheError>;
