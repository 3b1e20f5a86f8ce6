//! The float model as plain data, independent of the tensor library: what is saved, loaded,
//! imported from PyTorch, compressed and quantized; with a plain row-at-a-time forward pass.

use crate::{DlrmError, EmbeddingKind, Interaction, ModelConfig, Result};

/// A row-major `rows x cols` matrix of `f32`.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// `rows x cols` values, row-major.
    pub data: Vec<f32>,
}

impl Matrix {
    /// A matrix from row-major data, checking its length.
    ///
    /// ```
    /// assert!(dlrm::Matrix::new(2, 3, vec![0.0; 6]).is_ok());
    /// assert!(dlrm::Matrix::new(2, 3, vec![0.0; 5]).is_err());
    /// ```
    pub fn new(rows: usize, cols: usize, data: Vec<f32>) -> Result<Self> {
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(DlrmError::shape(format!(
                "{} values for a {rows} x {cols} matrix",
                data.len()
            )));
        }
        Ok(Self { rows, cols, data })
    }

    /// An all-zero matrix.
    ///
    /// ```
    /// assert_eq!(dlrm::Matrix::zeros(2, 2).data, vec![0.0; 4]);
    /// ```
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    /// Row `r`.
    ///
    /// ```
    /// let m = dlrm::Matrix::new(2, 2, vec![1.0, 2.0, 3.0, 4.0]).unwrap();
    /// assert_eq!(m.row(1), &[3.0, 4.0]);
    /// ```
    pub fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }
}

/// A linear layer `y = W x + b` (`W` is `out x in`, the PyTorch layout).
#[derive(Clone, Debug, PartialEq)]
pub struct DenseLayer {
    /// `W`, `out x in`.
    pub weight: Matrix,
    /// `b`, one value per output.
    pub bias: Vec<f32>,
}

impl DenseLayer {
    /// `W x + b`.
    ///
    /// ```
    /// let layer = dlrm::DenseLayer {
    ///     weight: dlrm::Matrix::new(1, 2, vec![1.0, -1.0]).unwrap(),
    ///     bias: vec![0.5],
    /// };
    /// assert_eq!(layer.forward(&[3.0, 1.0]), vec![2.5]);
    /// ```
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        (0..self.weight.rows)
            .map(|r| {
                let dot: f32 = self.weight.row(r).iter().zip(x).map(|(w, x)| w * x).sum();
                dot + self.bias[r]
            })
            .collect()
    }
}

/// All parameters of a DLRM with its architecture.
#[derive(Clone, Debug, PartialEq)]
pub struct DlrmWeights {
    /// The architecture the shapes follow.
    pub config: ModelConfig,
    /// The bottom MLP's layers (ReLU after each).
    pub bottom: Vec<DenseLayer>,
    /// Per table: `V x d` (full) or the stacked codebooks `(l * p) x d` (digits).
    pub tables: Vec<Matrix>,
    /// The top MLP's layers (ReLU after all but the last).
    pub top: Vec<DenseLayer>,
}

impl DlrmWeights {
    /// Checks every shape against the configuration (weights may come from untrusted files).
    pub fn validate(&self) -> Result<()> {
        self.config.validate()?;
        let c = &self.config;
        let check_mlp = |name: &str, layers: &[DenseLayer], input: usize, widths: &[usize]| {
            if layers.len() != widths.len() {
                return Err(DlrmError::shape(format!(
                    "{name}: {} layers, config has {}",
                    layers.len(),
                    widths.len()
                )));
            }
            let mut fan_in = input;
            for (k, (layer, &out)) in layers.iter().zip(widths).enumerate() {
                let w = &layer.weight;
                if w.rows != out || w.cols != fan_in || layer.bias.len() != out {
                    return Err(DlrmError::shape(format!(
                        "{name} layer {k}: weight {} x {}, bias {}, expected {out} x {fan_in}",
                        w.rows,
                        w.cols,
                        layer.bias.len()
                    )));
                }
                fan_in = out;
            }
            Ok(())
        };
        check_mlp("bottom", &self.bottom, c.dense_features, &c.bottom)?;
        check_mlp("top", &self.top, c.interaction_output(), &c.top)?;
        if self.tables.len() != c.tables.len() {
            return Err(DlrmError::shape(format!(
                "{} tables, config has {}",
                self.tables.len(),
                c.tables.len()
            )));
        }
        for (t, (m, spec)) in self.tables.iter().zip(&c.tables).enumerate() {
            if m.rows != spec.stored_rows() || m.cols != c.embedding_dim {
                return Err(DlrmError::shape(format!(
                    "table {t}: {} x {}, expected {} x {}",
                    m.rows,
                    m.cols,
                    spec.stored_rows(),
                    c.embedding_dim
                )));
            }
        }
        let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
        let all_finite = self
            .bottom
            .iter()
            .chain(&self.top)
            .all(|l| finite(&l.weight.data) && finite(&l.bias))
            && self.tables.iter().all(|m| finite(&m.data));
        if !all_finite {
            return Err(DlrmError::shape("weights contain NaN or infinity"));
        }
        Ok(())
    }

