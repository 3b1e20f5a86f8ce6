//! FHE kernels on TFHE-rs `core_crypto`: parameter sets, keys, coefficient-packed GLWE products,
//! sample extraction, LWE dense layers and programmable bootstrapping. It is the only crate that
//! touches `tfhe`; it must not know about models, datasets or the network.
//!
//! The pieces, in the order data flows through them:
//! - [`ParameterSetId`] / [`FheParameters`]: named TFHE-rs 128-bit parameter sets.
//! - [`ClientKey`], [`CompressedServerKey`], [`ServerKey`]: keys, with a versioned, size-limited
//!   wire format for everything that crosses the network.
//! - [`ClientKey::encrypt_glwe_batch`]: coefficient-packed queries as seeded GLWE ciphertexts.
//! - [`PackedMatrix`]: plaintext matrix x packed vector products in the NTT domain
//!   ([`PackedMatVecLayout`] says where inputs and outputs sit).
//! - [`GlweBatch::extract`]: sample extraction into big-key LWE ciphertexts, in caller order.
//! - [`LweDenseLayer`]: integer dense layers on LWE ciphertexts.
//! - [`ServerKey::keyswitch_bootstrap`] with a [`LookupTable`]: activations and requantisation.

mod ciphertext;
mod encoding;
mod error;
mod gemm;
mod keys;
mod matvec;
mod ntt;
mod params;
mod pbs;
mod sizes;
mod wiped;
mod wire;

pub use ciphertext::{CoefficientSlot, GlweBatch, LweBatch, SeededGlweBatch};
pub use ciphertext::{LweBatchVersions, SeededGlweBatchVersions};
pub use encoding::Encoding;
pub use error::{FheError, Result};
pub use gemm::LweDenseLayer;
pub use keys::{ClientKey, CompressedServerKey, KeySeed, ServerKey};
pub use keys::{ClientKeyVersions, CompressedServerKeyVersions};
pub use matvec::{NttGlweBatch, PackedMatVecLayout, PackedMatrix};
pub use params::{FheParameters, ParameterSetId, ParameterSetIdVersions};
pub use pbs::LookupTable;
pub use sizes::{LutBits, LweDimension, PolynomialSize, ScaleLog};
