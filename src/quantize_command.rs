//! `dlrm-he quantize`: a float model to the integer model the encrypted executor runs, with the
//! width searches, the per-layer choices and the held-out metrics of the float, integer and
//! `simulate` models printed.

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, ValueEnum};
use dlrm::{Dlrm, Execution, Metrics, QuantizeConfig, TrainConfig};

use crate::training::{EpochBar, Splits, holdout, open_splits};

/// A setting that is on or off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Switch {
    On,
    Off,
}

#[derive(Args)]
pub(crate) struct QuantizeArgs {
    #[arg(long)]
    pub model: PathBuf,
    /// Prepared dataset: calibration on train, evaluation on test.
    #[arg(
        long,
        required_unless_present = "calibration",
        conflicts_with = "calibration"
    )]
    pub data: Option<PathBuf>,
    /// For a model without a prepared dataset (for example from `dlrm-he import`): calibration
    /// rows in the model's input form, CSV with a header: optional `label`, the dense values,
    /// one id per table (docs/dlrm.md). Labelled rows are also evaluated.
    #[arg(long)]
    pub calibration: Option<PathBuf>,
    /// Quantized model file to write (JSON).
    #[arg(long)]
    pub out: PathBuf,
    /// Calibrate on at most this many training rows.
    #[arg(long, default_value_t = 20_000)]
    pub calibration_rows: usize,
    /// The parameter set the model will be served on: its bootstrap noise decides the bit
    /// widths and what `simulate` draws. The 3_3 set's bootstraps are about ten times costlier
    /// and far less noisy (docs/dlrm.md); a model quantized for it is refused on the 2_2 set.
    #[arg(long, value_parser = crate::session::parameter_set, default_value_t = fhe::ParameterSetId::default())]
    pub parameter_set: fhe::ParameterSetId,
    #[arg(long)]
    pub input_bits: Option<u32>,
    #[arg(long)]
    pub max_weight_bits: Option<u32>,
    #[arg(long)]
    pub activation_bits: Option<u32>,
    #[arg(long)]
    pub max_lut_bits: Option<u32>,
    /// Most bits of the embedding entries (default 8); the width that tracks the float model
    /// best on the calibration rows is chosen up to this.
    #[arg(long)]
    pub embedding_bits: Option<u32>,
    /// Extra bits of the first top layer's weights on embedding columns (default 6; 0 puts
    /// every column of that layer on one weight grid).
    #[arg(long)]
    pub lookup_headroom_bits: Option<u32>,
    /// Dot models: bits of the squares at which the embedding width is chosen (default 7);
    /// widths within 3 bits of it are then tried.
    #[arg(long)]
    pub square_bits: Option<u32>,
    /// Every bootstrap keeps half a box at least this many noise standard deviations wide
    /// (default 0.8). Larger values give coarser boxes that are misread less often (3: at most
    /// 2.7e-3 per box centre); accumulators between centres are read either way, so finer
    /// boxes usually keep the encrypted logits closer to the reference.
    #[arg(long)]
    pub clean_sigmas: Option<f64>,
    /// Dot models: also round the weights on the pair features by error compensation (GPTQ
    /// with the bootstrap noise they amplify) and keep whichever rounding tracks the float
    /// layer best (docs/dlrm.md, "Compensated rounding").
    #[arg(long, value_enum, default_value_t = Switch::Off)]
    pub compensated_rounding: Switch,
    /// Sanitise the output: one more bootstrap puts the logit numerator on a coarse grid, so
    /// the response's noise no longer depends on the weights (docs/security.md, "Model
    /// privacy of the response", has its cost and fidelity).
    #[arg(long, value_enum, default_value_t = Switch::Off)]
    pub sanitise_output: Switch,
    /// Epochs of quantization-aware fine-tuning after post-training quantization (0: none).
    /// Each epoch trains with the integer model's rounding in the forward pass and
    /// re-quantizes; the epoch whose integer model has the lowest validation log loss is kept
    /// (the calibration rows stand in where the dataset has no val split).
    #[arg(long, default_value_t = 0)]
    pub qat_epochs: usize,
    /// AdamW step size of quantization-aware fine-tuning.
    #[arg(long, default_value_t = 1e-4)]
    pub qat_learning_rate: f64,
    /// With `--qat-epochs`: also save the fine-tuned float model (the integer model's float
    /// counterpart) to this directory.
    #[arg(long)]
    pub finetuned_out: Option<PathBuf>,
    /// Seed of the simulated-noise evaluation.
    #[arg(long, default_value_t = 1)]
    pub simulate_seed: u64,
}

