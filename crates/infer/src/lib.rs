//! The encrypted DLRM executor: compiles a quantized model (`dlrm`) into an FHE plan (which
//! kernel runs each layer, the encodings between layers, every activation's lookup table),
//! prepares its kernels once and runs encrypted requests with `fhe` and `embed`; defines the
//! model interface clients build requests from and the request/response byte formats. It must
//! not hold a client key (only tests and the trace decryption borrow one), read datasets or
//! touch the network.
//!
//! - [`ModelInterface`]: the public contract of a model (no weights).
//! - [`ServerModel`]: the prepared model; [`ServerModel::infer`] runs one [`Request`],
//!   [`ServerModel::infer_batch_bytes`] requests as bytes (what a service does), each timed by
//!   [`StageTimings`]; [`ServerModel::infer_traced`] keeps an [`ExecutionTrace`] of every
//!   intermediate ciphertext for checks against the integer reference.
//! - [`FhePlan`]: the compiled plan, with bootstrap counts and cost estimate; [`RankPlan`]: the
//!   bootstrap counts of a ranked request (private part once, public part per candidate).
//! - [`encrypt_request`] / [`decrypt_response`]: the client's two steps.
//! - Ranked requests (a model with public tables): [`encrypt_rank_request`] carries the user's
//!   private inputs once and K candidates' public ids ([`RankRequest`]);
//!   [`ServerModel::rank`] runs the private part once and the rest per candidate;
//!   [`decrypt_rank_response`] reads the K numerators of the [`RankResponse`].
//!
//! `testing` (behind the feature of the same name) holds tiny hand-made quantized models for
//! examples and tests.

mod client_side;
mod dot_stage;
mod error;
mod executor;
mod interface;
mod noise;
mod plan;
mod rank_plan;
mod rank_wire;
mod scales;
#[cfg(feature = "testing")]
pub mod testing;
mod timings;
mod trace;
mod wire;

pub use client_side::{
    decrypt_rank_response, decrypt_response, encrypt_rank_request, encrypt_request,
};
pub use error::{BatchError, InferError, Result};
pub use executor::ServerModel;
pub use interface::{INTERFACE_FORMAT_VERSION, ModelInterface, model_id};
pub use noise::noise_model;
pub use plan::{
    ActivationPlan, CostModel, FhePlan, InteractionPlan, Kernel, LayerPlan, LookupSummary,
};
pub use rank_plan::RankPlan;
pub use rank_wire::{RankLogits, RankRequest, RankResponse};
pub use timings::StageTimings;
pub use trace::{DecryptedLayer, DecryptedTrace, ExecutionTrace};
pub use wire::{Request, Response, WIRE_FORMAT_VERSION, decode_batch, encode_batch};
