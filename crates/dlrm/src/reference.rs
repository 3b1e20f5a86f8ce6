//! The integer reference executor: the oracle the encrypted executor is checked against.
//! Everything here is plain integer arithmetic on the model file's numbers; the only floating
//! point is the client's input scaling, the final `logit_scale` and the noise of `simulate`
//! mode, which adds the noise model's Gaussian noise before every bootstrap.

use rayon::prelude::*;

use crate::activation::ActivationTable;
use crate::dot::DotLayout;
use crate::integer_model::value_limit;
use crate::rng::SplitMix64;
use crate::weights::check_row;
use crate::{DlrmError, QuantizedModel, Result};

/// Every accumulator and activation of one reference run (for layer-by-layer comparison with
/// the encrypted executor).
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    /// Integer inputs of the first top layer: bottom output then the embedding sums (concat)
    /// or the pair features (dot).
    pub top_input: Vec<i64>,
    /// The dot interaction's square inputs and squares (`None` for concat).
    pub interaction: Option<LayerTrace>,
    /// Per layer (bottom then top): accumulators and the activations the tables returned.
    pub layers: Vec<LayerTrace>,
    /// The output layer's accumulator (sanitised when the model has a sanitiser), with the
    /// simulated noise when simulating.
    pub logit_numerator: f64,
}

/// One layer of a [`Trace`].
#[derive(Clone, Debug, PartialEq)]
pub struct LayerTrace {
    /// `W x + b`, one per row of the layer's weights.
    pub accumulators: Vec<i64>,
    /// Empty for the output layer, unless the model sanitises its output: then the sanitised
    /// numerator (the centre of the output accumulator's box).
    pub activations: Vec<i64>,
}

/// Whether the reference runs exactly or with simulated bootstrap noise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Execution {
    /// Exact integer semantics: what a noiseless encrypted executor computes.
    Exact,
    /// Adds the noise model's Gaussian noise before every bootstrap and to the output, seeded
    /// per row by `seed ^ row` so runs are reproducible.
    Simulate {
        /// Seed of the noise, mixed with each row's index.
        seed: u64,
    },
}

/// Noise drawn once and shared by every candidate of a ranked request: a standard normal times
/// the weight norm of the once-computed bootstrap outputs a read sums ([`SharedNoise::NONE`]
/// for a single row, whose noise is all drawn per read). A `whole_read` is one blind rotation
/// read at every candidate's offset: its keyswitch and modulus switch noise is shared too, and
/// nothing is drawn per candidate.
#[derive(Clone, Copy)]
pub(crate) struct SharedNoise {
    pub(crate) normal: f64,
    pub(crate) norm: f64,
    pub(crate) whole_read: bool,
}

impl SharedNoise {
    /// No shared noise.
    pub(crate) const NONE: SharedNoise = SharedNoise {
        normal: 0.0,
        norm: 0.0,
        whole_read: false,
    };

    /// The shared part of a bootstrap read, in `1/(2N)` units.
    fn read_noise(self, model: &QuantizedModel) -> f64 {
        match self.whole_read {
            true => self.normal * model.noise.bootstrap_input_sd(self.norm),
            false => self.normal * self.norm * model.noise.bootstrap_output_sd,
        }
    }

    /// The part drawn per read (per candidate), in `1/(2N)` units: none for a whole read.
    fn fresh_noise(self, model: &QuantizedModel, own: f64, rng: &mut SplitMix64) -> f64 {
        match self.whole_read {
            true => 0.0,
            false => rng.normal() * model.noise.bootstrap_input_sd(own),
        }
    }
}

impl QuantizedModel {
    /// The exact logit numerator of one row (integer inputs from [`QuantizedModel::quantize_input`]).
    pub fn forward(&self, dense: &[i64], ids: &[u32]) -> Result<i64> {
        let trace = self.trace(dense, ids, Execution::Exact, 0)?;
        Ok(trace.logit_numerator as i64)
    }