pub(crate) fn quantize(args: QuantizeArgs) -> anyhow::Result<()> {
    let saved = dlrm::load_model(&args.model)?;
    let weights = saved.weights;
    if args.finetuned_out.is_some() && args.qat_epochs == 0 {
        bail!("--finetuned-out needs --qat-epochs");
    }
    let splits = match (&args.data, &args.calibration) {
        (Some(data), _) => open_splits(data)?,
        (None, Some(file)) => {
            if args.qat_epochs > 0 {
                bail!("--qat-epochs trains on a prepared dataset's train split: give --data");
            }
            let c = &weights.config;
            let rows: Vec<usize> = c.tables.iter().map(|t| t.rows).collect();
            let rows = datasets::read_encoded_rows(file, c.dense_features, &rows, None)?.rows;
            println!("calibrating on {} rows of {}", rows.rows(), file.display());
            Splits::calibration_only(rows)
        }
        (None, None) => bail!(
            "quantizing needs calibration rows: give --data (a prepared dataset) or --calibration (a CSV of input rows)"
        ),
    };
    let defaults = QuantizeConfig::default();
    let config = QuantizeConfig {
        input_bits: args.input_bits.unwrap_or(defaults.input_bits),
        max_weight_bits: args.max_weight_bits.unwrap_or(defaults.max_weight_bits),
        activation_bits: args.activation_bits.unwrap_or(defaults.activation_bits),
        max_lut_bits: args.max_lut_bits.unwrap_or(defaults.max_lut_bits),
        embedding_bits: args.embedding_bits.unwrap_or(defaults.embedding_bits),
        lookup_headroom_bits: args
            .lookup_headroom_bits
            .unwrap_or(defaults.lookup_headroom_bits),
        square_bits: args.square_bits.unwrap_or(defaults.square_bits),
        min_clean_sigmas: args.clean_sigmas.unwrap_or(defaults.min_clean_sigmas),
        sanitise_output: args.sanitise_output == Switch::On,
        compensated_rounding: args.compensated_rounding == Switch::On,
        noise: infer::noise_model(args.parameter_set),
        ..defaults
    };
    let calibration = dlrm::first_rows(&splits.train, args.calibration_rows);
    // Fine-tuning's epoch 0 is the post-training quantization: it is not run twice.
    let (model, report, finetuned) = if args.qat_epochs == 0 {
        let (model, report) = dlrm::quantize(&weights, &calibration, &config)?;
        (model, report, None)
    } else {
        let qat = dlrm::QatConfig {
            quantize: config.clone(),
            train: TrainConfig {
                epochs: args.qat_epochs,
                batch_size: 256,
                learning_rate: args.qat_learning_rate,
                weight_decay: 0.0,
                patience: None,
                seed: 1,
            },
        };
        let validation = splits.validation.as_ref().unwrap_or(&calibration);
        let result = dlrm::finetune_quantized(
            &weights,
            &splits.train,
            &calibration,
            validation,
            &qat,
            &mut EpochBar::new(),
        )?;
        for e in &result.epochs {
            println!(
                "quantization-aware epoch {}: integer model on {}: {}",
                e.epoch,
                if splits.validation.is_some() {
                    "val"
                } else {
                    "calibration rows"
                },
                e.integer_validation
            );
        }
        println!("kept the integer model of epoch {}", result.kept_epoch);
        if let Some(dir) = &args.finetuned_out {
            dlrm::save_model(dir, &result.weights, saved.dataset.as_ref())?;
            println!("wrote the fine-tuned float model to {}", dir.display());
        }
        (result.model, result.report, Some(result.weights))
    };
    print!("{report}");
    model.save(&args.out)?;
    let (name, holdout) = match holdout(&splits) {
        Ok(evaluated) => evaluated,
        Err(reason) if splits.dataset.is_none() => {
            println!("{reason}: no evaluation");
            println!("wrote {}", args.out.display());
            return Ok(());
        }
        Err(error) => return Err(error),
    };
    let float = dlrm::evaluate(&Dlrm::from_weights(&weights)?, holdout)?;
    let exact = Metrics::from_logits(&model.logits(holdout, Execution::Exact)?, &holdout.labels);
    let noisy = Metrics::from_logits(
        &model.logits(
            holdout,
            Execution::Simulate {
                seed: args.simulate_seed,
            },
        )?,
        &holdout.labels,
    );
    println!("{name} float:    {float}");
    if let Some(finetuned) = &finetuned {
        let tuned = dlrm::evaluate(&Dlrm::from_weights(finetuned)?, holdout)?;
        println!(
            "{name} fine-tuned float: {tuned}  (AUC {:+.4}; the integer model's float counterpart)",
            tuned.auc - float.auc
        );
        println!(
            "{name} integer vs fine-tuned float: AUC {:+.4}",
            exact.auc - tuned.auc
        );
    }
    println!(
        "{name} integer:  {exact}  (AUC {:+.4})",
        exact.auc - float.auc
    );
    println!(
        "{name} simulate: {noisy}  (AUC {:+.4})",
        noisy.auc - float.auc
    );
    println!("wrote {}", args.out.display());
    Ok(())
}
