//! Integer encodings on the torus `Z / 2^64`: a signed integer `m` is the phase `m * 2^s`.

use crate::error::{FheError, Result};
use crate::sizes::ScaleLog;

/// A signed-integer encoding with scale `2^s`. Values in `[-2^(63-s), 2^(63-s))` decode
/// unambiguously; the `s` low bits absorb the noise, so decryption is exact while the noise stays
/// below `2^(s-1)` in absolute value.
///
/// ```
/// use fhe::{Encoding, ScaleLog};
/// let encoding = Encoding::new(ScaleLog(40)).unwrap();
/// let phase = encoding.encode(-5).unwrap().wrapping_add(12345); // a little noise
/// assert_eq!(encoding.decode(phase), -5);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Encoding {
    scale_log: ScaleLog,
}

impl Encoding {
    /// An encoding with scale `2^scale_log`; `scale_log` must be in `1..=63`.
    ///
    /// ```
    /// use fhe::{Encoding, ScaleLog};
    /// assert!(Encoding::new(ScaleLog(0)).is_err());
    /// assert!(Encoding::new(ScaleLog(63)).is_ok());
    /// ```
    pub fn new(scale_log: ScaleLog) -> Result<Self> {
        if (1..=63).contains(&scale_log.0) {
            Ok(Encoding { scale_log })
        } else {
            Err(FheError::OutOfRange {
                what: "scale log",
                value: scale_log.0.into(),
                min: 1,
                max: 63,
            })
        }
    }

    /// The scale, as a power of two.
    ///
    /// ```
    /// use fhe::{Encoding, ScaleLog};
    /// assert_eq!(Encoding::new(ScaleLog(9)).unwrap().scale_log(), ScaleLog(9));
    /// ```
    pub fn scale_log(self) -> ScaleLog {
        self.scale_log
    }

    /// Largest encodable value, `2^(63-s) - 1`.
    ///
    /// ```
    /// use fhe::{Encoding, ScaleLog};
    /// assert_eq!(Encoding::new(ScaleLog(60)).unwrap().max_value(), 7);
    /// ```
    pub fn max_value(self) -> i64 {
        (1i64 << (63 - self.scale_log.0)) - 1
    }

    /// Smallest encodable value, `-2^(63-s)`.
    ///
    /// ```
    /// use fhe::{Encoding, ScaleLog};
    /// assert_eq!(Encoding::new(ScaleLog(60)).unwrap().min_value(), -8);
    /// ```
    pub fn min_value(self) -> i64 {
        -(1i64 << (63 - self.scale_log.0))
    }

    /// Encodes `value`, or reports that it does not fit.
    ///
    /// ```
    /// use fhe::{Encoding, ScaleLog};
    /// let encoding = Encoding::new(ScaleLog(60)).unwrap();
    /// assert_eq!(encoding.encode(1).unwrap(), 1 << 60);
    /// assert!(encoding.encode(8).is_err());
    /// ```
    pub fn encode(self, value: i64) -> Result<u64> {
        if value < self.min_value() || value > self.max_value() {
            return Err(FheError::OutOfRange {
                what: "encoded value",
                value: value.into(),
                min: self.min_value().into(),
                max: self.max_value().into(),
            });
        }
        Ok((value as u64) << self.scale_log.0)
    }

    /// The value in `[min_value, max_value]` with the same phase as `value`: sums of encoded
    /// values wrap modulo `2^(64 - s)`, so a bias or table entry outside the range can be
    /// replaced by its representative without changing any result that fits the encoding.
    ///
    /// ```
    /// use fhe::{Encoding, ScaleLog};
    /// let e = Encoding::new(ScaleLog(60)).unwrap(); // values -8..=7
    /// assert_eq!(e.reduce(9), -7);
    /// assert_eq!(e.reduce(-3), -3);
    /// assert_eq!(e.encode(e.reduce(9)).unwrap(), 9u64 << 60);
    /// ```
    pub fn reduce(self, value: i64) -> i64 {
        let s = self.scale_log.0;
        (((value as u64) << s) as i64) >> s
    }

    /// Rounds a phase to the nearest encoded value.
    ///
    /// ```
    /// use fhe::{Encoding, ScaleLog};
    /// let encoding = Encoding::new(ScaleLog(10)).unwrap();
    /// assert_eq!(encoding.decode((3u64 << 10) - 300), 3);
    /// assert_eq!(encoding.decode(0u64.wrapping_sub(1 << 10)), -1);
    /// ```
    pub fn decode(self, phase: u64) -> i64 {
        let s = self.scale_log.0;
        let rounded = phase.wrapping_add(1u64 << (s - 1)) >> s;
        // Sign-extend the (64 - s)-bit result.
        ((rounded << s) as i64) >> s
    }

    /// Signed distance, in torus units (`2^-64`), between a phase and the exact encoding of
    /// `expected`: the noise of a ciphertext whose plaintext is known.
    ///
    /// ```
    /// use fhe::{Encoding, ScaleLog};
    /// let encoding = Encoding::new(ScaleLog(20)).unwrap();
    /// let phase = encoding.encode(4).unwrap().wrapping_sub(77);
    /// assert_eq!(encoding.phase_error(phase, 4), -77);
    /// ```
    pub fn phase_error(self, phase: u64, expected: i64) -> i64 {
        phase.wrapping_sub((expected as u64) << self.scale_log.0) as i64
    }
}
