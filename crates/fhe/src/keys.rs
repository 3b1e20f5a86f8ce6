//! Keys: the client key (secret keys), the compressed server key (what the client sends once)
//! and the server key (what the server computes with).

use serde::{Deserialize, Serialize};
use tfhe::core_crypto::commons::generators::DeterministicSeeder;
use tfhe::core_crypto::commons::math::random::Seed;
use tfhe::core_crypto::prelude::*;
use tfhe::named::Named;
use tfhe_versionable::{Versionize, VersionsDispatch};

use crate::error::{FheError, Result};
use crate::parameter_set::ParameterSetId;
use crate::params::FheParameters;
use crate::wiped::Wiped;
use crate::wire::{self, HEADER_ALLOWANCE, expect_dimension};

/// A 128-bit seed from which keys are derived deterministically. Keep it as secret as the keys.
///
/// ```
/// use fhe::KeySeed;
/// assert_ne!(KeySeed::from_entropy(), KeySeed::from_entropy());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySeed(pub u128);

impl KeySeed {
    /// A fresh seed from the operating system's (or the CPU's) entropy source.
    ///
    /// ```
    /// use fhe::KeySeed;
    /// let _seed = KeySeed::from_entropy();
    /// ```
    pub fn from_entropy() -> Self {
        KeySeed(new_seeder().seed().0)
    }
}

/// Checks that an object made for `found` may be used where `expected` is required.
pub(crate) fn check_parameter_set(expected: ParameterSetId, found: ParameterSetId) -> Result<()> {
    if expected == found {
        Ok(())
    } else {
        Err(FheError::ParameterSetMismatch { expected, found })
    }
}

/// The client's secret keys: the GLWE key (whose LWE view, the "big key", encrypts queries and
/// decrypts results) and the small LWE key (the bootstrap input key). Never leaves the client.
/// Both are zeroed when the key (or a clone) is dropped, and the type is not `Debug`, so it
/// cannot end up in a log line:
///
/// ```compile_fail
/// fn show(key: &fhe::ClientKey) -> String {
///     format!("{key:?}")
/// }
/// ```
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(ClientKeyVersions)]
pub struct ClientKey {
    parameter_set: ParameterSetId,
    small_lwe_key: Wiped<LweSecretKeyOwned<u64>>,
    glwe_key: Wiped<GlweSecretKeyOwned<u64>>,
}

/// Version dispatch of [`ClientKey`].
#[derive(VersionsDispatch)]
pub enum ClientKeyVersions {
    /// First version.
    V0(ClientKey),
}

impl Named for ClientKey {
    const NAME: &'static str = "dlrm_he::fhe::ClientKey";
}

impl ClientKey {
    /// Derives the secret keys of `parameter_set` from `seed` (same seed, same keys).
    ///
    /// ```
    /// use fhe::{ClientKey, KeySeed, ParameterSetId};
    /// let a = ClientKey::from_seed(ParameterSetId::default(), KeySeed(7));
    /// let b = ClientKey::from_seed(ParameterSetId::default(), KeySeed(7));
    /// assert_eq!(a.to_bytes().unwrap(), b.to_bytes().unwrap());
    /// ```
    pub fn from_seed(parameter_set: ParameterSetId, seed: KeySeed) -> Self {
        let params = parameter_set.parameters();
        let mut seeder = DeterministicSeeder::<DefaultRandomGenerator>::new(Seed(seed.0));
        let mut secret_generator =
            SecretRandomGenerator::<DefaultRandomGenerator>::new(seeder.seed());
        let small_lwe_key = allocate_and_generate_new_binary_lwe_secret_key(
            params.tfhe_small_lwe_dimension(),
            &mut secret_generator,
        );
        let glwe_key = allocate_and_generate_new_binary_glwe_secret_key(
            params.glwe_dimension(),
            params.tfhe_polynomial_size(),
            &mut secret_generator,
        );
        ClientKey {
            parameter_set,
            small_lwe_key: Wiped::new(small_lwe_key),
            glwe_key: Wiped::new(glwe_key),
        }
    }

    /// Fresh secret keys from the system's entropy.
    ///
    /// ```
    /// use fhe::{ClientKey, ParameterSetId};
    /// let key = ClientKey::generate(ParameterSetId::default());
    /// assert_eq!(key.parameters().id(), ParameterSetId::default());
    /// ```
    pub fn generate(parameter_set: ParameterSetId) -> Self {
        Self::from_seed(parameter_set, KeySeed::from_entropy())
    }

    /// The parameter set of these keys.
    ///
    /// ```
    /// use fhe::{ClientKey, KeySeed, ParameterSetId, PolynomialSize};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// assert_eq!(key.parameters().polynomial_size(), PolynomialSize(2048));
    /// ```
    pub fn parameters(&self) -> FheParameters {
        self.parameter_set.parameters()
    }

    pub(crate) fn glwe_key(&self) -> &GlweSecretKeyOwned<u64> {
        &self.glwe_key
    }