    /// The logit (`numerator x logit_scale`) of one row of raw features.
    pub fn logit(&self, dense: &[f32], ids: &[u32], execution: Execution, row: u64) -> Result<f64> {
        let trace = self.trace(&self.quantize_input(dense), ids, execution, row)?;
        Ok(trace.logit_numerator * self.logit_scale)
    }

    /// Runs one row, recording every layer. `row` seeds the simulated noise.
    pub fn trace(
        &self,
        dense: &[i64],
        ids: &[u32],
        execution: Execution,
        row: u64,
    ) -> Result<Trace> {
        check_row(&self.config, dense.len(), ids)?;
        let input_limit = value_limit(self.input.bits) + 1;
        if dense.iter().any(|x| x.abs() > input_limit) {
            return Err(DlrmError::shape(format!(
                "dense inputs must fit {} signed bits",
                self.input.bits
            )));
        }
        let mut noise = match execution {
            Execution::Exact => None,
            Execution::Simulate { seed } => {
                Some(SplitMix64::new(seed ^ row.wrapping_mul(0x9e37_79b9)))
            }
        };
        let mut layers = Vec::with_capacity(self.bottom.len() + self.top.len());
        let mut x = dense.to_vec();
        for k in 0..self.bottom.len() {
            x = self.hidden_layer(k, &x, noise.as_mut(), &mut layers);
        }
        let d = self.config.embedding_dim;
        for ((table, spec), &id) in self.tables.iter().zip(&self.config.tables).zip(ids) {
            x.extend(table.lookup(spec, d, id));
        }
        let interaction = match &self.dot {
            None => None,
            Some(dot) => {
                let layout = DotLayout::of(&self.config);
                let (inputs, squares, features) =
                    dot.interact(&layout, &x, |u, reads| match noise.as_mut() {
                        None => dot.square.apply(u),
                        Some(rng) => {
                            let own = reads.sqrt();
                            self.noisy_activation(&dot.square, u, SharedNoise::NONE, own, rng)
                        }
                    });
                x.truncate(self.config.bottom_output());
                x.extend(features);
                Some(LayerTrace {
                    accumulators: inputs,
                    activations: squares,
                })
            }
        };
        let top_input = x.clone();
        let (output, hidden) = self.top.split_last().expect("validated: top is not empty");
        for k in 0..hidden.len() {
            x = self.hidden_layer(self.bottom.len() + k, &x, noise.as_mut(), &mut layers);
        }
        let accumulators = output.accumulate(&x);
        let (activations, logit_numerator) = self.output(
            accumulators[0],
            SharedNoise::NONE,
            self.output_noise_norm(),
            noise.as_mut(),
        );
        layers.push(LayerTrace {
            accumulators,
            activations,
        });
        Ok(Trace {
            top_input,
            interaction,
            layers,
            logit_numerator,
        })
    }

    /// The output layer's sanitised value (empty without a sanitiser) and the logit numerator
    /// for its accumulator `acc`: without a sanitiser `acc` plus the noise the output row
    /// carries; with one, the centre of the box a bootstrap reads (with the read noise) plus
    /// the bootstrap's fresh output noise. The noise is `shared` (drawn once for every
    /// candidate of a ranked request; none for one row) plus a fresh part for the bootstrap
    /// outputs of weight norm `own` the row sums.
    pub(crate) fn output(
        &self,
        acc: i64,
        shared: SharedNoise,
        own: f64,
        noise: Option<&mut SplitMix64>,
    ) -> (Vec<i64>, f64) {
        let bits = self.output_acc_bits;
        match (&self.output_sanitiser, noise) {
            (None, None) => (Vec::new(), acc as f64),
            (None, Some(rng)) => {
                let shared = shared.normal * self.noise.accumulator_sd(shared.norm, bits);
                let own = self.noise.accumulator_sd(own, bits);
                (Vec::new(), acc as f64 + shared + rng.normal() * own)
            }
            (Some(sanitiser), None) => {
                let centre = sanitiser.apply(acc);
                (vec![centre], centre as f64)
            }
            (Some(sanitiser), Some(rng)) => {
                let units = self.noise_units(sanitiser.box_shift, sanitiser.lut_bits);
                let noise = shared.read_noise(self) + shared.fresh_noise(self, own, rng);
                let centre =
                    sanitiser.centre(sanitiser.noisy_box_index(acc as f64 + noise * units));
                let fresh = self.noise.accumulator_sd(1.0, bits);
                (vec![centre], centre as f64 + rng.normal() * fresh)
            }
        }
    }

