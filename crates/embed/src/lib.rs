//! Encrypted embedding lookup: client-side digit decomposition and one-hot packing, server-side
//! packed tables and lookups whose outputs come in a declared layout, and the LLM token-embedding
//! mode. Usable without the DLRM; it must not depend on `dlrm`, datasets or the network, and it
//! runs no commands (the `dlrm-he embed` command lives in the binary).
//!
//! The pieces, in the order data flows through them:
//! - [`TableShape`] / [`DigitScheme`]: the public description of a table and of how ids are sent
//!   (one-hot, or `l` base-`p` digits for compositional tables).
//! - [`LookupPlan`]: the packing both sides agree on (which ciphertext and coefficient each
//!   one-hot entry and each output uses, and the encoding), built by the next-fit packing of
//!   lookups under [`PackingOptions`].
//! - [`LookupPlan::encrypt_query`]: the client's one-hot query, encrypted.
//! - [`PackedTables`]: the server side, built once from [`EmbeddingTable`]s; lookups return LWE
//!   ciphertexts in an [`OutputOrder`], or leave them packed.
//! - [`LookupPlan::decrypt_outputs`]: the client's decryption of the outputs.
//! - [`llm`]: token embeddings of a real tokenizer and safetensors table, quantised and looked up
//!   exactly, one token or a whole prompt at a time.
//!
//! `testing` (the feature of the same name) writes model directories for examples and tests.

mod client_side;
mod error;
pub mod llm;
mod order;
mod packing;
mod plan;
mod shape;
mod tables;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{EmbedError, Result};
pub use order::{OutputOrder, OutputRef};
pub use packing::PackingOptions;
pub use plan::LookupPlan;
pub use shape::{DigitScheme, TableShape};
pub use tables::{EmbeddingTable, PackedOutputs, PackedTables};
