//! The dot interaction on integers. Ciphertexts cannot be multiplied, but a bootstrap can square
//! one, and `2 a b = (a + b)^2 - a^2 - b^2` turns every product into one square of a sum plus
//! squares that each vector shares with all of its pairs: `pairs x d` squares of sums and `d`
//! squares per vector, instead of the `2 x pairs x d` of `4 a b = (a + b)^2 - (a - b)^2`.
//! A small full table does better still: it returns its row's squared norm as one more lookup
//! output, computed in the clear in the squares' unit, so its vector needs no square at all.

use serde::{Deserialize, Serialize};

use crate::activation::ActivationTable;
use crate::weights::dot_pairs;
use crate::{EmbeddingKind, ModelConfig};

/// Full tables of at most this many rows return their rows' squared norms with the lookup. The
/// bound keeps the lookup's worst-case noise (rows x largest norm x fresh noise) small enough
/// for the lower lookup scale the norms need (the pair features' scale).
pub const TABLE_NORM_MAX_ROWS: usize = 256;

/// The dot interaction's square table. The bottom output `v_0` and the embedding sums
/// `v_1..v_T` share one integer unit; pair `(i, j)` (`j < i`, the float model's order) gets
/// `sum_k square(v_i[k] + v_j[k]) - N_i - N_j`, about `2 v_i . v_j` in square units, where the
/// squared norm `N_i = sum_k square(v_i[k])` comes from `d` bootstrapped squares or, for a
/// small full table, from the table itself ([`DotLayout`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DotInteraction {
    /// Reads a sum or one vector entry and returns its square, in the pair features' unit.
    pub square: ActivationTable,
    /// The squares' unit: the table returns `round(centre^2 / square_unit)` for its box
    /// centres.
    pub square_unit: f64,
}

impl DotInteraction {
    /// The squared norm a table returns with its row `vector`: `round(|v|^2 / square_unit)`,
    /// computed in the clear, so it is rounded once and never misread.
    ///
    /// ```
    /// let table = dlrm::ActivationTable { lo: -2, box_shift: 0, lut_bits: 2, output_bits: 2, entries: vec![1, 0, 0, 1] };
    /// let dot = dlrm::DotInteraction { square: table, square_unit: 4.0 };
    /// assert_eq!(dot.squared_norm(&[3, -4]), 6); // 25 / 4, rounded
    /// ```
    pub fn squared_norm(&self, vector: &[i64]) -> i64 {
        let sum: i64 = vector.iter().map(|v| v * v).sum();
        (sum as f64 / self.square_unit).round() as i64
    }

    /// The interaction of `vectors` (the bottom output, then each embedding sum, `d` values
    /// each): the squares' inputs, their squares as `read` returns them (given an input and how
    /// many bootstrap outputs it sums, see [`DotLayout::square_input_noises`]), and the pair
    /// features.
    pub fn interact(
        &self,
        layout: &DotLayout,
        vectors: &[i64],
        mut read: impl FnMut(i64, f64) -> i64,
    ) -> (Vec<i64>, Vec<i64>, Vec<i64>) {
        let inputs = layout.square_inputs(vectors);
        let squares: Vec<i64> = inputs
            .iter()
            .zip(layout.square_input_noises())
            .map(|(&u, noise)| read(u, noise))
            .collect();
        let features = layout.pair_features(&squares, &self.table_norms(layout, vectors));
        (inputs, squares, features)
    }

    /// The squared norms that tables return for `vectors` (the bottom output, then each
    /// embedding sum, `d` values each): one per vector with a table norm, in vector order.
    fn table_norms(&self, layout: &DotLayout, vectors: &[i64]) -> Vec<i64> {
        vectors
            .chunks_exact(layout.dim.max(1))
            .zip(layout.table_norms())
            .filter(|(_, from_table)| **from_table)
            .map(|(vector, _)| self.squared_norm(vector))
            .collect()
    }

    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
        if !(self.square_unit.is_finite() && self.square_unit >= 1.0) {
            return Err(format!(
                "square unit {} is not at least 1",
                self.square_unit
            ));
        }
        self.square.validate()
    }
}

/// Where the interaction's squares come from, for one architecture: the linear maps around the
/// square bootstraps, shared by the quantizer, the integer reference and the encrypted executor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DotLayout {
    dim: usize,
    /// Per vector (the bottom output, then each table): whether its table returns the squared
    /// norm with the lookup instead of `dim` bootstrapped squares.
    table_norms: Vec<bool>,
}

impl DotLayout {
    /// The layout of a dot model's interaction: full tables of at most
    /// [`TABLE_NORM_MAX_ROWS`] rows return norms, every other vector is squared entry by entry.
    ///
    /// ```
    /// use dlrm::{DigitCode, DotLayout, EmbeddingKind, ModelPreset, TableConfig};
    /// let mut config = ModelPreset::Uci.config(2, &[3, 1000]);
    /// config.tables[1].kind = EmbeddingKind::Digits(DigitCode { base: 32, digits: 2 });
    /// let layout = DotLayout::of(&config);
    /// assert_eq!(layout.table_norms(), &[false, true, false]);
    /// // 3 pairs x 4 sums, then 4 entries each of the bottom output and the digit table.
    /// assert_eq!(layout.square_count(), 3 * 4 + 2 * 4);
    /// ```
    pub fn of(config: &ModelConfig) -> Self {
        let table_norms = std::iter::once(false)
            .chain(
                config
                    .tables
                    .iter()
                    .map(|t| t.kind == EmbeddingKind::Full && t.rows <= TABLE_NORM_MAX_ROWS),
            )
            .collect();
        DotLayout {
            dim: config.embedding_dim,
            table_norms,
        }
    }

