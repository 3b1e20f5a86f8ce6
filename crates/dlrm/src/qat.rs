//! Quantization-aware fine-tuning: the float model is trained further while its forward pass
//! rounds exactly where the integer model does (client inputs, weights on each layer's grid,
//! embedding entries, activation-table boxes and levels), with straight-through gradients, so
//! that it learns weights whose integer model loses less. The rounding is re-derived from a
//! fresh post-training quantization before every epoch, and the epoch whose integer model has
//! the best validation log loss is kept.

use datasets::SplitData;
use serde::{Deserialize, Serialize};

use crate::rounding::{Rounding, replayable};
use crate::{
    Dlrm, DlrmWeights, EpochReport, Execution, Metrics, QuantizeConfig, QuantizeReport,
    QuantizedModel, Result, TrainConfig, TrainProgress, quantize,
};

/// Settings of [`finetune_quantized`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QatConfig {
    /// How every epoch's integer model is quantized.
    pub quantize: QuantizeConfig,
    /// Epochs of fine-tuning (each re-quantizes first); batch size, learning rate, weight decay
    /// and seed as in training. A small learning rate keeps the weights near the trained ones.
    pub train: TrainConfig,
}

/// One epoch of [`finetune_quantized`]: the integer model's validation metrics after it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QatEpoch {
    /// 0 for the post-training quantization, then 1-based.
    pub epoch: usize,
    /// Mean training loss of the epoch (NaN for epoch 0).
    pub train_loss: f64,
    /// The integer model's metrics on the validation split, run exactly.
    pub integer_validation: Metrics,
}

/// The result of [`finetune_quantized`]: the kept float weights, their integer model and its
/// report, and what every epoch measured (epoch 0: before fine-tuning).
pub struct QatResult {
    /// The float weights of the kept epoch.
    pub weights: DlrmWeights,
    /// Their integer model.
    pub model: QuantizedModel,
    /// The quantization report of that model.
    pub report: QuantizeReport,
    /// Every epoch, 0 first.
    pub epochs: Vec<QatEpoch>,
    /// The epoch kept (an index into `epochs`).
    pub kept_epoch: usize,
}