    /// Embedding row of `id` in table `t` (the sum of its digit codebook rows for digit tables).
    ///
    /// ```
    /// # let c = dlrm::ModelPreset::Uci.config(1, &[3]);
    /// # let w = dlrm::Dlrm::new(&c, 1).unwrap().to_weights().unwrap();
    /// assert_eq!(w.embedding(0, 2), w.tables[0].row(2));
    /// ```
    pub fn embedding(&self, t: usize, id: u32) -> Vec<f32> {
        let spec = &self.config.tables[t];
        let mut out = vec![0.0; self.config.embedding_dim];
        for part in 0..spec.parts() {
            let row = self.tables[t].row(spec.stored_row(id, part));
            out.iter_mut().zip(row).for_each(|(o, v)| *o += v);
        }
        out
    }

    /// The full `V x d` table `t` (expanding digit codebooks).
    ///
    /// ```
    /// # let c = dlrm::ModelPreset::Uci.config(1, &[3]);
    /// # let w = dlrm::Dlrm::new(&c, 1).unwrap().to_weights().unwrap();
    /// assert_eq!(w.expanded_table(0).rows, 3);
    /// ```
    pub fn expanded_table(&self, t: usize) -> Matrix {
        match self.config.tables[t].kind {
            EmbeddingKind::Full => self.tables[t].clone(),
            EmbeddingKind::Digits(_) => {
                let rows = self.config.tables[t].rows;
                let data = (0..rows as u32)
                    .flat_map(|id| self.embedding(t, id))
                    .collect();
                Matrix {
                    rows,
                    cols: self.config.embedding_dim,
                    data,
                }
            }
        }
    }

    /// The logit of one row, computed plainly in `f32` (ids must be below their table sizes).
    ///
    /// ```
    /// let c = dlrm::ModelPreset::Uci.config(2, &[3, 2]);
    /// let w = dlrm::Dlrm::new(&c, 1).unwrap().to_weights().unwrap();
    /// assert!(w.forward(&[0.5, -1.0], &[2, 1]).unwrap().is_finite());
    /// assert!(w.forward(&[0.5, -1.0], &[3, 1]).is_err());
    /// ```
    pub fn forward(&self, dense: &[f32], ids: &[u32]) -> Result<f32> {
        check_row(&self.config, dense.len(), ids)?;
        let mut x = dense.to_vec();
        for layer in &self.bottom {
            x = relu(layer.forward(&x));
        }
        let embeddings: Vec<Vec<f32>> = ids
            .iter()
            .enumerate()
            .map(|(t, &id)| self.embedding(t, id))
            .collect();
        let mut z = interact(self.config.interaction, &x, &embeddings);
        for (k, layer) in self.top.iter().enumerate() {
            z = layer.forward(&z);
            if k + 1 < self.top.len() {
                z = relu(z);
            }
        }
        Ok(z[0])
    }
}

/// Checks one input row against a model's dense width and table sizes.
pub(crate) fn check_row(config: &ModelConfig, dense: usize, ids: &[u32]) -> Result<()> {
    if dense != config.dense_features || ids.len() != config.tables.len() {
        return Err(DlrmError::shape(format!(
            "row has {dense} dense values and {} ids, model wants {} and {}",
            ids.len(),
            config.dense_features,
            config.tables.len()
        )));
    }
    for (t, (&id, spec)) in ids.iter().zip(&config.tables).enumerate() {
        if id as usize >= spec.rows {
            return Err(DlrmError::shape(format!(
                "id {id} outside table {t} of {} rows",
                spec.rows
            )));
        }
    }
    Ok(())
}

fn relu(mut x: Vec<f32>) -> Vec<f32> {
    x.iter_mut().for_each(|v| *v = v.max(0.0));
    x
}

/// Pairs `(i, j)`, `j < i`, of the dot interaction over `vectors` vectors (the bottom output
/// is vector 0, table `t` vector `t + 1`), in the order the pair features are laid out: the
/// strictly lower triangle row by row, as the reference DLRM's `interact_features`.
///
/// ```
/// assert_eq!(dlrm::dot_pairs(3).collect::<Vec<_>>(), vec![(1, 0), (2, 0), (2, 1)]);
/// ```
pub fn dot_pairs(vectors: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..vectors).flat_map(|i| (0..i).map(move |j| (i, j)))
}

/// The interaction of a bottom output with the embeddings of one row.
fn interact(interaction: Interaction, bottom: &[f32], embeddings: &[Vec<f32>]) -> Vec<f32> {
    let mut z = bottom.to_vec();
    match interaction {
        Interaction::Concat => embeddings.iter().for_each(|e| z.extend_from_slice(e)),
        Interaction::Dot => {
            let vectors: Vec<&[f32]> = std::iter::once(bottom)
                .chain(embeddings.iter().map(Vec::as_slice))
                .collect();
            for (i, j) in dot_pairs(vectors.len()) {
                z.push(vectors[i].iter().zip(vectors[j]).map(|(a, b)| a * b).sum());
            }
        }
    }
    z
}
