//! Quantization-aware fine-tuning: the float model is trained further while its forward pass
//! rounds exactly where the integer model does (client inputs, weights on each layer's grid,
//! embedding entries, activation-table boxes and levels), with straight-through gradients, so
//! that it learns weights whose integer model loses less. The rounding is re-derived from a
//! fresh post-training quantization before every epoch, and the epoch whose integer model has
//! the best validation log loss is kept.

use candle_core::{Device, Tensor};
use datasets::SplitData;
use serde::{Deserialize, Serialize};

use crate::quant::value_limit;
use crate::{
    Dlrm, DlrmError, DlrmWeights, EpochReport, Execution, Metrics, QuantizeConfig, QuantizeReport,
    QuantizedModel, Result, TrainConfig, TrainProgress, quantize,
};

/// Refuses dot models: their squares' rounding is not replayed in the forward pass.
fn replayable(config: &crate::ModelConfig) -> Result<()> {
    if config.interaction == crate::Interaction::Dot {
        return Err(DlrmError::config(
            "quantization-aware fine-tuning replays concat models only (a dot model's squares are not replayed)",
        ));
    }
    Ok(())
}

/// The integer model's rounding, as float tensors for the forward pass.
pub(crate) struct Rounding {
    input_scales: Tensor,
    input_limit: f64,
    layers: Vec<LayerRounding>,
    /// Scale of every stacked embedding row, shape `(stored rows, 1)`.
    embedding_scales: Tensor,
    embedding_limit: f64,
}

struct LayerRounding {
    /// Real scale of each input column, shape `(1, cols)`.
    column_scales: Tensor,
    /// Largest integer weight of each column, shape `(1, cols)`.
    weight_limits: Tensor,
    accumulator_scale: f64,
    table: Option<TableRounding>,
}

/// An activation table in real units: boxes of `box_width` from `lo`, `last_box + 1` of them,
/// entries `clamp(round(relu(centre) / step), 0, levels) * step`.
struct TableRounding {
    lo: f64,
    box_width: f64,
    last_box: f64,
    step: f64,
    levels: f64,
}

impl Rounding {
    /// The rounding of `model`, with the scales `quantize` reported for it.
    pub(crate) fn new(model: &QuantizedModel, report: &QuantizeReport) -> Result<Self> {
        replayable(&model.config)?;
        let device = Device::Cpu;
        let row = |values: Vec<f32>| -> Result<Tensor> {
            let len = values.len();
            Ok(Tensor::from_vec(values, (1, len), &device)?)
        };
        let layers_in_order: Vec<_> = model.bottom.iter().chain(&model.top).collect();
        if layers_in_order.len() != report.layers.len() {
            return Err(DlrmError::shape("the report does not describe this model"));
        }
        let d = model.config.embedding_dim;
        let mut scales: Vec<f64> = model.input.scales.clone();
        let mut layers = Vec::with_capacity(layers_in_order.len());
        for (k, (layer, choice)) in layers_in_order.iter().zip(&report.layers).enumerate() {
            if k == model.bottom.len() {
                // The first top layer: the bottom output, then the embedding sums.
                for scale in &report.embedding_scales {
                    scales.extend(std::iter::repeat_n(*scale, d));
                }
            }
            if scales.len() != layer.cols {
                return Err(DlrmError::shape(
                    "the report's scales do not fit the layers",
                ));
            }
            // Only the layer reading the embedding sums has lookup weight bits.
            let first_lookup = layer.cols.saturating_sub(model.tables.len() * d);
            let limits = (0..layer.cols)
                .map(|j| match choice.lookup_weight_bits {
                    Some(bits) if j >= first_lookup => value_limit(bits) as f32,
                    _ => value_limit(choice.weight_bits) as f32,
                })
                .collect();
            // The bottom MLP's last table returns its levels times 2^headroom.
            let headroom = if k + 1 == model.bottom.len() {
                report.lookup_headroom_bits
            } else {
                0
            };
            let table = match (&layer.activation, choice.activation_scale) {
                (Some(table), Some(step)) => Some(TableRounding {
                    lo: table.lo as f64 * choice.accumulator_scale,
                    box_width: (1u64 << table.box_shift) as f64 * choice.accumulator_scale,
                    last_box: ((1u64 << table.lut_bits) - 1) as f64,
                    step,
                    levels: ((1u64 << (table.output_bits - headroom)) - 1) as f64,
                }),
                _ => None,
            };
            layers.push(LayerRounding {
                column_scales: row(scales.iter().map(|&s| s as f32).collect())?,
                weight_limits: row(limits)?,
                accumulator_scale: choice.accumulator_scale,
                table,
            });
            if let Some(step) = choice.activation_scale {
                scales = vec![step / (1u64 << headroom) as f64; layer.rows];
            }
        }
        let mut per_row = Vec::new();
        for (spec, scale) in model.config.tables.iter().zip(&report.embedding_scales) {
            per_row.extend(std::iter::repeat_n(*scale as f32, spec.stored_rows()));
        }
        let stored = per_row.len();
        Ok(Self {
            input_scales: row(model.input.scales.iter().map(|&s| s as f32).collect())?,
            input_limit: value_limit(model.input.bits) as f64,
            layers,
            embedding_scales: Tensor::from_vec(per_row, (stored, 1), &device)?,
            embedding_limit: model
                .tables
                .first()
                .map_or(1.0, |t| value_limit(t.value_bits) as f64),
        })
    }

