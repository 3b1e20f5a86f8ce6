//! The calibration rows on their walk through the model being quantized: at every layer, the
//! integers the reference computes, the float model's own values on the same rows and the real
//! value of one integer unit of each column. Each quantized layer moves all three on to its
//! outputs (`layers.rs`).

use rayon::prelude::*;

use crate::dot::{DotInteraction, DotLayout};
use crate::integer_model::{InputQuantizer, IntLayer, IntTable};
use crate::weights::dot_pairs;
use crate::{DenseLayer, DlrmWeights};

/// The calibration rows at the input of the next layer to quantize.
pub(super) struct Calibration {
    /// Integer inputs of each row, as the reference computes them.
    x: Vec<Vec<i64>>,
    /// The float model's own values on the same rows: each integer layer's bias is corrected
    /// towards them, so rounding errors do not add up from layer to layer.
    xf: Vec<Vec<f64>>,
    /// Real value of one integer unit of each column.
    scales: Vec<f64>,
}

impl Calibration {
    /// The dense features of every row of `data`: quantized by `input`, and as floats.
    pub(super) fn new(data: &datasets::SplitData, input: &InputQuantizer) -> Self {
        let x = (0..data.rows())
            .map(|r| input.quantize(data.dense_row(r)))
            .collect();
        let xf = (0..data.rows())
            .map(|r| data.dense_row(r).iter().map(|&v| f64::from(v)).collect())
            .collect();
        Self {
            x,
            xf,
            scales: input.scales.clone(),
        }
    }

    /// Columns of the rows at this point of the walk.
    pub(super) fn width(&self) -> usize {
        self.scales.len()
    }

    /// Integer values of each row, as the reference computes them.
    pub(super) fn integers(&self) -> &[Vec<i64>] {
        &self.x
    }

    /// The float model's values on each row.
    pub(super) fn floats(&self) -> &[Vec<f64>] {
        &self.xf
    }

    /// Real value of one integer unit of each column.
    pub(super) fn scales(&self) -> &[f64] {
        &self.scales
    }

    /// Moves the rows on to a hidden layer's outputs: the activations of `layer`, the float
    /// layer's outputs `floats`, and one unit worth `scale` in every column.
    pub(super) fn advance(&mut self, layer: &IntLayer, floats: Vec<Vec<f64>>, scale: f64) {
        self.x = self.activations(layer);
        self.xf = floats;
        self.scales = vec![scale; layer.rows];
    }

    /// Scales the bottom MLP's last activations (its table entries, the rows' integers and
    /// their scales) by `2^bits`, so that the first top layer's accumulator unit is that much
    /// finer while the weights on the bottom output stay as large as the noise budget allows: a
    /// bootstrap's output noise does not depend on the integers its table returns. Returns the
    /// bits applied: 0 without a bottom MLP.
    pub(super) fn make_room_for_lookups(
        &mut self,
        last_bottom: Option<&mut IntLayer>,
        bits: u32,
    ) -> u32 {
        // Called before the embedding sums are appended: the rows hold the bottom output only.
        let Some(table) = last_bottom.and_then(|layer| layer.activation.as_mut()) else {
            return 0;
        };
        table.output_bits += bits;
        table.entries.iter_mut().for_each(|e| *e <<= bits);
        self.x.iter_mut().flatten().for_each(|v| *v <<= bits);
        let factor = (1u64 << bits) as f64;
        self.scales.iter_mut().for_each(|s| *s /= factor);
        bits
    }

    /// Appends table `t`'s lookup of every row's id: the integer sum from `table` (one unit
    /// worth `scale`) and the float model's embedding.
    pub(super) fn append_lookups(
        &mut self,
        data: &datasets::SplitData,
        weights: &DlrmWeights,
        t: usize,
        table: &IntTable,
        scale: f64,
    ) {
        let c = &weights.config;
        for (r, (row_x, row_f)) in self.x.iter_mut().zip(&mut self.xf).enumerate() {
            let id = data.categorical_row(r)[t];
            row_x.extend(table.lookup(&c.tables[t], c.embedding_dim, id));
            row_f.extend(weights.embedding(t, id).into_iter().map(f64::from));
        }
        self.scales
            .extend(std::iter::repeat_n(scale, c.embedding_dim));
    }

    /// Replaces each row's bottom output and embedding sums (the first `bottom_width` columns
    /// are the bottom output) by the dot interaction's features: the integer pair features of
    /// `dot`'s squares and the float model's dot products. Returns the pair features' scales: a
    /// pair feature is twice the product of its vectors' integers, in square units.
    pub(super) fn interact(
        &mut self,
        dot: &DotInteraction,
        layout: &DotLayout,
        bottom_width: usize,
    ) -> Vec<f64> {
        let dim = layout.dim();
        self.x
            .par_iter_mut()
            .zip(self.xf.par_iter_mut())
            .for_each(|(row_x, row_f)| {
                let (_, _, features) = dot.interact(layout, row_x, |u, _| dot.square.apply(u));
                row_x.truncate(bottom_width);
                row_x.extend(features);
                let vectors = row_f.len() / dim;
                let dots: Vec<f64> = dot_pairs(vectors)
                    .map(|(i, j)| {
                        (0..dim)
                            .map(|k| row_f[i * dim + k] * row_f[j * dim + k])
                            .sum()
                    })
                    .collect();
                row_f.truncate(bottom_width);
                row_f.extend(dots);
            });
        let vector_scales: Vec<f64> = self.scales.iter().step_by(dim).copied().collect();
        let pair_scales: Vec<f64> = dot_pairs(vector_scales.len())
            .map(|(i, j)| dot.square_unit * vector_scales[i] * vector_scales[j] / 2.0)
            .collect();
        self.scales.truncate(bottom_width);
        self.scales.extend(&pair_scales);
        pair_scales
    }

    /// `layer` with its bias corrected for the mean error of the rows' integer inputs (real
    /// value `x * scale`) against the float model's.
    pub(super) fn bias_corrected(&self, layer: &DenseLayer) -> DenseLayer {
        let cols = layer.weight.cols;
        let mut mean_error = vec![0f64; cols];
        for (row_x, row_f) in self.x.iter().zip(&self.xf) {
            for j in 0..cols {
                mean_error[j] += row_f[j] - row_x[j] as f64 * self.scales[j];
            }
        }
        let rows = self.x.len().max(1) as f64;
        let mut corrected = layer.clone();
        for (r, bias) in corrected.bias.iter_mut().enumerate() {
            let shift: f64 = (0..cols)
                .map(|j| f64::from(layer.weight.data[r * cols + j]) * mean_error[j] / rows)
                .sum();
            *bias += shift as f32;
        }
        corrected
    }

    /// The float layer with its ReLU on every row.
    pub(super) fn float_layer(&self, layer: &DenseLayer) -> Vec<Vec<f64>> {
        let w = &layer.weight;
        self.xf
            .iter()
            .map(|row| {
                (0..w.rows)
                    .map(|r| {
                        let dot: f64 = (0..w.cols)
                            .map(|j| f64::from(w.data[r * w.cols + j]) * row[j])
                            .sum();
                        (dot + f64::from(layer.bias[r])).max(0.0)
                    })
                    .collect()
            })
            .collect()
    }

    /// The hidden layer's activations for every row.
    fn activations(&self, layer: &IntLayer) -> Vec<Vec<i64>> {
        let table = layer
            .activation
            .as_ref()
            .expect("hidden layers have tables");
        self.x
            .iter()
            .map(|row| {
                layer
                    .accumulate(row)
                    .into_iter()
                    .map(|a| table.apply(a))
                    .collect()
            })
            .collect()
    }
}
