//! The server key: its seeded transport form (what the client sends once, read under size
//! limits and checked dimension by dimension) and the expanded form the server computes with.

use std::convert::Infallible;

use serde::{Deserialize, Serialize};
use tfhe::core_crypto::prelude::*;
use tfhe::named::Named;
use tfhe_versionable::{Upgrade, Version, Versionize, VersionsDispatch};

use crate::error::{FheError, Result};
use crate::packing_key::validate_packing_key;
use crate::parameter_set::ParameterSetId;
use crate::params::{FheParameters, check_parameter_set};
use crate::wire::{self, HEADER_ALLOWANCE, expect_dimension};
/// The server key in its seeded transport form (about 29 MiB for the 2_2 set, 32 MiB more with
/// the packing key): the bootstrap key, the keyswitching key and the optional packing key store
/// only their bodies and the seed of their masks.
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(CompressedServerKeyVersions)]
pub struct CompressedServerKey {
    pub(crate) parameter_set: ParameterSetId,
    pub(crate) bootstrap_key: SeededLweBootstrapKeyOwned<u64>,
    pub(crate) keyswitch_key: SeededLweKeyswitchKeyOwned<u64>,
    pub(crate) packing_key: Option<SeededLwePackingKeyswitchKeyOwned<u64>>,
}

/// A compressed server key of the first version, without a packing key.
#[derive(Version)]
pub struct CompressedServerKeyV0 {
    parameter_set: ParameterSetId,
    bootstrap_key: SeededLweBootstrapKeyOwned<u64>,
    keyswitch_key: SeededLweKeyswitchKeyOwned<u64>,
}

impl Upgrade<CompressedServerKey> for CompressedServerKeyV0 {
    type Error = Infallible;

    fn upgrade(self) -> std::result::Result<CompressedServerKey, Infallible> {
        Ok(CompressedServerKey {
            parameter_set: self.parameter_set,
            bootstrap_key: self.bootstrap_key,
            keyswitch_key: self.keyswitch_key,
            packing_key: None,
        })
    }
}

/// Version dispatch of [`CompressedServerKey`].
#[derive(VersionsDispatch)]
pub enum CompressedServerKeyVersions {
    /// First version: no packing key.
    V0(CompressedServerKeyV0),
    /// Second version: an optional packing key.
    V1(CompressedServerKey),
}

impl Named for CompressedServerKey {
    const NAME: &'static str = "dlrm_he::fhe::CompressedServerKey";
}

impl CompressedServerKey {
    /// The parameter set the key belongs to.
    ///
    /// ```no_run
    /// use fhe::{ClientKey, KeySeed, ParameterSetId};
    /// let client = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// assert_eq!(client.compressed_server_key(KeySeed(2)).parameter_set(), ParameterSetId::default());
    /// ```
    pub fn parameter_set(&self) -> ParameterSetId {
        self.parameter_set
    }

    /// Whether the key carries a packing key (ranked answers packed into GLWE ciphertexts).
    ///
    /// ```no_run
    /// use fhe::{ClientKey, KeySeed, ParameterSetId};
    /// let client = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// assert!(!client.compressed_server_key(KeySeed(2)).has_packing_key());
    /// ```
    pub fn has_packing_key(&self) -> bool {
        self.packing_key.is_some()
    }