    /// The vectors' dimension `d`.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Per vector: whether its squared norm comes with its lookup.
    pub fn table_norms(&self) -> &[bool] {
        &self.table_norms
    }

    /// Number of pairs.
    pub fn pairs(&self) -> usize {
        let n = self.table_norms.len();
        n * n.saturating_sub(1) / 2
    }

    /// Vectors whose entries are squared by bootstrap, in order.
    fn squared_vectors(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.table_norms.len()).filter(|&i| !self.table_norms[i])
    }

    /// Bootstrapped squares: one per pair and coordinate, plus `d` per squared vector.
    pub fn square_count(&self) -> usize {
        (self.pairs() + self.squared_vectors().count()) * self.dim
    }

    /// The squares' inputs for `vectors` (the bottom output, then each embedding sum, `d`
    /// values each), in execution order: per pair `(i, j)`, per coordinate `k`, the sum
    /// `v_i[k] + v_j[k]`; then the entries of every vector squared by bootstrap.
    ///
    /// ```
    /// use dlrm::{DotLayout, ModelPreset};
    /// // UCI sizes have d = 4; with one table of 3 rows (which returns its norm):
    /// let layout = DotLayout::of(&ModelPreset::Uci.config(2, &[3]));
    /// let inputs = layout.square_inputs(&[1, 2, 3, 4, 10, 20, 30, 40]);
    /// assert_eq!(inputs, vec![11, 22, 33, 44, 1, 2, 3, 4]);
    /// ```
    pub fn square_inputs(&self, vectors: &[i64]) -> Vec<i64> {
        let d = self.dim;
        let mut inputs = Vec::with_capacity(self.square_count());
        for (i, j) in dot_pairs(self.table_norms.len()) {
            inputs.extend((0..d).map(|k| vectors[i * d + k] + vectors[j * d + k]));
        }
        for i in self.squared_vectors() {
            inputs.extend_from_slice(&vectors[i * d..(i + 1) * d]);
        }
        inputs
    }

    /// The pair features from the squares of [`DotLayout::square_inputs`] and the norms that
    /// tables return (`norms`, one per vector with a table norm, in vector order): per pair,
    /// the sum of its squares minus both vectors' squared norms.
    ///
    /// ```
    /// use dlrm::{DotLayout, ModelPreset};
    /// let layout = DotLayout::of(&ModelPreset::Uci.config(2, &[3]));
    /// let vectors = [1, 2, 3, 4, 10, 20, 30, 40];
    /// let squares: Vec<i64> = layout.square_inputs(&vectors).iter().map(|u| u * u).collect();
    /// let norm = 100 + 400 + 900 + 1600;
    /// // 2 x (1 x 10 + 2 x 20 + 3 x 30 + 4 x 40)
    /// assert_eq!(layout.pair_features(&squares, &[norm]), vec![600]);
    /// ```
    pub fn pair_features(&self, squares: &[i64], norms: &[i64]) -> Vec<i64> {
        let d = self.dim;
        let pairs = self.pairs();
        let (sums, entries) = squares.split_at(pairs * d);
        let mut entry_squares = entries.chunks_exact(d.max(1));
        let mut table_norms = norms.iter();
        let vector_norms: Vec<i64> = self
            .table_norms
            .iter()
            .map(|&from_table| {
                if from_table {
                    *table_norms.next().expect("one norm per table with norms")
                } else {
                    entry_squares
                        .next()
                        .expect("d squares per squared vector")
                        .iter()
                        .sum()
                }
            })
            .collect();
        dot_pairs(self.table_norms.len())
            .zip(sums.chunks_exact(d.max(1)))
            .map(|((i, j), s)| s.iter().sum::<i64>() - vector_norms[i] - vector_norms[j])
            .collect()
    }

    /// How many bootstrap outputs each square input sums, in [`DotLayout::square_inputs`]
    /// order: one for a pair with the bottom output and for the bottom output's own entries,
    /// none for exact embedding sums.
    ///
    /// ```
    /// use dlrm::{DotLayout, ModelPreset};
    /// let layout = DotLayout::of(&ModelPreset::Uci.config(2, &[3, 2]));
    /// // Pairs (1, 0), (2, 0), (2, 1), then the bottom output's entries.
    /// let expected = [[1.0; 4], [1.0; 4], [0.0; 4], [1.0; 4]].concat();
    /// assert_eq!(layout.square_input_noises(), expected);
    /// ```
    pub fn square_input_noises(&self) -> Vec<f64> {
        let d = self.dim;
        let reads_bottom = |j: usize| if j == 0 { 1.0 } else { 0.0 };
        let mut noises = Vec::with_capacity(self.square_count());
        for (_, j) in dot_pairs(self.table_norms.len()) {
            noises.extend(std::iter::repeat_n(reads_bottom(j), d));
        }
        for i in self.squared_vectors() {
            noises.extend(std::iter::repeat_n(reads_bottom(i), d));
        }
        noises
    }

    /// How many bootstrapped squares each pair feature sums: `d` for its sums plus `d` for each
    /// of its vectors squared entry by entry (the first top layer's column noises).
    ///
    /// ```
    /// use dlrm::{DotLayout, ModelPreset};
    /// let layout = DotLayout::of(&ModelPreset::Uci.config(2, &[3, 2]));
    /// // Pairs (1, 0), (2, 0), (2, 1): the bottom output is squared entry by entry.
    /// assert_eq!(layout.pair_noises(), vec![8.0, 8.0, 4.0]);
    /// ```
    pub fn pair_noises(&self) -> Vec<f64> {
        let d = self.dim as f64;
        let squared = |i: usize| if self.table_norms[i] { 0.0 } else { d };
        dot_pairs(self.table_norms.len())
            .map(|(i, j)| d + squared(i) + squared(j))
            .collect()
    }
}
