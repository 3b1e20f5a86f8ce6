//! The integer reference of a ranked request: one user's private inputs (dense features and the
//! private tables' ids) and K candidates' public inputs (the public tables' ids). The private
//! part runs once: the bottom MLP, the private lookups, the first top layer's bias plus its
//! private columns (the bottom output and, for concat, the private embeddings; for dot, the
//! pair features of two private vectors, whose squares and the private vectors' norms are
//! computed once). Per candidate runs only what reads a public input: the public lookups, the
//! public columns of the first top layer (for dot, the pairs with a public vector) and every
//! layer after it. Exact results equal [`QuantizedModel::forward`] on each merged row; in
//! `simulate` mode the private part's bootstrap noise is drawn once and shared by all
//! candidates, as one set of ciphertexts would carry it. For dot, a pair of a private and a
//! public vector is read from blind rotations of the square table by the private entries, done
//! once: each entry's whole read noise is shared by its own square and every candidate's read,
//! and a read lands where its offset (the public entry) rounds to whole steps of `1/(2N)`.

use crate::activation::ActivationTable;
use crate::dot::DotLayout;
use crate::integer_model::value_limit;
use crate::reference::SharedNoise;
use crate::rng::SplitMix64;
use crate::weights::{check_row, dot_pairs};
use crate::{DlrmError, Execution, Interaction, LayerTrace, QuantizedModel, Result, Role};

/// Every value of one ranked request: what ran once, and what ran per candidate.
#[derive(Clone, Debug, PartialEq)]
pub struct RankTrace {
    /// The bottom MLP's layers, run once.
    pub bottom: Vec<LayerTrace>,
    /// The first top layer's bias plus its private columns' products, computed once.
    pub private_accumulators: Vec<i64>,
    /// One per candidate, in request order.
    pub candidates: Vec<CandidateTrace>,
}

/// What ran for one candidate of a ranked request.
#[derive(Clone, Debug, PartialEq)]
pub struct CandidateTrace {
    /// The first top layer's input, as on the merged row (its private columns are the same
    /// values in every candidate: they were computed once).
    pub top_input: Vec<i64>,
    /// The top layers' accumulators and activations.
    pub layers: Vec<LayerTrace>,
    /// The logit numerator, with the simulated noise when simulating.
    pub logit_numerator: f64,
}

impl QuantizedModel {
    /// The exact logit numerators of a ranked request: `dense` (from
    /// [`QuantizedModel::quantize_input`]) and `private_ids` (one per private table, in table
    /// order) once, and per candidate its `public_ids` (one per public table, in table order).
    /// Candidate `k`'s numerator is [`QuantizedModel::forward`] of the merged row.
    pub fn rank(
        &self,
        dense: &[i64],
        private_ids: &[u32],
        candidates: &[Vec<u32>],
    ) -> Result<Vec<i64>> {
        let trace = self.rank_trace(dense, private_ids, candidates, Execution::Exact, 0)?;
        Ok(trace
            .candidates
            .iter()
            .map(|c| c.logit_numerator as i64)
            .collect())
    }

