//! The client key (secret keys, derived from a seed) and the generation of the server key
//! from it.

use std::convert::Infallible;

use serde::{Deserialize, Serialize};
use tfhe::core_crypto::commons::generators::DeterministicSeeder;
use tfhe::core_crypto::commons::math::random::Seed;
use tfhe::core_crypto::prelude::*;
use tfhe::named::Named;
use tfhe_versionable::{Upgrade, Version, Versionize, VersionsDispatch};

use crate::error::{FheError, Result};
use crate::packing_key::required_packing;
use crate::parameter_set::ParameterSetId;
use crate::params::{FheParameters, check_parameter_set};
use crate::server_key::CompressedServerKey;
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

/// The client's secret keys: the GLWE key (whose LWE view, the "big key", encrypts queries and
/// decrypts results), the small LWE key (the bootstrap input key) and, where the parameter set
/// has one, the packing GLWE key (which decrypts packed answers). Never leaves the client.
/// All are zeroed when the key (or a clone) is dropped, and the type is not `Debug`, so it
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
    packing_glwe_key: Option<Wiped<GlweSecretKeyOwned<u64>>>,
}

/// A client key of the first version, without a packing key.
#[derive(Version)]
pub struct ClientKeyV0 {
    parameter_set: ParameterSetId,
    small_lwe_key: Wiped<LweSecretKeyOwned<u64>>,
    glwe_key: Wiped<GlweSecretKeyOwned<u64>>,
}

impl Upgrade<ClientKey> for ClientKeyV0 {
    type Error = Infallible;

    fn upgrade(self) -> std::result::Result<ClientKey, Infallible> {
        Ok(ClientKey {
            parameter_set: self.parameter_set,
            small_lwe_key: self.small_lwe_key,
            glwe_key: self.glwe_key,
            packing_glwe_key: None,
        })
    }
}

/// Version dispatch of [`ClientKey`].
#[derive(VersionsDispatch)]
pub enum ClientKeyVersions {
    /// First version: no packing key.
    V0(ClientKeyV0),
    /// Second version: the packing GLWE key, where the parameter set has one.
    V1(ClientKey),
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
        // Drawn last, so that a seed gives the same first two keys as in the first version.
        let packing_glwe_key = params.packing().map(|packing| {
            Wiped::new(allocate_and_generate_new_binary_glwe_secret_key(
                packing.glwe_dimension,
                packing.polynomial_size,
                &mut secret_generator,
            ))
        });
        ClientKey {
            parameter_set,
            small_lwe_key: Wiped::new(small_lwe_key),
            glwe_key: Wiped::new(glwe_key),
            packing_glwe_key,
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

    pub(crate) fn packing_glwe_key(&self) -> Option<&GlweSecretKeyOwned<u64>> {
        self.packing_glwe_key.as_deref()
    }

    /// Whether the key can decrypt packed answers: false for the sets without packing
    /// parameters and for keys written by the first version of this format.
    ///
    /// ```
    /// use fhe::{ClientKey, KeySeed, ParameterSetId};
    /// assert!(ClientKey::from_seed(ParameterSetId::default(), KeySeed(1)).can_unpack());
    /// ```
    pub fn can_unpack(&self) -> bool {
        self.packing_glwe_key.is_some()
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
        self.generate_server_key(seed, false)
            .expect("a server key without packing key always exists")
    }

    /// [`ClientKey::compressed_server_key`] with the packing key (docs/rank.md): the server
    /// then answers ranked requests with up to 2,048 scores per GLWE ciphertext instead of one
    /// LWE ciphertext each. Fails, before any key is generated, where the parameter set has no
    /// packing parameters or the client key no packing key.
    ///
    /// ```no_run
    /// use fhe::{ClientKey, KeySeed, ParameterSetId};
    /// let client = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let compressed = client.compressed_server_key_with_packing(KeySeed(2)).unwrap();
    /// assert!(compressed.has_packing_key());
    /// ```
    pub fn compressed_server_key_with_packing(&self, seed: KeySeed) -> Result<CompressedServerKey> {
        self.generate_server_key(seed, true)
    }

    fn generate_server_key(
        &self,
        seed: KeySeed,
        with_packing: bool,
    ) -> Result<CompressedServerKey> {
        let params = self.parameters();
        let packing = match with_packing {
            false => None,
            true => {
                let packing = required_packing(params)?;
                let key = self.packing_glwe_key().ok_or_else(|| {
                    FheError::InvalidArgument(
                        "the client key predates packing keys: generate new keys".into(),
                    )
                })?;
                Some((packing, key))
            }
        };
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
        let packing_key = packing.map(|(packing, key)| {
            allocate_and_generate_new_seeded_lwe_packing_keyswitch_key(
                &self.glwe_key.as_lwe_secret_key(),
                key,
                packing.base_log,
                packing.level,
                packing.noise,
                params.ciphertext_modulus(),
                &mut seeder,
            )
        });
        Ok(CompressedServerKey {
            parameter_set: self.parameter_set,
            bootstrap_key,
            keyswitch_key,
            packing_key,
        })
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
        if let Some(packing_key) = &key.packing_glwe_key {
            let packing = params.packing().ok_or_else(|| FheError::Malformed {
                what,
                reason: "a packing key for a parameter set without packing".into(),
            })?;
            expect_dimension(
                what,
                "packing key polynomial size",
                packing.polynomial_size.0,
                packing_key.polynomial_size().0,
            )?;
            expect_dimension(
                what,
                "packing key length",
                packing.glwe_dimension.0 * packing.polynomial_size.0,
                packing_key.as_ref().len(),
            )?;
        }
        Ok(key)
    }

    fn size_limit(params: FheParameters) -> u64 {
        let packing = (params.packing()).map_or(0, |packing| {
            packing.glwe_dimension.0 * packing.polynomial_size.0
        });
        let words = params.small_lwe_dimension().0 + params.big_lwe_dimension().0 + packing;
        words as u64 * 8 + HEADER_ALLOWANCE
    }
}
