//! The trainable DLRM on candle tensors.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Linear, Module};

use crate::rng::SplitMix64;
use crate::rounding::Rounding;
use crate::weights::dot_pairs;
use crate::{DenseLayer, DlrmError, DlrmWeights, Interaction, Matrix, ModelConfig, Result};

/// A DLRM whose parameters are candle variables, for training and batched evaluation.
///
/// All tables' stored rows (full rows and digit codebook rows) are stacked in one matrix, so a
/// batch's lookups are one gather; a table's row is the sum of its parts, one matrix product.
pub struct Dlrm {
    config: ModelConfig,
    /// Every layer has a bias; its weight and bias tensors are variables listed in `vars`.
    bottom: Vec<Linear>,
    top: Vec<Linear>,
    /// Stacked stored rows of all tables, `sum_t stored_rows(t) x d`.
    embeddings: Var,
    /// First stacked row of each table.
    table_offsets: Vec<usize>,
    /// `tables x parts`: 1 where a part belongs to a table; `None` when every table is full.
    part_sums: Option<Tensor>,
    /// Positions of the dot-interaction pairs in the flattened `(T+1) x (T+1)` Gram matrix.
    dot_positions: Option<Tensor>,
    /// The integer model's rounding, replayed during quantization-aware fine-tuning.
    rounding: Option<Rounding>,
    /// Every trainable variable: the embeddings, then each layer's weight and bias.
    vars: Vec<Var>,
}

/// One mini-batch in the model's input form.
pub struct Batch {
    /// `rows x dense_features`.
    pub dense: Tensor,
    /// `rows x parts`: stacked embedding row of every part of every table.
    pub stacked_rows: Tensor,
    /// `rows`, 0.0 or 1.0.
    pub labels: Tensor,
}

impl Dlrm {
    /// A freshly initialised model (the PyTorch reference DLRM's initialisation), seeded.
    ///
    /// ```
    /// let config = dlrm::ModelPreset::Uci.config(5, &[2, 4]);
    /// let model = dlrm::Dlrm::new(&config, 7).unwrap();
    /// assert_eq!(model.config(), &config);
    /// ```
    pub fn new(config: &ModelConfig, seed: u64) -> Result<Self> {
        config.validate()?;
        let mut rng = SplitMix64::new(seed);
        let mut mlp = |input: usize, widths: &[usize]| {
            let mut fan_in = input;
            widths
                .iter()
                .map(|&out| {
                    let sd = (2.0 / (fan_in + out) as f64).sqrt();
                    let weight = (0..out * fan_in)
                        .map(|_| (rng.normal() * sd) as f32)
                        .collect();
                    let bias_sd = (1.0 / out as f64).sqrt();
                    let bias = (0..out).map(|_| (rng.normal() * bias_sd) as f32).collect();
                    let layer = DenseLayer {
                        weight: Matrix::new(out, fan_in, weight).expect("sized above"),
                        bias,
                    };
                    fan_in = out;
                    layer
                })
                .collect::<Vec<_>>()
        };
        let bottom = mlp(config.dense_features, &config.bottom);
        let top = mlp(config.interaction_output(), &config.top);
        let tables = config
            .tables
            .iter()
            .map(|spec| {
                // Each row is a sum of `parts` stored rows: shrink them so sums keep the scale.
                let bound = (1.0 / spec.rows as f64).sqrt() / (spec.parts() as f64).sqrt();
                let n = spec.stored_rows() * config.embedding_dim;
                let data = (0..n)
                    .map(|_| ((rng.uniform() * 2.0 - 1.0) * bound) as f32)
                    .collect();
                Matrix::new(spec.stored_rows(), config.embedding_dim, data).expect("sized above")
            })
            .collect();
        Self::from_weights(&DlrmWeights {
            config: config.clone(),
            bottom,
            tables,
            top,
        })
    }

