//! Mini-batch training with AdamW and early stopping, and batched evaluation.

use std::time::Instant;

use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use datasets::SplitData;
use serde::{Deserialize, Serialize};

use crate::model::bce_with_logits;
use crate::rng::SplitMix64;
use crate::{Dlrm, Metrics, Result, TrainConfig};

/// Rows per forward pass when only evaluating.
const EVAL_BATCH: usize = 4096;

/// What happened in one epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    /// The epoch, 1-based.
    pub epoch: usize,
    /// Mean loss over the epoch's training rows.
    pub train_loss: f64,
    /// Metrics on the validation split after the epoch, when one was given.
    pub validation: Option<Metrics>,
    /// Training rows per second of wall-clock time.
    pub samples_per_second: f64,
}

/// A finished training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// Every epoch run, in order.
    pub epochs: Vec<EpochReport>,
    /// The epoch whose weights were kept (1-based).
    pub kept_epoch: usize,
}

/// Progress notifications of [`train`].
pub trait TrainProgress {
    /// An epoch of `batches` batches starts.
    fn epoch_start(&mut self, epoch: usize, batches: usize);
    /// A batch finished with this loss.
    fn batch_done(&mut self, loss: f32);
    /// An epoch finished.
    fn epoch_done(&mut self, report: &EpochReport);
}

/// A [`TrainProgress`] that ignores everything.
pub struct Silent;

impl TrainProgress for Silent {
    fn epoch_start(&mut self, _: usize, _: usize) {}
    fn batch_done(&mut self, _: f32) {}
    fn epoch_done(&mut self, _: &EpochReport) {}
}

/// Trains `model` on `train`, shuffling each epoch with the configured seed. With a validation
/// split and a patience, stops when the validation log loss has not improved for `patience`
/// epochs and restores the best weights.
///
/// ```
/// let data = datasets::SplitData {
///     labels: vec![1, 0, 1, 0], dense: vec![1.0, -1.0, 0.9, -1.2], categorical: vec![1, 0, 1, 0],
///     dense_names: vec!["x".into()], categorical_names: vec!["c".into()],
/// };
/// let config = dlrm::ModelPreset::Uci.config(1, &[2]);
/// let mut model = dlrm::Dlrm::new(&config, 1).unwrap();
/// let mut settings = dlrm::ModelPreset::Uci.train_config();
/// settings.epochs = 30;
/// let report = dlrm::train(&mut model, &data, None, &settings, &mut dlrm::Silent).unwrap();
/// assert_eq!(report.epochs.len(), 30);
/// assert_eq!(dlrm::evaluate(&model, &data).unwrap().auc, 1.0);
/// ```
pub fn train(
    model: &mut Dlrm,
    train: &SplitData,
    validation: Option<&SplitData>,
    config: &TrainConfig,
    progress: &mut dyn TrainProgress,
) -> Result<TrainReport> {
    config.validate()?;
    let mut optimizer = AdamW::new(
        model.vars(),
        ParamsAdamW {
            lr: config.learning_rate,
            weight_decay: config.weight_decay,
            ..ParamsAdamW::default()
        },
    )?;
    let mut rng = SplitMix64::new(config.seed);
    let mut order: Vec<usize> = (0..train.rows()).collect();
    let mut epochs = Vec::new();
    let mut best: Option<(f64, usize, crate::DlrmWeights)> = None;
    for epoch in 1..=config.epochs {
        rng.shuffle(&mut order);
        let batches = order.len().div_ceil(config.batch_size);
        progress.epoch_start(epoch, batches);
        let start = Instant::now();
        let mut loss_sum = 0.0;
        for rows in order.chunks(config.batch_size) {
            let batch = model.batch(train, rows)?;
            let loss = bce_with_logits(&model.forward(&batch)?, &batch.labels)?;
            optimizer.backward_step(&loss)?;
            let loss = loss.to_scalar::<f32>()?;
            loss_sum += f64::from(loss) * rows.len() as f64;
            progress.batch_done(loss);
        }
        let samples_per_second = order.len() as f64 / start.elapsed().as_secs_f64().max(1e-9);
        let validation = validation.map(|v| evaluate(model, v)).transpose()?;
        let report = EpochReport {
            epoch,
            train_loss: loss_sum / order.len().max(1) as f64,
            validation,
            samples_per_second,
        };
        progress.epoch_done(&report);
        epochs.push(report);
        if let (Some(patience), Some(metrics)) = (config.patience, validation) {
            let improved = best.as_ref().is_none_or(|(l, _, _)| metrics.log_loss < *l);
            if improved {
                best = Some((metrics.log_loss, epoch, model.to_weights()?));
            } else if epoch - best.as_ref().map_or(0, |b| b.1) >= patience {
                break;
            }
        }
    }
    let kept_epoch = match best {
        Some((_, epoch, weights)) => {
            *model = Dlrm::from_weights(&weights)?;
            epoch
        }
        None => epochs.len(),
    };
    Ok(TrainReport { epochs, kept_epoch })
}

