//! Ranked requests of dot-interaction models. A pair of a private vector `v_i` and a public one
//! `v_j` needs `square(v_i[k] + v_j[k])`, where `v_i[k]` is encrypted once per request and
//! `v_j[k]` is the candidate's plaintext: the square table is blind-rotated once by each private
//! entry (minus the table's `lo`, as the single-row sums GEMM places it) and read at offset
//! `v_j[k]` for every candidate (a sample extraction, no bootstrap); read at offset 0 it gives
//! the entry's own square. Pairs of two private vectors are squared once; pairs of two public
//! vectors and the public vectors' norms are computed in the clear. The first top layer's
//! accumulators then hold per-candidate ciphertexts, so the whole top MLP runs per candidate.

use dlrm::{DotInteraction, DotLayout, QuantizedModel, dot_pairs};
use fhe::{Encoding, LookupTable, LweBatch, LweDenseLayer, RotatedTables, ServerKey};

use crate::dot_stage::{InteractionInputs, matrix};
use crate::error::{InferError, Result};
use crate::plan::FhePlan;
use crate::scales::{encoding, shifted_bias};

/// The dot interaction's part of a ranked request.
pub(super) struct RankedDot {
    /// The private vectors' interaction inputs (the bottom copy, then the private lookups'
    /// outputs) to the sums of two private vectors' entries, minus the square table's `lo`;
    /// `None` when the bottom output is the only private vector.
    private_sums: Option<LweDenseLayer>,
    /// The same inputs to every private vector's entries, minus `lo`: the rotations' inputs.
    entries: LweDenseLayer,
    /// The private entries' squares, the private pairs' squares and the interaction inputs (for
    /// the tables' norms) to the private pairs' features, then every private vector's norm.
    once_features: LweDenseLayer,
    /// The bottom output and those to the first top layer's accumulators computed once: its
    /// bias, the bottom output's and the private pairs' columns, and the private vectors' norms
    /// (`-N_i`) in the pairs with a public vector.
    first_once: LweDenseLayer,
    /// One candidate's reads (per public vector, per private vector, per entry) to each pair's
    /// sum of squares `sum_k square(v_i[k] + v_j[k])`.
    cross_sums: LweDenseLayer,
    /// Those sums to the first top layer's accumulators (its weights on those pairs).
    cross_first: LweDenseLayer,
    /// The first top layer's weights on the pair features, row by row (for the plaintext share
    /// of the pairs with a public vector).
    pair_weights: Vec<i64>,
    vectors: usize,
    /// Per vector: whether it is private.
    private: Vec<bool>,
    table_norms: Vec<bool>,
    dot: DotInteraction,
    /// The squares' input encoding, at which the offsets are read.
    square_input: Encoding,
}

