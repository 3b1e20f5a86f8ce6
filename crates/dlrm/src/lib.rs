//! Plaintext DLRM: training, evaluation, digit-decomposed (compressed) embedding tables, the
//! compressor, quantization and the integer reference executor that every encrypted result is
//! checked against. It must not touch cryptography: ciphertexts live in `fhe` and `embed`.
//!
//! The pieces, in the order data flows through them:
//! - [`ModelConfig`] / [`ModelPreset`]: the architecture; [`DigitCode`]: digit-decomposed tables.
//! - [`Dlrm`], [`train`], [`evaluate`]: the float model on candle tensors; [`DlrmWeights`]: its
//!   parameters as plain data; [`save_model`] / [`load_model`], [`import_pytorch_with`].
//! - [`compress`]: full tables to digit tables.
//! - [`quantize`] (with [`QuantizeConfig`], [`QuantizeReport`]): float weights to a
//!   [`QuantizedModel`], the integer model; [`finetune_quantized`]: quantization-aware
//!   fine-tuning.
//! - [`QuantizedModel::trace`]: the integer reference executor, exact or with the
//!   [`NoiseModel`]'s simulated bootstrap noise; [`Metrics`] compares models.
//! - [`OutputSanitiser`]: the optional last bootstrap that puts the logit numerator on a coarse
//!   grid, so the response's noise no longer depends on the weights.
//!
//! ```
//! use dlrm::{Dlrm, ModelPreset};
//! let data = datasets::SplitData {
//!     labels: vec![1, 0], dense: vec![1.0, -1.0], categorical: vec![1, 0],
//!     dense_names: vec!["x".into()], categorical_names: vec!["c".into()],
//! };
//! let config = ModelPreset::Uci.config(1, &[2]);
//! let mut model = Dlrm::new(&config, 7)?;
//! dlrm::train(&mut model, &data, None, &ModelPreset::Uci.train_config(), &mut dlrm::Silent)?;
//! println!("{}", dlrm::evaluate(&model, &data)?);
//! # Ok::<(), dlrm::DlrmError>(())
//! ```

mod activation;
mod compress;
mod config;
mod digits;
mod dot;
mod error;
mod integer_model;
mod io;
mod metrics;
mod model;
mod noise;
mod pytorch;
mod qat;
mod quantize;
mod rank;
mod reference;
mod rng;
mod roles;
mod rounding;
mod sanitiser;
mod tensors;
mod train;
mod weights;

pub use activation::{ActivationTable, MAX_LUT_BITS, MAX_VALUE_BITS};
pub use compress::{FitOptions, TableFit, compress, fit_codebooks, id_frequencies};
pub use config::{
    EmbeddingKind, EmbeddingPolicy, Interaction, MAX_TABLE_ROWS, MAX_WIDTH, ModelConfig,
    ModelPreset, TableConfig, TrainConfig,
};
pub use digits::DigitCode;
pub use dot::{DotInteraction, DotLayout, TABLE_NORM_MAX_ROWS};
pub use error::{DlrmError, Result};
pub use integer_model::{
    InputQuantizer, IntLayer, IntTable, QUANTIZED_FORMAT_VERSION, QuantizedModel,
};
pub use io::{
    DatasetReference, MAX_JSON_BYTES, MAX_WEIGHTS_BYTES, MODEL_FILE, MODEL_FORMAT_VERSION,
    SavedModel, WEIGHTS_FILE, load_model, save_model,
};
pub use metrics::{Metrics, auc, class_agreement, sigmoid};
pub use model::{Batch, Dlrm};
pub use noise::NoiseModel;
pub use pytorch::{
    ImportOptions, PytorchImport, PytorchLayout, import_pytorch, import_pytorch_with,
};
pub use qat::{QatConfig, QatEpoch, QatResult, finetune_quantized, rounded_logits};
pub use quantize::{
    LayerChoice, QuantizeConfig, QuantizeReport, SquareChoice, WidthTrial, quantize,
};
pub use rank::{CandidateTrace, RankTrace};
pub use reference::{Execution, LayerTrace, Trace};
pub use roles::{FeatureRoles, Role};
pub use sanitiser::OutputSanitiser;
pub use train::{
    EpochReport, Silent, TrainProgress, TrainReport, evaluate, first_rows, predict_logits, train,
};
pub use weights::{DenseLayer, DlrmWeights, Matrix, dot_pairs};
