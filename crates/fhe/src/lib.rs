//! FHE kernels on TFHE-rs `core_crypto`: parameter sets, keys, coefficient-packed GLWE products,
//! sample extraction, LWE dense layers and programmable bootstrapping. It is the only crate that
//! touches `tfhe`; it must not know about models, datasets or the network.
//!
//! The pieces, in the order data flows through them:
//! - [`ParameterSetId`] / [`FheParameters`]: named TFHE-rs 128-bit parameter sets.
//! - [`ClientKey`], [`CompressedServerKey`], [`ServerKey`]: keys, with a versioned, size-limited
//!   wire format for everything that crosses the network.
//! - [`ClientKey::encrypt_glwe_batch`]: coefficient-packed queries as seeded GLWE ciphertexts.
//! - [`GlweBatch::to_ntt`] / [`NttGlweBatch`]: queries transformed once to the NTT domain.
//! - [`PackedMatrix`]: plaintext matrix x packed vector products in the NTT domain
//!   ([`PackedMatVecLayout`] says where inputs and outputs sit).
//! - [`GlweBatch::extract`]: sample extraction into big-key LWE ciphertexts, in caller order.
//! - [`LweDenseLayer`]: integer dense layers on LWE ciphertexts.
//! - [`ServerKey::keyswitch_bootstrap`] with a [`LookupTable`]: activations and requantisation.
//! - [`ServerKey::keyswitch_blind_rotate`] / [`RotatedTables::read`]: one bootstrap read at many
//!   plaintext offsets (one blind rotation per input, one sample extraction per offset).
//! - [`ServerKey::pack`] / [`PackedLwes`]: results packed `N` to a GLWE ciphertext under
//!   the client's packing key ([`PackingParameters`]), decrypted by
//!   [`ClientKey::decrypt_packed`].

mod encoding;
mod encryption;
mod error;
mod gemm;
mod glwe_batch;
mod keys;
mod lwe_batch;
mod matvec;
mod matvec_layout;
mod ntt;
mod ntt_glwe_batch;
mod packed_lwes;
mod packing;
mod packing_key;
mod parameter_set;
mod params;
mod pbs;
mod rotated_tables;
mod sample_extraction;
mod server_key;
mod sizes;
mod wiped;
mod wire;

pub use encoding::Encoding;
pub use error::{FheError, Result};
pub use gemm::LweDenseLayer;
pub use glwe_batch::{CoefficientSlot, GlweBatch, SeededGlweBatch, SeededGlweBatchVersions};
pub use keys::{ClientKey, ClientKeyVersions, KeySeed};
pub use lwe_batch::{LweBatch, LweBatchVersions};
pub use matvec::PackedMatrix;
pub use matvec_layout::PackedMatVecLayout;
pub use ntt_glwe_batch::NttGlweBatch;
pub use packed_lwes::{PackedLwes, PackedLwesVersions};
pub use packing_key::PackingParameters;
pub use parameter_set::{ParameterSetId, ParameterSetIdVersions};
pub use params::FheParameters;
pub use pbs::LookupTable;
pub use rotated_tables::RotatedTables;
pub use server_key::{CompressedServerKey, CompressedServerKeyVersions, ServerKey};
pub use sizes::{LutBits, LweDimension, PolynomialSize, ScaleLog};