    /// A trainable model holding a copy of `weights`.
    ///
    /// ```
    /// # let config = dlrm::ModelPreset::Uci.config(5, &[2, 4]);
    /// let weights = dlrm::Dlrm::new(&config, 7).unwrap().to_weights().unwrap();
    /// let again = dlrm::Dlrm::from_weights(&weights).unwrap().to_weights().unwrap();
    /// assert_eq!(weights, again);
    /// ```
    pub fn from_weights(weights: &DlrmWeights) -> Result<Self> {
        weights.validate()?;
        let device = Device::Cpu;
        let config = weights.config.clone();
        let mut layer_vars = Vec::new();
        let mut linear = |layer: &DenseLayer| -> Result<Linear> {
            let w = &layer.weight;
            let weight = Var::from_slice(&w.data, (w.rows, w.cols), &device)?;
            let bias = Var::from_slice(&layer.bias, layer.bias.len(), &device)?;
            // The layer holds the variables' own tensors, so the optimiser's updates reach it.
            let linear = Linear::new(weight.as_tensor().clone(), Some(bias.as_tensor().clone()));
            layer_vars.extend([weight, bias]);
            Ok(linear)
        };
        let bottom: Vec<Linear> = weights
            .bottom
            .iter()
            .map(&mut linear)
            .collect::<Result<_>>()?;
        let top: Vec<Linear> = weights.top.iter().map(&mut linear).collect::<Result<_>>()?;
        let d = config.embedding_dim;
        let mut table_offsets = Vec::with_capacity(config.tables.len());
        let mut stacked = Vec::new();
        for table in &weights.tables {
            table_offsets.push(stacked.len() / d);
            stacked.extend_from_slice(&table.data);
        }
        let embeddings = Var::from_vec(stacked.clone(), (stacked.len() / d, d), &device)?;
        let vars = std::iter::once(embeddings.clone())
            .chain(layer_vars)
            .collect();
        let parts: usize = config.tables.iter().map(|t| t.parts()).sum();
        let part_sums = if parts == config.tables.len() {
            None
        } else {
            let mut sums = vec![0f32; config.tables.len() * parts];
            let mut part = 0;
            for (t, spec) in config.tables.iter().enumerate() {
                for _ in 0..spec.parts() {
                    sums[t * parts + part] = 1.0;
                    part += 1;
                }
            }
            Some(Tensor::from_vec(
                sums,
                (config.tables.len(), parts),
                &device,
            )?)
        };
        let dot_positions = match config.interaction {
            Interaction::Concat => None,
            Interaction::Dot => {
                let n = config.tables.len() + 1;
                let positions: Vec<u32> = dot_pairs(n).map(|(i, j)| (i * n + j) as u32).collect();
                let len = positions.len();
                Some(Tensor::from_vec(positions, len, &device)?)
            }
        };
        Ok(Self {
            config,
            bottom,
            top,
            embeddings,
            table_offsets,
            part_sums,
            dot_positions,
            rounding: None,
            vars,
        })
    }

    /// Makes `forward` round as an integer model does (quantization-aware fine-tuning), or
    /// stops it.
    pub(crate) fn set_rounding(&mut self, rounding: Option<Rounding>) {
        self.rounding = rounding;
    }

    /// The architecture.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Copies the parameters out as plain data.
    ///
    /// ```
    /// # let config = dlrm::ModelPreset::Uci.config(5, &[2, 4]);
    /// let weights = dlrm::Dlrm::new(&config, 7).unwrap().to_weights().unwrap();
    /// assert_eq!(weights.tables.len(), 2);
    /// ```
    pub fn to_weights(&self) -> Result<DlrmWeights> {
        let layer = |l: &Linear| -> Result<DenseLayer> {
            let (rows, cols) = l.weight().dims2()?;
            Ok(DenseLayer {
                weight: Matrix::new(rows, cols, l.weight().flatten_all()?.to_vec1()?)?,
                bias: layer_bias(l).to_vec1()?,
            })
        };
        let d = self.config.embedding_dim;
        let stacked: Vec<f32> = self.embeddings.as_tensor().flatten_all()?.to_vec1()?;
        let tables = self
            .config
            .tables
            .iter()
            .zip(&self.table_offsets)
            .map(|(spec, &offset)| {
                let rows = spec.stored_rows();
                Matrix::new(rows, d, stacked[offset * d..(offset + rows) * d].to_vec())
            })
            .collect::<Result<_>>()?;
        Ok(DlrmWeights {
            config: self.config.clone(),
            bottom: self.bottom.iter().map(layer).collect::<Result<_>>()?,
            tables,
            top: self.top.iter().map(layer).collect::<Result<_>>()?,
        })
    }

    /// Every trainable variable (for the optimiser).
    pub fn vars(&self) -> Vec<Var> {
        self.vars.clone()
    }