/// Quantization-aware fine-tuning of `weights` on `train`, keeping the epoch (0 = the
/// post-training quantization of `weights`) whose integer model has the lowest log loss on
/// `validation`. Every quantization calibrates on `calibration`.
///
/// ```
/// let config = dlrm::ModelPreset::Uci.config(2, &[3]);
/// let weights = dlrm::Dlrm::new(&config, 1).unwrap().to_weights().unwrap();
/// let data = datasets::SplitData {
///     labels: vec![1, 0, 1, 0], dense: vec![0.5, -1.0, 1.5, 0.2, -0.3, 0.0, 1.0, 1.0],
///     categorical: vec![0, 1, 2, 1], dense_names: vec!["a".into(), "b".into()],
///     categorical_names: vec!["c".into()],
/// };
/// let mut train = dlrm::ModelPreset::Uci.train_config();
/// train.epochs = 2;
/// let qat = dlrm::QatConfig { quantize: dlrm::QuantizeConfig::default(), train };
/// let result = dlrm::finetune_quantized(&weights, &data, &data, &data, &qat, &mut dlrm::Silent).unwrap();
/// assert_eq!(result.epochs.len(), 3);
/// assert!(result.kept_epoch <= 2);
/// let best = result.epochs.iter().map(|e| e.integer_validation.log_loss).fold(f64::MAX, f64::min);
/// assert_eq!(result.epochs[result.kept_epoch].integer_validation.log_loss, best);
/// ```
pub fn finetune_quantized(
    weights: &DlrmWeights,
    train: &SplitData,
    calibration: &SplitData,
    validation: &SplitData,
    config: &QatConfig,
    progress: &mut dyn TrainProgress,
) -> Result<QatResult> {
    config.train.validate()?;
    replayable(&weights.config)?;
    let calibrate = |w: &DlrmWeights| quantize(w, calibration, &config.quantize);
    let integer_metrics = |model: &QuantizedModel| -> Result<Metrics> {
        Ok(Metrics::from_logits(
            &model.logits(validation, Execution::Exact)?,
            &validation.labels,
        ))
    };
    let (model, report) = calibrate(weights)?;
    let mut epochs = vec![QatEpoch {
        epoch: 0,
        train_loss: f64::NAN,
        integer_validation: integer_metrics(&model)?,
    }];
    let mut best = QatResult {
        weights: weights.clone(),
        model,
        report,
        epochs: Vec::new(),
        kept_epoch: 0,
    };
    let mut current = weights.clone();
    let (mut model, mut report) = (best.model.clone(), best.report.clone());
    for epoch in 1..=config.train.epochs {
        let mut dlrm = Dlrm::from_weights(&current)?;
        dlrm.set_rounding(Some(Rounding::new(&model, &report)?));
        let one_epoch = TrainConfig {
            epochs: 1,
            patience: None,
            seed: config.train.seed.wrapping_add(epoch as u64),
            ..config.train.clone()
        };
        let mut renumbered = Renumbered {
            inner: &mut *progress,
            epoch,
        };
        let trained = crate::train(&mut dlrm, train, None, &one_epoch, &mut renumbered)?;
        current = dlrm.to_weights()?;
        (model, report) = calibrate(&current)?;
        let metrics = integer_metrics(&model)?;
        epochs.push(QatEpoch {
            epoch,
            train_loss: trained.epochs.last().map_or(f64::NAN, |e| e.train_loss),
            integer_validation: metrics,
        });
        let kept = &epochs[best.kept_epoch].integer_validation;
        if metrics.log_loss < kept.log_loss {
            best = QatResult {
                weights: current.clone(),
                model: model.clone(),
                report: report.clone(),
                epochs: Vec::new(),
                kept_epoch: epoch,
            };
        }
    }
    best.epochs = epochs;
    Ok(best)
}

/// Reports the one-epoch trainings of fine-tuning under the fine-tuning's epoch numbers.
struct Renumbered<'a> {
    inner: &'a mut dyn TrainProgress,
    epoch: usize,
}

impl TrainProgress for Renumbered<'_> {
    fn epoch_start(&mut self, _: usize, batches: usize) {
        self.inner.epoch_start(self.epoch, batches);
    }

    fn batch_done(&mut self, loss: f32) {
        self.inner.batch_done(loss);
    }

    fn epoch_done(&mut self, report: &EpochReport) {
        self.inner.epoch_done(&EpochReport {
            epoch: self.epoch,
            ..report.clone()
        });
    }
}

/// The logits of `weights` with the rounding of their integer model `model` (as quantization-
/// aware fine-tuning sees them): close to `model`'s own logits, which is what makes the
/// fine-tuning's gradients point the right way.
///
/// ```
/// let config = dlrm::ModelPreset::Uci.config(2, &[3]);
/// let weights = dlrm::Dlrm::new(&config, 1).unwrap().to_weights().unwrap();
/// let data = datasets::SplitData {
///     labels: vec![1, 0, 1], dense: vec![0.5, -1.0, 1.5, 0.2, -0.3, 0.0], categorical: vec![0, 1, 2],
///     dense_names: vec!["a".into(), "b".into()], categorical_names: vec!["c".into()],
/// };
/// let (model, report) = dlrm::quantize(&weights, &data, &dlrm::QuantizeConfig::default()).unwrap();
/// let rounded = dlrm::rounded_logits(&weights, &model, &report, &data).unwrap();
/// assert_eq!(rounded.len(), 3);
/// ```
pub fn rounded_logits(
    weights: &DlrmWeights,
    model: &QuantizedModel,
    report: &QuantizeReport,
    data: &SplitData,
) -> Result<Vec<f64>> {
    let mut dlrm = Dlrm::from_weights(weights)?;
    dlrm.set_rounding(Some(Rounding::new(model, report)?));
    crate::predict_logits(&dlrm, data)
}
