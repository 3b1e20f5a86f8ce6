//! The name of a parameter set: what travels with keys and ciphertexts. Its numbers are read
//! from TFHE-rs in `params.rs`.

use std::fmt;

use serde::{Deserialize, Serialize};
use tfhe_versionable::{Versionize, VersionsDispatch};

/// Identifier of a parameter set. It is what travels with keys and ciphertexts: the receiver
/// re-derives the numbers from the `tfhe` crate, so no parameter is ever read from the wire.
///
/// ```
/// use fhe::ParameterSetId;
/// let id: ParameterSetId = "tfhe-1.8-message-2-carry-2-ks-pbs-tuniform-2m128".parse().unwrap();
/// assert_eq!(id, ParameterSetId::default());
/// assert_eq!(id.to_string(), id.name());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, Versionize)]
#[versionize(ParameterSetIdVersions)]
pub enum ParameterSetId {
    /// TFHE-rs 1.8 `V1_8_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128` (128-bit security,
    /// p_fail 2^-128): n = 918, k = 1, N = 2048, keyswitch then bootstrap.
    #[default]
    Tfhe1_8Message2Carry2KsPbsTUniform2M128,
    /// TFHE-rs 1.8 `V1_8_PARAM_MESSAGE_3_CARRY_3_KS_PBS_TUNIFORM_2M128`: n = 1077, k = 1,
    /// N = 8192; two more bits through a bootstrap, about ten times the cost.
    Tfhe1_8Message3Carry3KsPbsTUniform2M128,
}

/// Version dispatch of [`ParameterSetId`] for the versioned wire format.
#[derive(VersionsDispatch)]
pub enum ParameterSetIdVersions {
    /// First version.
    V0(ParameterSetId),
}

impl ParameterSetId {
    /// Every parameter set this crate knows.
    pub const ALL: [ParameterSetId; 2] = [
        ParameterSetId::Tfhe1_8Message2Carry2KsPbsTUniform2M128,
        ParameterSetId::Tfhe1_8Message3Carry3KsPbsTUniform2M128,
    ];

    /// Stable name of the set, as accepted by [`FromStr`](std::str::FromStr).
    ///
    /// ```
    /// use fhe::ParameterSetId;
    /// assert!(ParameterSetId::default().name().contains("2-carry-2"));
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            ParameterSetId::Tfhe1_8Message2Carry2KsPbsTUniform2M128 => {
                "tfhe-1.8-message-2-carry-2-ks-pbs-tuniform-2m128"
            }
            ParameterSetId::Tfhe1_8Message3Carry3KsPbsTUniform2M128 => {
                "tfhe-1.8-message-3-carry-3-ks-pbs-tuniform-2m128"
            }
        }
    }
}

impl fmt::Display for ParameterSetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