    /// Standard deviation of the noise the returned logit numerator carries around the exact
    /// reference's, in numerator units. Without a sanitiser: the output row's norm over the
    /// columns fed by bootstraps times the bootstrap output noise (what `simulate` adds to the
    /// output). With one: the noise its bootstrap reads the numerator with (which can move the
    /// result to a neighbouring box centre) combined with the bootstrap's fresh output noise.
    pub fn output_noise_sd(&self) -> f64 {
        match &self.output_sanitiser {
            None => self.weighted_output_sd(),
            Some(_) => self
                .sanitiser_read_sd()
                .hypot(self.noise.accumulator_sd(1.0, self.output_acc_bits)),
        }
    }

    /// The output row's norm over the columns fed by bootstraps times the bootstrap output
    /// noise, in numerator units.
    fn weighted_output_sd(&self) -> f64 {
        self.noise
            .accumulator_sd(self.output_noise_norm(), self.output_acc_bits)
    }

    /// The output row's weight norm over the columns fed by bootstraps.
    pub(crate) fn output_noise_norm(&self) -> f64 {
        let index = self.bottom.len() + self.top.len() - 1;
        let output = self.top.last().expect("validated: top is not empty");
        output.noise_norm(0, &self.column_noises(index))
    }

    /// Standard deviation, in numerator units, of the noise the sanitiser's bootstrap reads the
    /// numerator with (the weighted output noise plus keyswitch and modulus switch); 0 without
    /// a sanitiser.
    pub fn sanitiser_read_sd(&self) -> f64 {
        self.output_sanitiser.as_ref().map_or(0.0, |s| {
            self.noise.bootstrap_input_sd(self.output_noise_norm())
                * self.noise_units(s.box_shift, s.lut_bits)
        })
    }

    /// Layer `index` (bottom, then top) and its activations, recorded in `layers`.
    pub(crate) fn hidden_layer(
        &self,
        index: usize,
        x: &[i64],
        noise: Option<&mut SplitMix64>,
        layers: &mut Vec<LayerTrace>,
    ) -> Vec<i64> {
        let layer = self
            .bottom
            .iter()
            .chain(&self.top)
            .nth(index)
            .expect("a layer index");
        let table = layer
            .activation
            .as_ref()
            .expect("validated: hidden layers have tables");
        let accumulators = layer.accumulate(x);
        let activations: Vec<i64> = match noise {
            None => accumulators.iter().map(|&a| table.apply(a)).collect(),
            Some(rng) => {
                let noises = self.column_noises(index);
                accumulators
                    .iter()
                    .enumerate()
                    .map(|(r, &a)| {
                        let norm = layer.noise_norm(r, &noises);
                        self.noisy_activation(table, a, SharedNoise::NONE, norm, rng)
                    })
                    .collect()
            }
        };
        layers.push(LayerTrace {
            accumulators,
            activations: activations.clone(),
        });
        activations
    }