    /// Runs a ranked request, recording what ran once and per candidate. `request` seeds the
    /// simulated noise: the private part's draws come from `seed` and `request`, each
    /// candidate's from those and its position.
    pub fn rank_trace(
        &self,
        dense: &[i64],
        private_ids: &[u32],
        candidates: &[Vec<u32>],
        execution: Execution,
        request: u64,
    ) -> Result<RankTrace> {
        let c = &self.config;
        if candidates.is_empty() {
            return Err(DlrmError::shape(
                "a ranked request needs at least one candidate",
            ));
        }
        for (k, public) in candidates.iter().enumerate() {
            let ids = c
                .merged_ids(private_ids, public)
                .map_err(|e| DlrmError::shape(format!("candidate {k}: {e}")))?;
            check_row(c, dense.len(), &ids)
                .map_err(|e| DlrmError::shape(format!("candidate {k}: {e}")))?;
        }
        let input_limit = value_limit(self.input.bits) + 1;
        if dense.iter().any(|x| x.abs() > input_limit) {
            return Err(DlrmError::shape(format!(
                "dense inputs must fit {} signed bits",
                self.input.bits
            )));
        }
        let base_seed = match execution {
            Execution::Exact => None,
            Execution::Simulate { seed } => Some(seed ^ request.wrapping_mul(0x9e37_79b9)),
        };
        let mut once = base_seed.map(SplitMix64::new);

        // The private part.
        let mut bottom = Vec::with_capacity(self.bottom.len());
        let mut x = dense.to_vec();
        for k in 0..self.bottom.len() {
            x = self.hidden_layer(k, &x, once.as_mut(), &mut bottom);
        }
        let d = c.embedding_dim;
        let tables = c.tables.len();
        let private = |v: usize| c.roles.vector_is_private(v);
        let mut vectors: Vec<Vec<i64>> = vec![x];
        let mut private_ids = private_ids.iter();
        for (t, (table, spec)) in self.tables.iter().zip(&c.tables).enumerate() {
            vectors.push(match c.roles.table_role(t) {
                Role::Private => table.lookup(spec, d, *private_ids.next().expect("checked")),
                Role::Public => Vec::new(),
            });
        }
        let first = &self.top[0];
        let width = c.interaction_output();
        let (shared_noises, own_noises) = self.ranked_column_noises();
        // The first top layer's input with the columns computed once; public columns are 0.
        let mut template = vectors[0].clone();
        let mut pair_once: Vec<Option<i64>> = Vec::new();
        let mut norms: Vec<Option<i64>> = vec![None; tables + 1];
        // Per private vector and entry, the noise of one blind rotation of the square table
        // by that entry: its whole read, drawn once, serves the entry's own square (offset 0)
        // and every candidate's pair with a public vector (offset: the public entry).
        let mut rotations: Vec<Vec<SharedNoise>> = vec![Vec::new(); tables + 1];
        let layout = DotLayout::of(c);
        match (&self.dot, c.interaction) {
            (Some(dot), Interaction::Dot) => {
                let square = &dot.square;
                for v in (0..=tables).filter(|&v| private(v)) {
                    let norm = if v == 0 { 1.0 } else { 0.0 };
                    rotations[v] = (0..d)
                        .map(|_| SharedNoise {
                            normal: once.as_mut().map_or(0.0, |rng| rng.normal()),
                            norm,
                            whole_read: true,
                        })
                        .collect();
                }
                for v in (0..=tables).filter(|&v| private(v)) {
                    norms[v] = Some(if layout.table_norms()[v] {
                        dot.squared_norm(&vectors[v])
                    } else {
                        (vectors[v].iter().zip(&rotations[v]))
                            .map(|(&u, &read)| self.read(square, u, read, 0.0, once.as_mut()))
                            .sum()
                    });
                }
                for (i, j) in dot_pairs(tables + 1) {
                    let feature = (private(i) && private(j)).then(|| {
                        let reads = if j == 0 { 1.0 } else { 0.0 };
                        let sums: i64 = (0..d)
                            .map(|k| {
                                let u = vectors[i][k] + vectors[j][k];
                                self.read(square, u, SharedNoise::NONE, reads, once.as_mut())
                            })
                            .sum();
                        sums - norms[i].expect("private") - norms[j].expect("private")
                    });
                    template.push(feature.unwrap_or(0));
                    pair_once.push(feature);
                }
            }
            _ => {
                for (v, vector) in vectors.iter().enumerate().skip(1) {
                    if private(v) {
                        template.extend_from_slice(vector);
                    } else {
                        template.extend(std::iter::repeat_n(0, d));
                    }
                }
            }
        }
        debug_assert_eq!(template.len(), width);
        // The first top layer's columns computed per candidate.
        let per_candidate: Vec<usize> = match c.interaction {
            Interaction::Concat => (1..=tables)
                .filter(|&v| !private(v))
                .flat_map(|v| {
                    let at = c.bottom_output() + (v - 1) * d;
                    at..at + d
                })
                .collect(),
            Interaction::Dot => (pair_once.iter().enumerate())
                .filter(|(_, once)| once.is_none())
                .map(|(p, _)| c.bottom_output() + p)
                .collect(),
        };
        let private_accumulators = first.accumulate(&template);
        // For concat, the first top layer's accumulators differ between candidates only by a
        // plaintext: one blind rotation per row is read at every candidate's offset, and the
        // whole read's noise is shared.
        let whole_read = c.interaction == Interaction::Concat;
        let shared: Vec<SharedNoise> = (0..first.rows)
            .map(|r| SharedNoise {
                normal: once.as_mut().map_or(0.0, |rng| rng.normal()),
                norm: first.noise_norm(r, &shared_noises),
                whole_read,
            })
            .collect();

        // Per candidate.
        let mut traces = Vec::with_capacity(candidates.len());
        for (k, public) in candidates.iter().enumerate() {
            let mut rng = base_seed
                .map(|s| SplitMix64::new(s ^ (k as u64 + 1).wrapping_mul(0xd1b5_4a32_d192_ed03)));
            let mut vectors = vectors.clone();
            let mut public = public.iter();
            for (t, (table, spec)) in self.tables.iter().zip(&c.tables).enumerate() {
                if c.roles.table_role(t) == Role::Public {
                    vectors[t + 1] = table.lookup(spec, d, *public.next().expect("checked"));
                }
            }
            let mut top_input = template.clone();
            match &self.dot {
                Some(dot) => {
                    let square = &dot.square;
                    let mut norms = norms.clone();
                    for v in (0..=tables).filter(|&v| !private(v)) {
                        // In the clear: the server knows public vectors.
                        norms[v] = Some(if layout.table_norms()[v] {
                            dot.squared_norm(&vectors[v])
                        } else {
                            vectors[v].iter().map(|&u| square.apply(u)).sum()
                        });
                    }
                    let b = c.bottom_output();
                    for (p, (i, j)) in dot_pairs(tables + 1).enumerate() {
                        if pair_once[p].is_some() {
                            continue;
                        }
                        // A private and a public vector: the private entry's rotated square
                        // table read at the public entry, which lands on whole steps of
                        // 1/(2N) (simulate reads where it lands).
                        let (own, other) = if private(i) { (i, j) } else { (j, i) };
                        let sums: i64 = (0..d)
                            .map(|q| {
                                let u = vectors[i][q] + vectors[j][q];
                                if private(own) {
                                    let offset = vectors[other][q];
                                    let landed = match rng.is_some() {
                                        true => {
                                            u + self.step_rounding(
                                                square.box_shift,
                                                square.lut_bits,
                                                offset,
                                            )
                                        }
                                        false => u,
                                    };
                                    let read = rotations[own][q];
                                    self.read(square, landed, read, 0.0, rng.as_mut())
                                } else {
                                    square.apply(u)
                                }
                            })
                            .sum();
                        top_input[b + p] = sums - norms[i].expect("set") - norms[j].expect("set");
                    }
                }
                None => {
                    for v in (1..=tables).filter(|&v| !private(v)) {
                        let at = c.bottom_output() + (v - 1) * d;
                        top_input[at..at + d].copy_from_slice(&vectors[v]);
                    }
                }
            }
            // The public columns' share of the first top layer, added to the private share.
            let accumulators: Vec<i64> = (0..first.rows)
                .map(|r| {
                    let row = &first.weights[r * first.cols..(r + 1) * first.cols];
                    private_accumulators[r]
                        + (per_candidate.iter())
                            .map(|&col| i64::from(row[col]) * top_input[col])
                            .sum::<i64>()
                })
                .collect();
            // A rotated read lands on whole steps of 1/(2N): simulate reads where it lands.
            let offsets: Vec<i64> = match (whole_read, rng.is_some()) {
                (true, true) => (0..first.rows)
                    .map(|r| self.first_read_rounding(accumulators[r] - private_accumulators[r]))
                    .collect(),
                _ => vec![0; first.rows],
            };
            let mut trace = self.candidate_top(
                top_input,
                accumulators,
                &offsets,
                &shared,
                &own_noises,
                rng.as_mut(),
            );
            // From two candidates on, the answer comes back packed (with a packing key).
            if let (Some(rng), true) = (rng.as_mut(), candidates.len() > 1) {
                let sd = self.noise.packed_answer_numerator_sd(self.output_acc_bits);
                trace.logit_numerator += rng.normal() * sd;
            }
            traces.push(trace);
        }
        Ok(RankTrace {
            bottom,
            private_accumulators,
            candidates: traces,
        })
    }

