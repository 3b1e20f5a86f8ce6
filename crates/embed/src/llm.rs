//! LLM token-embedding mode: a real tokenizer (`tokenizer.json`) and a token-embedding matrix
//! (an F32 tensor in a safetensors file), quantised symmetrically to integers, looked up exactly
//! under encryption in one-hot mode, one token (a decode step) or a whole prompt at a time.
//!
//! The pieces, in the order data flows through them:
//! - [`QuantizedTable`]: the float matrix and its integer quantisation.
//! - [`TokenModel`]: a model directory read from untrusted files (the tokenizer and the table).
//! - [`prompt_plan`] / [`TokenLookup`]: the server packs the table once; every token is a group
//!   of its own, so the same packed table serves prompts of any length, and the outputs of a
//!   prompt come out in any [`OutputOrder`](crate::OutputOrder) over its tokens (`SlotMajor` is
//!   token-major: `[e_1 | e_2 | ...]`).

mod model_files;
mod quantized_table;
mod token_lookup;
mod token_model;

pub use model_files::{BERT_TOKEN_TENSOR, TOKENIZER_FILE, WEIGHTS_FILE};
pub use quantized_table::QuantizedTable;
pub use token_lookup::{TokenLookup, prompt_plan};
pub use token_model::{TokenModel, TokenizedText};
