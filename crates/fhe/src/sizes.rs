//! Size newtypes that cross this crate's API, so a polynomial size cannot be passed where an LWE
//! dimension or a scale is expected.

use std::fmt;

/// Number of coefficients of a GLWE polynomial (`N`).
///
/// ```
/// use fhe::{ParameterSetId, PolynomialSize};
/// let params = ParameterSetId::default().parameters();
/// assert_eq!(params.polynomial_size(), PolynomialSize(2048));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolynomialSize(pub usize);

/// Dimension of an LWE secret key; an LWE ciphertext holds `dimension + 1` words (mask and body).
///
/// ```
/// use fhe::LweDimension;
/// assert_eq!(LweDimension(2048).ciphertext_words(), 2049);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LweDimension(pub usize);

impl LweDimension {
    /// Number of `u64` words of one ciphertext under a key of this dimension.
    ///
    /// ```
    /// use fhe::LweDimension;
    /// assert_eq!(LweDimension(918).ciphertext_words(), 919);
    /// ```
    pub fn ciphertext_words(self) -> usize {
        self.0 + 1
    }
}

/// Number of lookup-table boxes of a programmable bootstrap, as a power of two: `2^bits` boxes
/// cover the positive half of the torus.
///
/// ```
/// use fhe::LutBits;
/// assert_eq!(LutBits(6).box_count(), 64);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LutBits(pub u32);

impl LutBits {
    /// Number of boxes, `2^bits`.
    ///
    /// ```
    /// use fhe::LutBits;
    /// assert_eq!(LutBits(7).box_count(), 128);
    /// ```
    pub fn box_count(self) -> usize {
        1 << self.0
    }
}

/// Base-2 logarithm of an encoding scale: the integer `m` is encoded as the torus element
/// `m * 2^log` (wrapping modulo `2^64`).
///
/// ```
/// use fhe::ScaleLog;
/// assert_eq!(ScaleLog(40).scale(), 1u64 << 40);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScaleLog(pub u32);

impl ScaleLog {
    /// The scale `2^log` itself.
    ///
    /// ```
    /// use fhe::ScaleLog;
    /// assert_eq!(ScaleLog(1).scale(), 2);
    /// ```
    pub fn scale(self) -> u64 {
        1u64 << self.0
    }
}

impl fmt::Display for ScaleLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "2^{}", self.0)
    }
}