/// The logits of every row of `data`.
///
/// ```
/// # let config = dlrm::ModelPreset::Uci.config(1, &[2]);
/// # let model = dlrm::Dlrm::new(&config, 1).unwrap();
/// let data = datasets::SplitData {
///     labels: vec![1], dense: vec![0.3], categorical: vec![1],
///     dense_names: vec!["x".into()], categorical_names: vec!["c".into()],
/// };
/// let logits = dlrm::predict_logits(&model, &data).unwrap();
/// let plain = model.to_weights().unwrap().forward(&[0.3], &[1]).unwrap();
/// assert!((logits[0] - plain as f64).abs() < 1e-5);
/// ```
pub fn predict_logits(model: &Dlrm, data: &SplitData) -> Result<Vec<f64>> {
    let rows: Vec<usize> = (0..data.rows()).collect();
    let mut logits = Vec::with_capacity(data.rows());
    for chunk in rows.chunks(EVAL_BATCH) {
        let batch = model.batch(data, chunk)?;
        let out: Vec<f32> = model.forward(&batch)?.detach().to_vec1()?;
        logits.extend(out.into_iter().map(f64::from));
    }
    Ok(logits)
}

/// AUC, log loss and accuracy of `model` on `data`.
///
/// ```
/// # let config = dlrm::ModelPreset::Uci.config(1, &[2]);
/// # let model = dlrm::Dlrm::new(&config, 1).unwrap();
/// let data = datasets::SplitData {
///     labels: vec![1, 0], dense: vec![0.3, 0.1], categorical: vec![1, 0],
///     dense_names: vec!["x".into()], categorical_names: vec!["c".into()],
/// };
/// assert_eq!(dlrm::evaluate(&model, &data).unwrap().rows, 2);
/// ```
pub fn evaluate(model: &Dlrm, data: &SplitData) -> Result<Metrics> {
    Ok(Metrics::from_logits(
        &predict_logits(model, data)?,
        &data.labels,
    ))
}

/// The first `rows` rows of a split (all of it when shorter): a calibration or benchmark subset.
///
/// ```
/// let data = datasets::SplitData {
///     labels: vec![1, 0, 1], dense: vec![0.1, 0.2, 0.3], categorical: vec![],
///     dense_names: vec!["x".into()], categorical_names: vec![],
/// };
/// assert_eq!(dlrm::first_rows(&data, 2).dense, vec![0.1, 0.2]);
/// ```
pub fn first_rows(data: &SplitData, rows: usize) -> SplitData {
    let rows = rows.min(data.rows());
    SplitData {
        labels: data.labels[..rows].to_vec(),
        dense: data.dense[..rows * data.dense_width()].to_vec(),
        categorical: data.categorical[..rows * data.categorical_width()].to_vec(),
        dense_names: data.dense_names.clone(),
        categorical_names: data.categorical_names.clone(),
    }
}
