//! The wall time of each stage of one encrypted request, named as `server-timing` headers and
//! metrics name them.

use std::time::Duration;

/// Wall time of each stage of one request.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StageTimings {
    /// Parsing the request bytes and expanding the seeded ciphertexts.
    pub decode: Duration,
    /// The bottom MLP, bootstraps included.
    pub bottom: Duration,
    /// The encrypted embedding lookups.
    pub lookup: Duration,
    /// The dot interaction's squares (zero for concat models).
    pub interaction: Duration,
    /// The top MLP, bootstraps included.
    pub top: Duration,
    /// Serialising the response (and, for a ranked request, packing its logits).
    pub encode: Duration,
}

impl StageTimings {
    /// The stages' names, in execution order (the names of `server-timing` headers and
    /// metrics).
    pub const NAMES: [&'static str; 6] =
        ["decode", "bottom", "lookup", "interaction", "top", "encode"];

    /// Sum of the stages.
    pub fn total(&self) -> Duration {
        self.stages().iter().map(|(_, d)| *d).sum()
    }

    /// Every stage with its name, in execution order.
    ///
    /// ```
    /// let timings = infer::StageTimings::default();
    /// assert_eq!(timings.stages().map(|(name, _)| name), infer::StageTimings::NAMES);
    /// ```
    pub fn stages(&self) -> [(&'static str, Duration); 6] {
        let values = [
            self.decode,
            self.bottom,
            self.lookup,
            self.interaction,
            self.top,
            self.encode,
        ];
        std::array::from_fn(|i| (Self::NAMES[i], values[i]))
    }

    /// Sets the stage called `name`; returns false for an unknown name.
    ///
    /// ```
    /// let mut timings = infer::StageTimings::default();
    /// assert!(timings.set("top", std::time::Duration::from_millis(3)));
    /// assert!(!timings.set("elsewhere", std::time::Duration::ZERO));
    /// assert_eq!(timings.total().as_millis(), 3);
    /// ```
    pub fn set(&mut self, name: &str, duration: Duration) -> bool {
        let stage = match name {
            "decode" => &mut self.decode,
            "bottom" => &mut self.bottom,
            "lookup" => &mut self.lookup,
            "interaction" => &mut self.interaction,
            "top" => &mut self.top,
            "encode" => &mut self.encode,
            _ => return false,
        };
        *stage = duration;
        true
    }
}