    /// What a bootstrap of `table` returns for accumulator `acc`, whose noise is `shared`
    /// (drawn once for every candidate of a ranked request; none for one row) plus a fresh part
    /// for the bootstrap outputs of weight norm `own` it sums (and the keyswitch and modulus
    /// switch), drawn from `rng`.
    pub(crate) fn noisy_activation(
        &self,
        table: &ActivationTable,
        acc: i64,
        shared: SharedNoise,
        own: f64,
        rng: &mut SplitMix64,
    ) -> i64 {
        let units = self.noise_units(table.box_shift, table.lut_bits);
        let noise = shared.read_noise(self) + shared.fresh_noise(self, own, rng);
        i64::from(table.entries[table.noisy_box_index(acc as f64 + noise * units)])
    }

    /// One unit of `1/(2N)` in accumulator units, for a table of `2^lut_bits` boxes of
    /// `2^box_shift` accumulator units: a box is `N / 2^lut_bits` noise units wide.
    fn noise_units(&self, box_shift: u32, lut_bits: u32) -> f64 {
        (1u64 << (box_shift + lut_bits)) as f64 / self.noise.polynomial_size as f64
    }

    /// How far, in accumulator units, a table of `2^lut_bits` boxes of `2^box_shift` units
    /// reads from where adding the plaintext `offset` after the blind rotation puts it: the
    /// offset moves the read by whole steps of `1/(2N)`, rounded to the nearest, ties upwards
    /// (`fhe::RotatedTables::offset_steps`); 0 when a unit is a whole number of steps.
    pub(crate) fn step_rounding(&self, box_shift: u32, lut_bits: u32, offset: i64) -> i64 {
        let units_per_step_log =
            (box_shift + lut_bits) as i64 - i64::from(self.noise.polynomial_size.trailing_zeros());
        if units_per_step_log <= 0 {
            return 0;
        }
        let shift = units_per_step_log as u32;
        let steps = (offset + (1 << (shift - 1))) >> shift;
        (steps << shift) - offset
    }

    /// Logits of every row of a dataset split, in parallel.
    pub fn logits(&self, data: &datasets::SplitData, execution: Execution) -> Result<Vec<f64>> {
        (0..data.rows())
            .into_par_iter()
            .map(|r| {
                self.logit(
                    data.dense_row(r),
                    data.categorical_row(r),
                    execution,
                    r as u64,
                )
            })
            .collect()
    }

    /// How often bootstrap noise leaves the predicted class (`logit > 0`) as the exact reference
    /// has it: over the rows of `data`, the mean of [`QuantizedModel::simulated_class_kept`]
    /// with seeds `0..runs`. What an encrypted run's agreement with the reference should be.
    pub fn simulated_class_agreement(&self, data: &datasets::SplitData, runs: u64) -> Result<f64> {
        if runs == 0 || data.rows() == 0 {
            return Err(DlrmError::shape(
                "class agreement needs at least one run and one row",
            ));
        }
        let kept = (0..data.rows())
            .into_par_iter()
            .map(|r| {
                let dense = self.quantize_input(data.dense_row(r));
                self.simulated_class_kept(&dense, data.categorical_row(r), r as u64, 0..runs)
            })
            .collect::<Result<Vec<f64>>>()?;
        Ok(kept.iter().sum::<f64>() / data.rows() as f64)
    }

    /// The fraction of seeded `simulate` passes of one row (integer inputs; `row` seeds the
    /// noise as in [`QuantizedModel::trace`]) whose class (`numerator > 0`) is the exact
    /// reference's; 1 when `seeds` is empty.
    pub fn simulated_class_kept(
        &self,
        dense: &[i64],
        ids: &[u32],
        row: u64,
        seeds: impl IntoIterator<Item = u64>,
    ) -> Result<f64> {
        let positive = |execution| {
            self.trace(dense, ids, execution, row)
                .map(|trace| trace.logit_numerator > 0.0)
        };
        let reference = positive(Execution::Exact)?;
        let (mut kept, mut passes) = (0usize, 0usize);
        for seed in seeds {
            kept += usize::from(positive(Execution::Simulate { seed })? == reference);
            passes += 1;
        }
        Ok(if passes == 0 {
            1.0
        } else {
            kept as f64 / passes as f64
        })
    }
}
