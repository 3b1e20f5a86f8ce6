//! Packed LWE ciphertexts: up to `N` big-key LWE ciphertexts keyswitched into the coefficients
//! of one GLWE ciphertext under the packing key (`packing.rs` makes them), their wire format and
//! their decryption.

use serde::{Deserialize, Serialize};
use tfhe::core_crypto::prelude::*;
use tfhe::named::Named;
use tfhe_versionable::{Versionize, VersionsDispatch};

use crate::encoding::Encoding;
use crate::error::{FheError, Result};
use crate::keys::ClientKey;
use crate::packing_key::{PackingParameters, required_packing};
use crate::parameter_set::ParameterSetId;
use crate::params::check_parameter_set;
use crate::wire::{self, HEADER_ALLOWANCE, expect_dimension};

/// `count` values packed into GLWE ciphertexts under the packing key: value `i` is coefficient
/// `i mod N` of ciphertext `i / N`.
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(PackedLwesVersions)]
pub struct PackedLwes {
    pub(crate) parameter_set: ParameterSetId,
    pub(crate) count: u64,
    pub(crate) glwes: GlweCiphertextListOwned<u64>,
}

/// Version dispatch of [`PackedLwes`].
#[derive(VersionsDispatch)]
pub enum PackedLwesVersions {
    /// First version.
    V0(PackedLwes),
}

impl Named for PackedLwes {
    const NAME: &'static str = "dlrm_he::fhe::PackedLwes";
}

impl PackedLwes {
    /// Number of packed values.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether no value is packed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Serialises the ciphertexts in the versioned wire format.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let limit = Self::size_limit(
            required_packing(self.parameter_set.parameters())?,
            self.len(),
        );
        wire::encode(self, "packed ciphertexts", limit)
    }

    /// Reads packed ciphertexts of at most `max_count` values, refusing other parameter sets,
    /// oversized input, other geometries and a ciphertext count that does not fit the value
    /// count.
    pub fn from_bytes(bytes: &[u8], expected: ParameterSetId, max_count: usize) -> Result<Self> {
        let what = "packed ciphertexts";
        let packing = required_packing(expected.parameters())?;
        let packed: PackedLwes = wire::decode(bytes, what, Self::size_limit(packing, max_count))?;
        check_parameter_set(expected, packed.parameter_set)?;
        if packed.count == 0 || packed.count > max_count as u64 {
            return Err(FheError::Malformed {
                what,
                reason: format!("{} values, 1 to {max_count} expected", packed.count),
            });
        }
        expect_dimension(
            what,
            "GLWE size",
            packing.glwe_dimension.to_glwe_size().0,
            packed.glwes.glwe_size().0,
        )?;
        expect_dimension(
            what,
            "polynomial size",
            packing.polynomial_size.0,
            packed.glwes.polynomial_size().0,
        )?;
        expect_dimension(
            what,
            "ciphertext count",
            packed.len().div_ceil(packing.scores_per_glwe()),
            packed.glwes.glwe_ciphertext_count().0,
        )?;
        expect_dimension(
            what,
            "words",
            packed.glwes.glwe_ciphertext_count().0 * packing.glwe_words(),
            packed.glwes.as_ref().len(),
        )?;
        Ok(packed)
    }

    fn size_limit(packing: PackingParameters, count: usize) -> u64 {
        let glwes = count.div_ceil(packing.scores_per_glwe()) as u64;
        glwes * packing.glwe_bytes() as u64 + HEADER_ALLOWANCE
    }
}

impl ClientKey {
    /// Decrypts packed values and rounds them to `encoding`'s integers, in packing order.
    ///
    /// ```no_run
    /// use fhe::{ClientKey, Encoding, KeySeed, ParameterSetId, ScaleLog};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let server = key.compressed_server_key_with_packing(KeySeed(2)).unwrap().decompress();
    /// // Packing adds noise of about 2^-12 of the torus (`PackingParameters::added_noise_sd`).
    /// let encoding = Encoding::new(ScaleLog(57)).unwrap();
    /// let lwes = key.encrypt_lwe_batch(&[7, -7, 30], encoding).unwrap();
    /// let packed = server.pack(&lwes).unwrap();
    /// assert_eq!(key.decrypt_packed(&packed, encoding).unwrap(), vec![7, -7, 30]);
    /// ```
    pub fn decrypt_packed(&self, packed: &PackedLwes, encoding: Encoding) -> Result<Vec<i64>> {
        Ok(self
            .decrypt_packed_phases(packed)?
            .into_iter()
            .map(|phase| encoding.decode(phase))
            .collect())
    }

    /// The raw phases of packed values (message plus noise, before rounding).
    pub fn decrypt_packed_phases(&self, packed: &PackedLwes) -> Result<Vec<u64>> {
        check_parameter_set(self.parameters().id(), packed.parameter_set)?;
        let key = self.packing_glwe_key().ok_or_else(|| {
            FheError::InvalidArgument(
                "the client key has no packing key: it predates packed answers".into(),
            )
        })?;
        let mut values = Vec::with_capacity(packed.len());
        let mut plaintexts =
            PlaintextList::new(0u64, PlaintextCount(packed.glwes.polynomial_size().0));
        for glwe in packed.glwes.iter() {
            decrypt_glwe_ciphertext(key, &glwe, &mut plaintexts);
            values.extend(plaintexts.iter().map(|phase| *phase.0));
        }
        values.truncate(packed.len());
        Ok(values)
    }
}