    /// Generates the server key (bootstrapping key and keyswitching key) in seeded form, with
    /// its randomness derived from `seed` (docs/fhe.md measures the time).
    ///
    /// ```no_run
    /// use fhe::{ClientKey, KeySeed, ParameterSetId};
    /// let client = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let compressed = client.compressed_server_key(KeySeed(2));
    /// assert!(compressed.to_bytes().unwrap().len() < 31 << 20);
    /// ```
    pub fn compressed_server_key(&self, seed: KeySeed) -> CompressedServerKey {
        let params = self.parameters();
        let mut seeder = DeterministicSeeder::<DefaultRandomGenerator>::new(Seed(seed.0));
        let (pbs_base_log, pbs_level) = params.pbs_decomposition();
        let bootstrap_key = par_allocate_and_generate_new_seeded_lwe_bootstrap_key(
            &self.small_lwe_key,
            &self.glwe_key,
            pbs_base_log,
            pbs_level,
            params.glwe_noise(),
            params.ciphertext_modulus(),
            &mut seeder,
        );
        let (ks_base_log, ks_level) = params.ks_decomposition();
        let keyswitch_key = allocate_and_generate_new_seeded_lwe_keyswitch_key(
            &self.glwe_key.as_lwe_secret_key(),
            &self.small_lwe_key,
            ks_base_log,
            ks_level,
            params.small_lwe_noise(),
            params.ciphertext_modulus(),
            &mut seeder,
        );
        CompressedServerKey {
            parameter_set: self.parameter_set,
            bootstrap_key,
            keyswitch_key,
        }
    }

    /// Serialises the key in the versioned wire format. Store it like any secret.
    ///
    /// ```
    /// use fhe::{ClientKey, KeySeed, ParameterSetId};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(3));
    /// let bytes = key.to_bytes().unwrap();
    /// let back = ClientKey::from_bytes(&bytes, ParameterSetId::default()).unwrap();
    /// assert_eq!(back.to_bytes().unwrap(), bytes);
    /// ```
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        wire::encode(self, "client key", Self::size_limit(self.parameters()))
    }

    /// Reads a key written by [`ClientKey::to_bytes`], rejecting other parameter sets, oversized
    /// input and keys whose dimensions do not match their parameter set.
    ///
    /// ```
    /// use fhe::{ClientKey, FheError, ParameterSetId};
    /// let err = ClientKey::from_bytes(b"not a key", ParameterSetId::default());
    /// assert!(matches!(err, Err(FheError::Decode { .. })));
    /// ```
    pub fn from_bytes(bytes: &[u8], expected: ParameterSetId) -> Result<Self> {
        let params = expected.parameters();
        let key: ClientKey = wire::decode(bytes, "client key", Self::size_limit(params))?;
        check_parameter_set(expected, key.parameter_set)?;
        let what = "client key";
        expect_dimension(
            what,
            "small LWE key length",
            params.small_lwe_dimension().0,
            key.small_lwe_key.as_ref().len(),
        )?;
        expect_dimension(
            what,
            "GLWE key polynomial size",
            params.polynomial_size().0,
            key.glwe_key.polynomial_size().0,
        )?;
        expect_dimension(
            what,
            "GLWE key length",
            params.big_lwe_dimension().0,
            key.glwe_key.as_ref().len(),
        )?;
        Ok(key)
    }

    fn size_limit(params: FheParameters) -> u64 {
        let words = params.small_lwe_dimension().0 + params.big_lwe_dimension().0;
        words as u64 * 8 + HEADER_ALLOWANCE
    }
}

/// The server key in its seeded transport form (about 29 MiB for the 2_2 set): the bootstrap
/// key and the keyswitching key store only their bodies and the seed of their masks.
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(CompressedServerKeyVersions)]
pub struct CompressedServerKey {
    parameter_set: ParameterSetId,
    bootstrap_key: SeededLweBootstrapKeyOwned<u64>,
    keyswitch_key: SeededLweKeyswitchKeyOwned<u64>,
}

/// Version dispatch of [`CompressedServerKey`].
#[derive(VersionsDispatch)]
pub enum CompressedServerKeyVersions {
    /// First version.
    V0(CompressedServerKey),
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
        (Self::bootstrap_key_words(params) + Self::keyswitch_key_words(params)) as u64 * 8
            + HEADER_ALLOWANCE
    }

    /// The most bytes a key of `parameter_set` takes in the form [`CompressedServerKey::to_bytes`]
    /// writes: what a service may accept as an upload for that set before reading it.
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
        Ok(())
    }
}

/// The server's evaluation key, in memory (about 115 MiB for the 2_2 set): the Fourier-domain
/// bootstrap key and the keyswitching key from the big key to the small key.
pub struct ServerKey {
    parameters: FheParameters,
    pub(crate) bootstrap_key: FourierLweBootstrapKeyOwned,
    pub(crate) keyswitch_key: LweKeyswitchKeyOwned<u64>,
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