    /// Builds the batch of `rows` of `data` (which must match the model's tables).
    ///
    /// ```
    /// # let config = dlrm::ModelPreset::Uci.config(1, &[3]);
    /// # let model = dlrm::Dlrm::new(&config, 7).unwrap();
    /// let data = datasets::SplitData {
    ///     labels: vec![1, 0], dense: vec![0.5, -0.5], categorical: vec![2, 0],
    ///     dense_names: vec!["x".into()], categorical_names: vec!["c".into()],
    /// };
    /// let batch = model.batch(&data, &[1, 0]).unwrap();
    /// assert_eq!(model.forward(&batch).unwrap().dims(), &[2]);
    /// ```
    pub fn batch(&self, data: &datasets::SplitData, rows: &[usize]) -> Result<Batch> {
        let c = &self.config;
        if data.dense_width() != c.dense_features || data.categorical_width() != c.tables.len() {
            return Err(DlrmError::shape(format!(
                "data has {} dense and {} categorical columns, model wants {} and {}",
                data.dense_width(),
                data.categorical_width(),
                c.dense_features,
                c.tables.len()
            )));
        }
        let parts: usize = c.tables.iter().map(|t| t.parts()).sum();
        let mut dense = Vec::with_capacity(rows.len() * c.dense_features);
        let mut stacked = Vec::with_capacity(rows.len() * parts);
        let mut labels = Vec::with_capacity(rows.len());
        for &r in rows {
            dense.extend_from_slice(data.dense_row(r));
            labels.push(f32::from(data.labels[r]));
            for ((spec, &offset), &id) in c
                .tables
                .iter()
                .zip(&self.table_offsets)
                .zip(data.categorical_row(r))
            {
                if id as usize >= spec.rows {
                    return Err(DlrmError::shape(format!(
                        "id {id} outside a table of {} rows",
                        spec.rows
                    )));
                }
                for part in 0..spec.parts() {
                    stacked.push((offset + spec.stored_row(id, part)) as u32);
                }
            }
        }
        let device = Device::Cpu;
        Ok(Batch {
            dense: Tensor::from_vec(dense, (rows.len(), c.dense_features), &device)?,
            stacked_rows: Tensor::from_vec(stacked, (rows.len(), parts), &device)?,
            labels: Tensor::from_vec(labels, rows.len(), &device)?,
        })
    }

    /// The logits of a batch, shape `rows`.
    pub fn forward(&self, batch: &Batch) -> Result<Tensor> {
        let rounding = self.rounding.as_ref();
        let mut x = match rounding {
            Some(r) => r.input(&batch.dense)?,
            None => batch.dense.clone(),
        };
        for (k, layer) in self.bottom.iter().enumerate() {
            x = match rounding {
                Some(r) => r.layer(k, &x, layer.weight(), layer_bias(layer))?,
                None => layer.forward(&x)?.relu()?,
            };
        }
        let (rows, parts) = batch.stacked_rows.dims2()?;
        let d = self.config.embedding_dim;
        let stacked = match rounding {
            Some(r) => r.embeddings(self.embeddings.as_tensor())?,
            None => self.embeddings.as_tensor().clone(),
        };
        let gathered = stacked
            .index_select(&batch.stacked_rows.flatten_all()?, 0)?
            .reshape((rows, parts, d))?;
        let embeddings = match &self.part_sums {
            None => gathered,
            Some(sums) => sums.broadcast_matmul(&gathered)?,
        };
        let mut z = match &self.dot_positions {
            None => Tensor::cat(&[x, embeddings.flatten_from(1)?], 1)?,
            Some(positions) => {
                let vectors = Tensor::cat(&[x.unsqueeze(1)?, embeddings], 1)?;
                let gram = vectors.matmul(&vectors.transpose(1, 2)?.contiguous()?)?;
                let pairs = gram.flatten_from(1)?.index_select(positions, 1)?;
                Tensor::cat(&[x, pairs], 1)?
            }
        };
        for (k, layer) in self.top.iter().enumerate() {
            if let Some(r) = rounding {
                let index = self.bottom.len() + k;
                z = r.layer(index, &z, layer.weight(), layer_bias(layer))?;
                continue;
            }
            z = layer.forward(&z)?;
            if k + 1 < self.top.len() {
                z = z.relu()?;
            }
        }
        Ok(z.squeeze(1)?)
    }
}

/// A layer's bias: every layer of this model has one.
fn layer_bias(layer: &Linear) -> &Tensor {
    layer.bias().expect("every layer is made with a bias")
}

/// Mean binary cross-entropy of `logits` against 0/1 `labels`, computed stably:
/// `max(x, 0) - x y + ln(1 + e^-|x|)`.
pub(crate) fn bce_with_logits(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let softplus = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    let loss = ((logits.relu()? - (logits * labels)?)? + softplus)?;
    Ok(loss.mean_all()?.to_dtype(DType::F32)?)
}