    /// Serialises the key in the versioned wire format.
    ///
    /// ```no_run
    /// use fhe::{ClientKey, CompressedServerKey, KeySeed, ParameterSetId};
    /// let client = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let bytes = client.compressed_server_key(KeySeed(2)).to_bytes().unwrap();
    /// let key = CompressedServerKey::from_bytes(&bytes, ParameterSetId::default()).unwrap();
    /// let _server = key.decompress();
    /// ```
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        wire::encode(
            self,
            "compressed server key",
            Self::size_limit(self.parameter_set.parameters()),
        )
    }

    /// Reads a key written by [`CompressedServerKey::to_bytes`]. The input may come from anyone:
    /// it is read under a size limit derived from `expected`, and every dimension is checked
    /// against `expected` before the key can be used.
    ///
    /// ```
    /// use fhe::{CompressedServerKey, FheError, ParameterSetId};
    /// let err = CompressedServerKey::from_bytes(&[0u8; 64], ParameterSetId::default());
    /// assert!(matches!(err, Err(FheError::Decode { .. })));
    /// ```
    pub fn from_bytes(bytes: &[u8], expected: ParameterSetId) -> Result<Self> {
        let params = expected.parameters();
        let key: CompressedServerKey =
            wire::decode(bytes, "compressed server key", Self::size_limit(params))?;
        check_parameter_set(expected, key.parameter_set)?;
        key.validate(params)?;
        Ok(key)
    }

    /// Expands the seeded masks and converts the bootstrap key to the Fourier domain.
    ///
    /// ```no_run
    /// use fhe::{ClientKey, KeySeed, ParameterSetId};
    /// let client = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let server = client.compressed_server_key(KeySeed(2)).decompress();
    /// assert_eq!(server.parameters().id(), ParameterSetId::default());
    /// ```
    pub fn decompress(self) -> ServerKey {
        let params = self.parameter_set.parameters();
        let standard_bootstrap_key = self.bootstrap_key.par_decompress_into_lwe_bootstrap_key();
        let mut bootstrap_key = FourierLweBootstrapKey::new(
            standard_bootstrap_key.input_lwe_dimension(),
            standard_bootstrap_key.glwe_size(),
            standard_bootstrap_key.polynomial_size(),
            standard_bootstrap_key.decomposition_base_log(),
            standard_bootstrap_key.decomposition_level_count(),
        );
        par_convert_standard_lwe_bootstrap_key_to_fourier(
            &standard_bootstrap_key,
            &mut bootstrap_key,
        );
        ServerKey {
            parameters: params,
            bootstrap_key,
            keyswitch_key: self.keyswitch_key.par_decompress_into_lwe_keyswitch_key(),
            packing_key: self.packing_key,
        }
    }

    fn bootstrap_key_words(params: FheParameters) -> usize {
        let (_, level) = params.pbs_decomposition();
        params.small_lwe_dimension().0
            * seeded_ggsw_ciphertext_size(params.glwe_size(), params.tfhe_polynomial_size(), level)
    }

    fn keyswitch_key_words(params: FheParameters) -> usize {
        let (_, level) = params.ks_decomposition();
        params.big_lwe_dimension().0
            * seeded_lwe_keyswitch_key_input_key_element_encrypted_size(level)
    }

    fn size_limit(params: FheParameters) -> u64 {
        let packing = params.packing().map_or(0, |p| p.seeded_key_words());
        (Self::bootstrap_key_words(params) + Self::keyswitch_key_words(params) + packing) as u64 * 8
            + HEADER_ALLOWANCE
    }

    /// The most bytes a key of `parameter_set` takes in the form [`CompressedServerKey::to_bytes`]
    /// writes, packing key included: what a service may accept as an upload for that set before
    /// reading it.
    ///
    /// ```no_run
    /// use fhe::{ClientKey, CompressedServerKey, KeySeed, ParameterSetId};
    /// let set = ParameterSetId::default();
    /// let key = ClientKey::from_seed(set, KeySeed(1)).compressed_server_key(KeySeed(2));
    /// assert!(key.to_bytes()?.len() as u64 <= CompressedServerKey::max_bytes(set));
    /// # Ok::<(), fhe::FheError>(())
    /// ```
    pub fn max_bytes(parameter_set: ParameterSetId) -> u64 {
        Self::size_limit(parameter_set.parameters())
    }

    /// Checks the stored dimensions first, then the container lengths, so that no derived
    /// quantity is ever computed from an inconsistent object.
    fn validate(&self, params: FheParameters) -> Result<()> {
        let what = "compressed server key";
        let bsk = &self.bootstrap_key;
        let (pbs_base_log, pbs_level) = params.pbs_decomposition();
        expect_dimension(
            what,
            "bootstrap GLWE size",
            params.glwe_size().0,
            bsk.glwe_size().0,
        )?;
        expect_dimension(
            what,
            "bootstrap polynomial size",
            params.polynomial_size().0,
            bsk.polynomial_size().0,
        )?;
        expect_dimension(
            what,
            "bootstrap base log",
            pbs_base_log.0,
            bsk.decomposition_base_log().0,
        )?;
        expect_dimension(
            what,
            "bootstrap levels",
            pbs_level.0,
            bsk.decomposition_level_count().0,
        )?;
        expect_dimension(
            what,
            "bootstrap key length",
            Self::bootstrap_key_words(params),
            bsk.as_ref().len(),
        )?;
        let ksk = &self.keyswitch_key;
        let (ks_base_log, ks_level) = params.ks_decomposition();
        expect_dimension(
            what,
            "keyswitch base log",
            ks_base_log.0,
            ksk.decomposition_base_log().0,
        )?;
        expect_dimension(
            what,
            "keyswitch levels",
            ks_level.0,
            ksk.decomposition_level_count().0,
        )?;
        expect_dimension(
            what,
            "keyswitch output size",
            params.small_lwe_dimension().ciphertext_words(),
            ksk.output_lwe_size().0,
        )?;
        expect_dimension(
            what,
            "keyswitch key length",
            Self::keyswitch_key_words(params),
            ksk.as_ref().len(),
        )?;
        if bsk.ciphertext_modulus() != params.ciphertext_modulus()
            || ksk.ciphertext_modulus() != params.ciphertext_modulus()
        {
            return Err(FheError::Malformed {
                what,
                reason: "ciphertext modulus differs from the parameter set".into(),
            });
        }
        if let Some(packing_key) = &self.packing_key {
            validate_packing_key(packing_key, params, what)?;
        }
        Ok(())
    }
}

/// The server's evaluation key, in memory (about 115 MiB for the 2_2 set): the Fourier-domain
/// bootstrap key, the keyswitching key from the big key to the small key and, if the client sent
/// one, the packing key, kept seeded (its masks are expanded for each packing, see
/// `packing.rs`).
pub struct ServerKey {
    parameters: FheParameters,
    pub(crate) bootstrap_key: FourierLweBootstrapKeyOwned,
    pub(crate) keyswitch_key: LweKeyswitchKeyOwned<u64>,
    pub(crate) packing_key: Option<SeededLwePackingKeyswitchKeyOwned<u64>>,
}

impl ServerKey {
    /// The parameters the key was made for.
    ///
    /// ```no_run
    /// use fhe::{ClientKey, KeySeed, ParameterSetId};
    /// let client = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let server = client.compressed_server_key(KeySeed(2)).decompress();
    /// assert_eq!(server.parameters(), client.parameters());
    /// ```
    pub fn parameters(&self) -> FheParameters {
        self.parameters
    }
}