    /// [`QuantizedModel::step_rounding`] of the first top layer's read (hidden table, or the
    /// output sanitiser's for a one-layer top MLP; 0 when nothing reads it) for a candidate's
    /// plaintext share `public`.
    fn first_read_rounding(&self, public: i64) -> i64 {
        let boxes = match (&self.top[0].activation, &self.output_sanitiser) {
            (Some(table), _) => Some((table.box_shift, table.lut_bits)),
            (None, Some(sanitiser)) if self.top.len() == 1 => {
                Some((sanitiser.box_shift, sanitiser.lut_bits))
            }
            (None, _) => None,
        };
        boxes.map_or(0, |(box_shift, lut_bits)| {
            self.step_rounding(box_shift, lut_bits, public)
        })
    }

    /// One candidate's top MLP from its first top layer's accumulators, whose reads land
    /// `offsets` away in `simulate` (see [`QuantizedModel::step_rounding`]).
    fn candidate_top(
        &self,
        top_input: Vec<i64>,
        accumulators: Vec<i64>,
        offsets: &[i64],
        shared: &[SharedNoise],
        own_noises: &[f64],
        mut rng: Option<&mut SplitMix64>,
    ) -> CandidateTrace {
        let first = &self.top[0];
        let own_norm = |r: usize| first.noise_norm(r, own_noises);
        let mut layers = Vec::with_capacity(self.top.len());
        if self.top.len() == 1 {
            let (activations, logit_numerator) =
                self.output(accumulators[0] + offsets[0], shared[0], own_norm(0), rng);
            layers.push(LayerTrace {
                accumulators,
                activations,
            });
            return CandidateTrace {
                top_input,
                layers,
                logit_numerator,
            };
        }
        let table = first
            .activation
            .as_ref()
            .expect("validated: hidden layers have tables");
        let mut x: Vec<i64> = accumulators
            .iter()
            .enumerate()
            .map(|(r, &a)| {
                let at = a + offsets[r];
                self.read(table, at, shared[r], own_norm(r), rng.as_deref_mut())
            })
            .collect();
        layers.push(LayerTrace {
            accumulators,
            activations: x.clone(),
        });
        let hidden = self.top.len() - 1;
        for k in 1..hidden {
            x = self.hidden_layer(self.bottom.len() + k, &x, rng.as_deref_mut(), &mut layers);
        }
        let accumulators = self.top[hidden].accumulate(&x);
        let (activations, logit_numerator) = self.output(
            accumulators[0],
            SharedNoise::NONE,
            self.output_noise_norm(),
            rng,
        );
        layers.push(LayerTrace {
            accumulators,
            activations,
        });
        CandidateTrace {
            top_input,
            layers,
            logit_numerator,
        }
    }

