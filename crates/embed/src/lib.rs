//! Encrypted embedding lookup: client-side digit decomposition and one-hot packing, server-side
//! packed tables and lookups whose outputs come in a declared layout, and the LLM token-embedding
//! mode. Usable without the DLRM; it must not depend on `dlrm`, datasets or the network.
//!
//! - [`TableShape`] / [`DigitScheme`]: the public description of a table and of how ids are sent
//!   (one-hot, or `l` base-`p` digits for compositional tables).
//! - [`LookupPlan`]: the packing both sides agree on (which ciphertext and coefficient each
//!   one-hot entry and each output uses, and the encoding), and the client side
//!   ([`LookupPlan::encrypt_query`], [`LookupPlan::decrypt_outputs`]).
//! - [`PackedTables`]: the server side, built once from [`EmbeddingTable`]s; lookups return LWE
//!   ciphertexts in an [`OutputOrder`], or leave them packed.
//! - [`llm`]: token embeddings of a real tokenizer and safetensors table, quantised and looked up
//!   exactly, one token or a whole prompt at a time; the `dlrm-he embed` command.

mod error;
pub mod llm;
mod plan;
mod tables;

pub use error::{EmbedError, Result};
pub use plan::{DigitScheme, LookupPlan, OutputOrder, OutputRef, PackingOptions, TableShape};
pub use tables::{EmbeddingTable, PackedOutputs, PackedTables};