impl RankedDot {
    pub(super) fn new(model: &QuantizedModel, plan: &FhePlan) -> Result<Self> {
        let c = &model.config;
        let (Some(dot), Some(step)) = (&model.dot, &plan.interaction) else {
            return Err(InferError::Unsupported(
                "a dot model without its interaction plan".into(),
            ));
        };
        let layout = DotLayout::of(c);
        let (vectors, d, b) = (c.tables.len() + 1, c.embedding_dim, c.bottom_output());
        let private: Vec<bool> = (0..vectors).map(|v| c.roles.vector_is_private(v)).collect();
        let held: Vec<usize> = (0..vectors).filter(|&v| private[v]).collect();
        let position = |v: usize| held.iter().position(|&h| h == v).expect("a private vector");
        let private_pairs: Vec<(usize, usize)> = dot_pairs(vectors)
            .filter(|&(i, j)| private[i] && private[j])
            .collect();
        let cross: Vec<(usize, usize)> = dot_pairs(vectors)
            .filter(|&(i, j)| private[i] != private[j])
            .collect();
        let inputs = InteractionInputs::new(&layout, plan.interface.lookup_scale_log, step, |v| {
            private[v]
        })?;
        let first = &model.top[0];
        let layer = &plan.layers[plan.bottom_layers];
        if layer.input_scale_log != step.activation.output_scale_log {
            return Err(InferError::Unsupported(format!(
                "pair features at 2^{} do not meet the first top layer's inputs at 2^{}",
                step.activation.output_scale_log, layer.input_scale_log
            )));
        }
        let pair_index = |i: usize, j: usize| {
            let (i, j) = (i.max(j), i.min(j));
            i * (i - 1) / 2 + j
        };
        let weight = |r: usize, col: usize| i64::from(first.weights[r * first.cols + col]);
        // Linear maps from the values the layers read; `matrix` turns each into its weights.
        let square_bias = |rows: usize| {
            shifted_bias(
                &vec![0; rows],
                Some((dot.square.lo, dot.square.box_shift)),
                step.input_scale_log,
            )
        };
        let layer_of = |width: usize, map: &dyn Fn(&[i64]) -> Vec<i64>| {
            let (rows, weights) = matrix(width, map);
            let (bias, bias_encoding) = square_bias(rows);
            LweDenseLayer::new(rows, width, weights, bias, bias_encoding)
        };
        let private_sums = match private_pairs.is_empty() {
            true => None,
            false => Some(layer_of(inputs.len, &|x| {
                let split = inputs.split(x);
                (private_pairs.iter())
                    .flat_map(|&(i, j)| {
                        let (vi, vj) = (&split[position(i)].0, &split[position(j)].0);
                        (0..d).map(move |k| vi[k] + vj[k])
                    })
                    .collect()
            })?),
        };
        let entries = layer_of(inputs.len, &|x| {
            (inputs.split(x).into_iter())
                .flat_map(|(values, _)| values)
                .collect()
        })?;

        // The private pairs' features and the private vectors' norms, then the first top layer
        // on them (two GEMMs: their product would be dense).
        let squares = private_pairs.len() * d;
        let pair_features = encoding(layer.input_scale_log);
        let (rows, weights) = matrix(held.len() * d + squares + inputs.len, &|x| {
            let (entry_squares, rest) = x.split_at(held.len() * d);
            let (pair_squares, rest) = rest.split_at(squares);
            let norms: Vec<i64> = (inputs.split(rest).into_iter())
                .enumerate()
                .map(|(p, (_, norm))| {
                    norm.unwrap_or_else(|| entry_squares[p * d..(p + 1) * d].iter().sum())
                })
                .collect();
            (pair_squares.chunks_exact(d.max(1)).zip(&private_pairs))
                .map(|(s, &(i, j))| s.iter().sum::<i64>() - norms[position(i)] - norms[position(j)])
                .chain(norms.iter().copied())
                .collect()
        });
        let once_features = LweDenseLayer::new(
            rows,
            held.len() * d + squares + inputs.len,
            weights,
            vec![0; rows],
            pair_features,
        )?;
        let (rows, weights) = matrix(b + private_pairs.len() + held.len(), &|x| {
            let (bottom, rest) = x.split_at(b);
            let (private_features, norms) = rest.split_at(private_pairs.len());
            let mut features = vec![0; layout.pairs()];
            for (&f, &(i, j)) in private_features.iter().zip(&private_pairs) {
                features[pair_index(i, j)] = f;
            }
            for &(i, j) in &cross {
                features[pair_index(i, j)] = -norms[position(if private[i] { i } else { j })];
            }
            (0..first.rows)
                .map(|r| {
                    let columns = bottom.iter().chain(&features).enumerate();
                    columns.map(|(col, x)| weight(r, col) * x).sum()
                })
                .collect()
        });
        let boxes = layer.activation.map(|a| (a.lo, a.box_shift));
        let (bias, bias_encoding) = shifted_bias(&first.bias, boxes, layer.input_scale_log);
        let first_once = LweDenseLayer::new(
            rows,
            b + private_pairs.len() + held.len(),
            weights,
            bias,
            bias_encoding,
        )?;

        // Per candidate: reads ordered by public vector, then private vector, then entry.
        let public: Vec<usize> = (0..vectors).filter(|&v| !private[v]).collect();
        let read_pairs: Vec<(usize, usize)> = (public.iter())
            .flat_map(|&q| held.iter().map(move |&p| (q, p)))
            .collect();
        let (rows, weights) = matrix(read_pairs.len() * d, &|x| {
            x.chunks_exact(d.max(1)).map(|s| s.iter().sum()).collect()
        });
        let cross_sums = LweDenseLayer::new(
            rows,
            read_pairs.len() * d,
            weights,
            vec![0; rows],
            pair_features,
        )?;
        let (rows, weights) = matrix(read_pairs.len(), &|s| {
            (0..first.rows)
                .map(|r| {
                    (read_pairs.iter().zip(s))
                        .map(|(&(q, p), x)| weight(r, b + pair_index(q, p)) * x)
                        .sum()
                })
                .collect()
        });
        let cross_first = LweDenseLayer::new(
            rows,
            read_pairs.len(),
            weights,
            vec![0; rows],
            pair_features,
        )?;
        let pair_weights = (0..first.rows)
            .flat_map(|r| (0..layout.pairs()).map(move |p| weight(r, b + p)))
            .collect();
        Ok(RankedDot {
            private_sums,
            entries,
            once_features,
            first_once,
            cross_sums,
            cross_first,
            pair_weights,
            vectors,
            private,
            table_norms: layout.table_norms().to_vec(),
            dot: dot.clone(),
            square_input: encoding(step.input_scale_log),
        })
    }

