//! Secret key material that is overwritten with zeros when dropped.
//!
//! [`Wiped`] wraps a TFHE-rs secret key. It serialises and versions exactly as the key it wraps
//! (the stored bytes do not change), derefs to it, and zeroes its coefficients on drop, so a
//! client key leaves no copy of itself in freed memory.

use std::ops::Deref;

use serde::{Deserialize, Serialize};
use tfhe::core_crypto::prelude::{
    GlweDimension, GlweSecretKey, GlweSecretKeyOwned, LweDimension, LweSecretKey,
    LweSecretKeyOwned, PolynomialSize,
};
use tfhe_versionable::{Unversionize, UnversionizeError, Versionize, VersionizeOwned};
use zeroize::Zeroize;

/// A secret key of `u64` coefficients, zeroed on drop.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct Wiped<K: SecretKeyMaterial>(K);

/// A TFHE-rs secret key whose coefficients can be zeroed, with a one-coefficient stand-in that
/// takes its place when the key is moved out of its [`Wiped`].
pub(crate) trait SecretKeyMaterial: AsMut<[u64]> + Sized {
    fn stand_in() -> Self;
}

impl SecretKeyMaterial for LweSecretKeyOwned<u64> {
    fn stand_in() -> Self {
        LweSecretKey::new_empty_key(0, LweDimension(1))
    }
}

impl SecretKeyMaterial for GlweSecretKeyOwned<u64> {
    fn stand_in() -> Self {
        GlweSecretKey::new_empty_key(0, GlweDimension(1), PolynomialSize(1))
    }
}

impl<K: SecretKeyMaterial> Wiped<K> {
    pub(crate) fn new(key: K) -> Self {
        Self(key)
    }

    /// The key, leaving a zero stand-in behind to be wiped.
    fn take(mut self) -> K {
        std::mem::replace(&mut self.0, K::stand_in())
    }
}

impl<K: SecretKeyMaterial> Deref for Wiped<K> {
    type Target = K;

    fn deref(&self) -> &K {
        &self.0
    }
}

impl<K: SecretKeyMaterial> Drop for Wiped<K> {
    fn drop(&mut self) {
        self.0.as_mut().zeroize();
    }
}

impl<K: SecretKeyMaterial + Versionize> Versionize for Wiped<K> {
    type Versioned<'vers>
        = K::Versioned<'vers>
    where
        Self: 'vers;

    fn versionize(&self) -> Self::Versioned<'_> {
        self.0.versionize()
    }
}

impl<K: SecretKeyMaterial + VersionizeOwned> VersionizeOwned for Wiped<K> {
    type VersionedOwned = K::VersionedOwned;

    fn versionize_owned(self) -> Self::VersionedOwned {
        self.take().versionize_owned()
    }
}

impl<K: SecretKeyMaterial + Unversionize> Unversionize for Wiped<K> {
    fn unversionize(versioned: Self::VersionedOwned) -> Result<Self, UnversionizeError> {
        K::unversionize(versioned).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_zeroes_the_coefficients_and_taking_leaves_the_key_whole() {
        let key = LweSecretKey::from_container(vec![1u64, 0, 1, 1]);
        let mut wiped = Wiped::new(key.clone());
        assert_eq!(wiped.as_ref(), key.as_ref());
        // What Drop runs, observed before the memory is freed.
        wiped.0.as_mut().zeroize();
        assert_eq!(wiped.as_ref(), &[0, 0, 0, 0]);
        assert_eq!(Wiped::new(key.clone()).take().as_ref(), key.as_ref());
    }
}