    /// What a bootstrap of `table` returns for `acc` (see
    /// [`QuantizedModel::noisy_activation`]), exactly when not simulating.
    fn read(
        &self,
        table: &ActivationTable,
        acc: i64,
        shared: SharedNoise,
        own: f64,
        rng: Option<&mut SplitMix64>,
    ) -> i64 {
        match rng {
            None => table.apply(acc),
            Some(rng) => self.noisy_activation(table, acc, shared, own, rng),
        }
    }

    /// The first top layer's column noises (see [`QuantizedModel::column_noises`]) split into
    /// the bootstrap outputs computed once (shared by all candidates) and those computed per
    /// candidate. Columns the server computes in the clear carry none.
    fn ranked_column_noises(&self) -> (Vec<f64>, Vec<f64>) {
        let c = &self.config;
        let b = c.bottom_output();
        let mut shared = vec![1.0; b];
        let mut own = vec![0.0; b];
        match c.interaction {
            Interaction::Concat => {
                let rest = c.interaction_output() - b;
                shared.extend(std::iter::repeat_n(0.0, rest));
                own.extend(std::iter::repeat_n(0.0, rest));
            }
            Interaction::Dot => {
                let layout = DotLayout::of(c);
                let d = c.embedding_dim as f64;
                let private = |v: usize| c.roles.vector_is_private(v);
                let squared = |v: usize| if layout.table_norms()[v] { 0.0 } else { d };
                for (i, j) in dot_pairs(c.tables.len() + 1) {
                    let (s, o) = match (private(i), private(j)) {
                        (true, true) => (d + squared(i) + squared(j), 0.0),
                        (true, false) => (squared(i), d),
                        (false, true) => (squared(j), d),
                        (false, false) => (0.0, 0.0),
                    };
                    shared.push(s);
                    own.push(o);
                }
            }
        }
        (shared, own)
    }
}