    /// The part computed once: the first top layer's accumulators without the candidates'
    /// shares, and the square table rotated by every private entry. `x` is the bottom output,
    /// `inputs` the private vectors' interaction inputs.
    pub(super) fn once(
        &self,
        key: &ServerKey,
        square: &LookupTable,
        x: &LweBatch,
        inputs: &LweBatch,
    ) -> Result<(LweBatch, RotatedTables)> {
        let entries = self.entries.apply(inputs)?;
        let rotated = key.keyswitch_blind_rotate(&entries, square)?;
        let mut squares = rotated.read(&vec![0; entries.len()], self.square_input)?;
        if let Some(sums) = &self.private_sums {
            squares.append(&key.keyswitch_bootstrap(&sums.apply(inputs)?, square)?)?;
        }
        squares.append(inputs)?;
        let mut first_input = x.clone();
        first_input.append(&self.once_features.apply(&squares)?)?;
        Ok((self.first_once.apply(&first_input)?, rotated))
    }

    /// One candidate's first top layer accumulators: `once`, plus the pairs with a public vector
    /// (the rotated tables read at the public entries), plus the plaintext share of the pairs of
    /// two public vectors and of the public vectors' norms, added at `unit`. `public` holds the
    /// candidate's public vectors in order.
    pub(super) fn accumulators(
        &self,
        rotated: &RotatedTables,
        once: &LweBatch,
        public: &[Vec<i64>],
        unit: Encoding,
    ) -> Result<LweBatch> {
        let per_public = rotated.len();
        let offsets: Vec<i64> = (public.iter())
            .flat_map(|v| v.iter().copied().cycle().take(per_public))
            .collect();
        let reads = rotated.read(&offsets, self.square_input)?;
        let mut accumulators = self.cross_first.apply(&self.cross_sums.apply(&reads)?)?;
        accumulators.add(once)?;
        accumulators.add_plaintexts(&self.public_share(public), unit)?;
        Ok(accumulators)
    }

    /// The first top layer's share, in the clear, of the pair features that hold public values:
    /// pairs of two public vectors whole, and `-N_j` of a public vector in a pair with a private
    /// one (the reference's squares and norms).
    fn public_share(&self, public: &[Vec<i64>]) -> Vec<i64> {
        let square = &self.dot.square;
        let mut values = vec![Vec::new(); self.vectors];
        let mut norms = vec![0; self.vectors];
        let mut public = public.iter();
        for v in (0..self.vectors).filter(|&v| !self.private[v]) {
            values[v] = public.next().expect("one vector per public table").clone();
            norms[v] = match self.table_norms[v] {
                true => self.dot.squared_norm(&values[v]),
                false => values[v].iter().map(|&u| square.apply(u)).sum(),
            };
        }
        let features: Vec<i64> = dot_pairs(self.vectors)
            .map(|(i, j)| match (self.private[i], self.private[j]) {
                (false, false) => {
                    let sums: i64 = (values[i].iter().zip(&values[j]))
                        .map(|(a, b)| square.apply(a + b))
                        .sum();
                    sums - norms[i] - norms[j]
                }
                (true, false) => -norms[j],
                (false, true) => -norms[i],
                (true, true) => 0,
            })
            .collect();
        self.pair_weights
            .chunks_exact(features.len().max(1))
            .map(|row| row.iter().zip(&features).map(|(w, f)| w * f).sum())
            .collect()
    }
}