    /// The client's integer inputs in real units (no gradient flows into data).
    pub(crate) fn input(&self, dense: &Tensor) -> Result<Tensor> {
        let integers = dense
            .broadcast_div(&self.input_scales)?
            .round()?
            .clamp(-self.input_limit - 1.0, self.input_limit)?;
        Ok(integers.broadcast_mul(&self.input_scales)?)
    }

    /// The stacked embedding rows on their integer grids.
    pub(crate) fn embeddings(&self, stacked: &Tensor) -> Result<Tensor> {
        let rounded = stacked
            .broadcast_div(&self.embedding_scales)?
            .round()?
            .clamp(-self.embedding_limit, self.embedding_limit)?
            .broadcast_mul(&self.embedding_scales)?;
        straight_through(stacked, &rounded)
    }

    /// Layer `index` (bottom first): `W x + b` with rounded weights and bias, then, for hidden
    /// layers, the activation table.
    pub(crate) fn layer(
        &self,
        index: usize,
        x: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
    ) -> Result<Tensor> {
        let layer = &self.layers[index];
        let acc = layer.accumulator_scale;
        let effective = weight.broadcast_mul(&layer.column_scales)?;
        let integers = (effective / acc)?
            .round()?
            .broadcast_maximum(&layer.weight_limits.neg()?)?
            .broadcast_minimum(&layer.weight_limits)?;
        let rounded = (integers * acc)?.broadcast_div(&layer.column_scales)?;
        let weight = straight_through(weight, &rounded)?;
        let bias = straight_through(bias, &((bias / acc)?.round()? * acc)?)?;
        let z = x.matmul(&weight.t()?)?.broadcast_add(&bias)?;
        let Some(table) = &layer.table else {
            return Ok(z);
        };
        let boxes = ((z.clone() - table.lo)? / table.box_width)?
            .round()?
            .clamp(0.0, table.last_box)?;
        let centres = ((boxes * table.box_width)? + table.lo)?;
        let levels = (centres.relu()? / table.step)?
            .round()?
            .clamp(0.0, table.levels)?;
        straight_through(&z.relu()?, &(levels * table.step)?)
    }
}

/// `exact` in the forward pass, the gradient of `x` in the backward pass.
fn straight_through(x: &Tensor, exact: &Tensor) -> Result<Tensor> {
    Ok((x + (exact - x)?.detach())?)
}

/// Settings of [`finetune_quantized`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QatConfig {
    pub quantize: QuantizeConfig,
    /// Epochs of fine-tuning (each re-quantizes first); batch size, learning rate, weight decay
    /// and seed as in training. A small learning rate keeps the weights near the trained ones.
    pub train: TrainConfig,
}

/// One epoch of [`finetune_quantized`]: the integer model's validation metrics after it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QatEpoch {
    pub epoch: usize,
    pub train_loss: f64,
    pub integer_validation: Metrics,
}

/// The result of [`finetune_quantized`]: the kept float weights, their integer model and its
/// report, and what every epoch measured (epoch 0: before fine-tuning).
pub struct QatResult {
    pub weights: DlrmWeights,
    pub model: QuantizedModel,
    pub report: QuantizeReport,
    pub epochs: Vec<QatEpoch>,
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
