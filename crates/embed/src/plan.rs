//! The public contract between client and server: table shapes, how lookups are packed into GLWE
//! ciphertexts, the encoding scale, and the order of the outputs. Both sides build the same
//! [`LookupPlan`] from the same public shapes; no table value is needed.

use fhe::{
    ClientKey, CoefficientSlot, Encoding, FheParameters, LweBatch, PackedMatVecLayout, ScaleLog,
    SeededGlweBatch,
};
use serde::{Deserialize, Serialize};

use crate::error::{EmbedError, Result};

/// How a row index is presented to the server: `count` digits in base `base`, each sent as a
/// one-hot vector of length `base`. One-hot mode is one digit in base `rows`.
///
/// ```
/// use embed::DigitScheme;
/// assert_eq!(DigitScheme::for_rows(10_000_000, 8).unwrap(), DigitScheme { base: 8, count: 8 });
/// assert_eq!(DigitScheme::one_hot(26), DigitScheme { base: 26, count: 1 });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DigitScheme {
    /// The base `p` of the digits (length of each one-hot vector).
    pub base: u64,
    /// The number `l` of digits.
    pub count: u32,
}

impl DigitScheme {
    /// One digit in base `rows`: the plain one-hot baseline.
    ///
    /// ```
    /// use embed::DigitScheme;
    /// assert_eq!(DigitScheme::one_hot(5).input_len(), 5);
    /// ```
    pub fn one_hot(rows: u64) -> Self {
        DigitScheme {
            base: rows,
            count: 1,
        }
    }

    /// The fewest base-`base` digits that can address `rows` rows.
    ///
    /// ```
    /// use embed::DigitScheme;
    /// assert_eq!(DigitScheme::for_rows(1460, 16).unwrap().count, 3);
    /// assert!(DigitScheme::for_rows(10, 1).is_err());
    /// ```
    pub fn for_rows(rows: u64, base: u64) -> Result<Self> {
        if base < 2 {
            return Err(EmbedError::InvalidArgument(format!(
                "a digit base must be at least 2, got {base}"
            )));
        }
        let mut count = 1;
        let mut capacity = base;
        while capacity < rows {
            capacity = capacity.saturating_mul(base);
            count += 1;
        }
        Ok(DigitScheme { base, count })
    }

    /// Number of one-hot coefficients the client sends, `base * count`.
    ///
    /// ```
    /// use embed::DigitScheme;
    /// assert_eq!(DigitScheme { base: 8, count: 8 }.input_len(), 64);
    /// ```
    pub fn input_len(self) -> usize {
        self.base as usize * self.count as usize
    }

    /// The digits of `id`, least significant first.
    ///
    /// ```
    /// use embed::DigitScheme;
    /// assert_eq!(DigitScheme { base: 10, count: 3 }.digits(472), vec![2, 7, 4]);
    /// ```
    pub fn digits(self, id: u64) -> Vec<u64> {
        let mut rest = id;
        (0..self.count)
            .map(|_| {
                let digit = rest % self.base;
                rest /= self.base;
                digit
            })
            .collect()
    }
}

/// The public description of one table: its size, how ids are sent, and a bound on the absolute
/// value of its entries (sums of codebook rows for digit tables), which fixes the encoding.
///
/// ```
/// use embed::{DigitScheme, TableShape};
/// let shape = TableShape::digits(10_131_227, 16, 8, 127).unwrap();
/// assert_eq!(shape.digits, DigitScheme { base: 8, count: 8 });
/// assert_eq!(shape.input_len(), 64);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TableShape {
    /// Number of rows `V` (valid ids are `0..rows`).
    pub rows: u64,
    /// Embedding dimension `d`.
    pub dim: usize,
    /// How ids are sent.
    pub digits: DigitScheme,
    /// Bound on the absolute value of every table (or codebook) entry.
    pub max_abs_value: i64,
}

impl TableShape {
    /// A table looked up with a one-hot vector of length `rows`.
    ///
    /// ```
    /// use embed::TableShape;
    /// assert_eq!(TableShape::one_hot(100, 4, 7).unwrap().input_len(), 100);
    /// assert!(TableShape::one_hot(0, 4, 7).is_err());
    /// ```
    pub fn one_hot(rows: u64, dim: usize, max_abs_value: i64) -> Result<Self> {
        Self::new(rows, dim, DigitScheme::one_hot(rows), max_abs_value)
    }

    /// A compositional table: `count` codebooks of `base` rows, `E[i] = sum_j C_j[digit_j(i)]`.
    ///
    /// ```
    /// use embed::TableShape;
    /// assert_eq!(TableShape::digits(583, 16, 8, 127).unwrap().digits.count, 4);
    /// ```
    pub fn digits(rows: u64, dim: usize, base: u64, max_abs_value: i64) -> Result<Self> {
        Self::new(rows, dim, DigitScheme::for_rows(rows, base)?, max_abs_value)
    }

    fn new(rows: u64, dim: usize, digits: DigitScheme, max_abs_value: i64) -> Result<Self> {
        if rows == 0 || dim == 0 || digits.base == 0 || digits.count == 0 {
            return Err(EmbedError::InvalidArgument(format!(
                "a table needs rows, a dimension and digits, got {rows} x {dim} with {digits:?}"
            )));
        }
        if max_abs_value < 0 {
            return Err(EmbedError::InvalidArgument(format!(
                "a value bound cannot be negative, got {max_abs_value}"
            )));
        }
        Ok(TableShape {
            rows,
            dim,
            digits,
            max_abs_value,
        })
    }

    /// Number of one-hot coefficients one lookup sends.
    ///
    /// ```
    /// use embed::TableShape;
    /// assert_eq!(TableShape::digits(1000, 2, 10, 1).unwrap().input_len(), 30);
    /// ```
    pub fn input_len(&self) -> usize {
        self.digits.input_len()
    }

    /// Largest absolute value of a lookup output: one codebook entry per digit.
    fn max_output(&self) -> u128 {
        u128::from(self.digits.count) * self.max_abs_value as u128
    }

    /// Worst-case L1 norm of the weights behind one output: every one-hot coefficient carries
    /// fresh noise, weighted by a table entry.
    fn max_weight_l1(&self) -> u128 {
        self.input_len() as u128 * self.max_abs_value as u128
    }
}

/// How lookups are grouped into ciphertexts.
///
/// ```
/// use embed::PackingOptions;
/// let options = PackingOptions { max_inputs_per_group: Some(512), scale_log: None };
/// assert_ne!(options, PackingOptions::default());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackingOptions {
    /// Most one-hot coefficients packed into one group of ciphertexts; `None` means the
    /// polynomial size `N` (fewest ciphertexts to upload). Smaller groups upload more
    /// ciphertexts but cost the server fewer products.
    pub max_inputs_per_group: Option<usize>,
    /// Encoding scale of the query and outputs (log2); `None` picks the largest scale the outputs
    /// allow, which leaves the most room for noise.
    pub scale_log: Option<u32>,
}

/// Which output of the lookup: component `component` of the row fetched by lookup `slot`.
///
/// ```
/// use embed::OutputRef;
/// let first = OutputRef { slot: 0, component: 0 };
/// assert_eq!(first.component, 0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OutputRef {
    /// Index of the lookup in the plan.
    pub slot: usize,
    /// Component of the embedding row.
    pub component: usize,
}

/// The order in which a lookup hands its outputs to the consumer. The ciphertexts come out of
/// sample extraction already in this order: there is no re-arrangement afterwards.
///
/// ```
/// use embed::{LookupPlan, OutputOrder, PackingOptions, TableShape};
/// let params = fhe::ParameterSetId::default().parameters();
/// let shapes = vec![TableShape::one_hot(3, 2, 9).unwrap(), TableShape::one_hot(4, 1, 9).unwrap()];
/// let plan = LookupPlan::one_lookup_per_table(&params, shapes, PackingOptions::default()).unwrap();
/// let refs = OutputOrder::SlotMajor.resolve(&plan).unwrap();
/// assert_eq!(refs.len(), 3);
/// assert_eq!(refs[2].slot, 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutputOrder {
    /// `[e_1 | e_2 | ...]`: every component of lookup 0, then of lookup 1, ... (table-major for
    /// one lookup per table, the concat input of a DLRM top MLP).
    SlotMajor,
    /// Component 0 of every lookup, then component 1, ... (lookups of different dimensions skip
    /// the components they lack).
    ComponentMajor,
    /// Any explicit list of outputs (repetitions allowed).
    Custom(Vec<OutputRef>),
}

impl OutputOrder {
    /// The explicit list of outputs this order stands for under `plan`.
    ///
    /// ```
    /// use embed::{LookupPlan, OutputOrder, OutputRef, PackingOptions, TableShape};
    /// let params = fhe::ParameterSetId::default().parameters();
    /// let shapes = vec![TableShape::one_hot(3, 2, 9).unwrap()];
    /// let plan = LookupPlan::one_lookup_per_table(&params, shapes, PackingOptions::default()).unwrap();
    /// let bad = OutputOrder::Custom(vec![OutputRef { slot: 0, component: 2 }]);
    /// assert!(bad.resolve(&plan).is_err());
    /// ```
    pub fn resolve(&self, plan: &LookupPlan) -> Result<Vec<OutputRef>> {
        let dims: Vec<usize> = plan
            .slots
            .iter()
            .map(|s| plan.shapes[s.table].dim)
            .collect();
        match self {
            OutputOrder::SlotMajor => Ok(dims
                .iter()
                .enumerate()
                .flat_map(|(slot, &dim)| {
                    (0..dim).map(move |component| OutputRef { slot, component })
                })
                .collect()),
            OutputOrder::ComponentMajor => {
                let max_dim = dims.iter().copied().max().unwrap_or(0);
                Ok((0..max_dim)
                    .flat_map(|component| {
                        dims.iter()
                            .enumerate()
                            .filter(move |(_, dim)| component < **dim)
                            .map(move |(slot, _)| OutputRef { slot, component })
                    })
                    .collect())
            }
            OutputOrder::Custom(refs) => {
                for r in refs {
                    let dim = dims.get(r.slot).ok_or_else(|| EmbedError::SizeMismatch {
                        what: "slot of an output reference (number of lookups)".into(),
                        expected: dims.len(),
                        found: r.slot,
                    })?;
                    if r.component >= *dim {
                        return Err(EmbedError::SizeMismatch {
                            what: format!(
                                "component of an output of lookup {} (dimension)",
                                r.slot
                            ),
                            expected: *dim,
                            found: r.component,
                        });
                    }
                }
                Ok(refs.clone())
            }
        }
    }
}

/// One lookup of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    /// Index of the table it reads.
    pub(crate) table: usize,
    /// Group of ciphertexts its one-hot vectors go to.
    pub(crate) group: usize,
    /// First column (one-hot coefficient) of the slot inside its group.
    pub(crate) first_col: usize,
    /// First row (output) of the slot inside its group.
    pub(crate) first_row: usize,
}

/// A set of lookups sharing ciphertexts: their one-hot vectors are concatenated into one input
/// vector and their outputs into one output vector of a packed matrix-vector product.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Group {
    pub(crate) slots: Vec<usize>,
    pub(crate) layout: PackedMatVecLayout,
    /// Index of the group's first ciphertext in the query.
    pub(crate) first_glwe: usize,
    /// Groups reading the same tables in the same order share one packed matrix.
    pub(crate) matrix: usize,
}

/// The packing of a set of lookups: which ciphertext and coefficient every one-hot entry goes
/// to, where every output lands, and the encoding scale.
#[derive(Clone, Debug)]
pub struct LookupPlan {
    pub(crate) params: FheParameters,
    pub(crate) shapes: Vec<TableShape>,
    pub(crate) slots: Vec<Slot>,
    pub(crate) groups: Vec<Group>,
    /// For each distinct matrix, the tables of its slots in order.
    pub(crate) matrix_tables: Vec<Vec<usize>>,
    encoding: Encoding,
}

impl LookupPlan {
    /// One lookup per table, in table order (the DLRM case).
    ///
    /// ```
    /// use embed::{LookupPlan, PackingOptions, TableShape};
    /// let params = fhe::ParameterSetId::default().parameters();
    /// let shapes = vec![TableShape::digits(10_131_227, 16, 8, 127).unwrap(); 26];
    /// let plan = LookupPlan::one_lookup_per_table(&params, shapes, PackingOptions::default()).unwrap();
    /// assert_eq!(plan.query_glwe_count(), 1); // 26 x 64 one-hot coefficients fit in N = 2048
    /// assert_eq!(plan.output_count(), 26 * 16);
    /// ```
    pub fn one_lookup_per_table(
        params: &FheParameters,
        shapes: Vec<TableShape>,
        options: PackingOptions,
    ) -> Result<Self> {
        let tables = (0..shapes.len()).collect();
        Self::new(params, shapes, tables, options)
    }

    /// Lookups `slot_tables[k]` (the table each lookup reads; a table may be read many times, as
    /// a token table is by a prompt). Lookups are packed in order, next-fit, into groups of at
    /// most `max_inputs_per_group` one-hot coefficients; a lookup longer than that gets a group
    /// of its own spanning several ciphertexts.
    ///
    /// ```
    /// use embed::{LookupPlan, PackingOptions, TableShape};
    /// let params = fhe::ParameterSetId::default().parameters();
    /// let shapes = vec![TableShape::one_hot(5000, 8, 100).unwrap()];
    /// let plan = LookupPlan::new(&params, shapes, vec![0, 0, 0], PackingOptions::default()).unwrap();
    /// assert_eq!(plan.lookup_count(), 3);
    /// assert_eq!(plan.query_glwe_count(), 9); // 3 ciphertexts per 5000-long one-hot
    /// ```
    pub fn new(
        params: &FheParameters,
        shapes: Vec<TableShape>,
        slot_tables: Vec<usize>,
        options: PackingOptions,
    ) -> Result<Self> {
        let n = params.polynomial_size().0;
        let capacity = options.max_inputs_per_group.unwrap_or(n);
        if capacity == 0 {
            return Err(EmbedError::InvalidArgument(
                "a group must hold at least one input".into(),
            ));
        }
        if let Some(&table) = slot_tables.iter().find(|&&t| t >= shapes.len()) {
            return Err(EmbedError::SizeMismatch {
                what: "table index of a lookup (number of tables)".into(),
                expected: shapes.len(),
                found: table,
            });
        }
        let encoding = choose_encoding(params, &shapes, &slot_tables, options.scale_log)?;

        // Next-fit grouping, in lookup order.
        let mut member_lists: Vec<Vec<usize>> = Vec::new();
        let mut open_inputs = 0;
        for (slot, &table) in slot_tables.iter().enumerate() {
            let len = shapes[table].input_len();
            match member_lists.last_mut() {
                Some(members) if open_inputs + len <= capacity => {
                    members.push(slot);
                    open_inputs += len;
                }
                _ => {
                    member_lists.push(vec![slot]);
                    open_inputs = len;
                }
            }
        }

        let mut slots = vec![
            Slot {
                table: 0,
                group: 0,
                first_col: 0,
                first_row: 0,
            };
            slot_tables.len()
        ];
        let mut groups = Vec::with_capacity(member_lists.len());
        let mut matrix_tables: Vec<Vec<usize>> = Vec::new();
        let mut first_glwe = 0;
        for (group, members) in member_lists.into_iter().enumerate() {
            let (mut cols, mut rows) = (0, 0);
            for &slot in &members {
                let shape = &shapes[slot_tables[slot]];
                slots[slot] = Slot {
                    table: slot_tables[slot],
                    group,
                    first_col: cols,
                    first_row: rows,
                };
                cols += shape.input_len();
                rows += shape.dim;
            }
            let layout = PackedMatVecLayout::new(rows, cols, params.polynomial_size())?;
            let tables: Vec<usize> = members.iter().map(|&s| slot_tables[s]).collect();
            let matrix = match matrix_tables.iter().position(|t| *t == tables) {
                Some(existing) => existing,
                None => {
                    matrix_tables.push(tables);
                    matrix_tables.len() - 1
                }
            };
            groups.push(Group {
                slots: members,
                layout,
                first_glwe,
                matrix,
            });
            first_glwe += layout.input_glwe_count();
        }
        Ok(LookupPlan {
            params: *params,
            shapes,
            slots,
            groups,
            matrix_tables,
            encoding,
        })
    }

    /// The table shapes.
    ///
    /// ```
    /// use embed::{LookupPlan, PackingOptions, TableShape};
    /// let params = fhe::ParameterSetId::default().parameters();
    /// let shapes = vec![TableShape::one_hot(3, 2, 9).unwrap()];
    /// let plan = LookupPlan::one_lookup_per_table(&params, shapes.clone(), PackingOptions::default()).unwrap();
    /// assert_eq!(plan.shapes(), &shapes[..]);
    /// ```
    pub fn shapes(&self) -> &[TableShape] {
        &self.shapes
    }

    /// Number of lookups.
    ///
    /// ```
    /// use embed::{LookupPlan, PackingOptions, TableShape};
    /// let params = fhe::ParameterSetId::default().parameters();
    /// let plan = LookupPlan::new(&params, vec![TableShape::one_hot(3, 2, 9).unwrap()], vec![0, 0], PackingOptions::default()).unwrap();
    /// assert_eq!(plan.lookup_count(), 2);
    /// ```
    pub fn lookup_count(&self) -> usize {
        self.slots.len()
    }

    /// Number of GLWE ciphertexts of a query.
    ///
    /// ```
    /// use embed::{LookupPlan, PackingOptions, TableShape};
    /// let params = fhe::ParameterSetId::default().parameters();
    /// let shapes = vec![TableShape::one_hot(3000, 2, 9).unwrap()];
    /// let plan = LookupPlan::one_lookup_per_table(&params, shapes, PackingOptions::default()).unwrap();
    /// assert_eq!(plan.query_glwe_count(), 2);
    /// ```
    pub fn query_glwe_count(&self) -> usize {
        self.groups
            .last()
            .map_or(0, |g| g.first_glwe + g.layout.input_glwe_count())
    }

    /// Total number of outputs (sum of the dimensions of the looked-up tables).
    ///
    /// ```
    /// use embed::{LookupPlan, PackingOptions, TableShape};
    /// let params = fhe::ParameterSetId::default().parameters();
    /// let shapes = vec![TableShape::one_hot(3, 2, 9).unwrap(), TableShape::one_hot(3, 5, 9).unwrap()];
    /// let plan = LookupPlan::one_lookup_per_table(&params, shapes, PackingOptions::default()).unwrap();
    /// assert_eq!(plan.output_count(), 7);
    /// ```
    pub fn output_count(&self) -> usize {
        self.slots.iter().map(|s| self.shapes[s.table].dim).sum()
    }

    /// The encoding of the one-hot query coefficients and of the outputs.
    ///
    /// ```
    /// use embed::{LookupPlan, PackingOptions, TableShape};
    /// let params = fhe::ParameterSetId::default().parameters();
    /// let shapes = vec![TableShape::one_hot(3, 2, 127).unwrap()];
    /// let plan = LookupPlan::one_lookup_per_table(&params, shapes, PackingOptions::default()).unwrap();
    /// assert!(plan.encoding().max_value() >= 127);
    /// ```
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// The one-hot coefficients of a query for `ids` (one id per lookup), laid out in
    /// `query_glwe_count() * N` coefficients.
    ///
    /// ```
    /// use embed::{EmbedError, LookupPlan, PackingOptions, TableShape};
    /// let params = fhe::ParameterSetId::default().parameters();
    /// let shapes = vec![TableShape::digits(100, 2, 10, 9).unwrap()];
    /// let plan = LookupPlan::one_lookup_per_table(&params, shapes, PackingOptions::default()).unwrap();
    /// let coefficients = plan.encode_query(&[42]).unwrap();
    /// assert_eq!(coefficients[2], 1); // low digit 2
    /// assert_eq!(coefficients[10 + 4], 1); // high digit 4
    /// assert_eq!(coefficients.iter().sum::<i64>(), 2);
    /// assert!(matches!(plan.encode_query(&[100]), Err(EmbedError::IdOutOfRange { .. })));
    /// ```
    pub fn encode_query(&self, ids: &[u64]) -> Result<Vec<i64>> {
        if ids.len() != self.slots.len() {
            return Err(EmbedError::SizeMismatch {
                what: "ids of a query (one per lookup)".into(),
                expected: self.slots.len(),
                found: ids.len(),
            });
        }
        let n = self.params.polynomial_size().0;
        let mut coefficients = vec![0i64; self.query_glwe_count() * n];
        for (slot_index, (slot, &id)) in self.slots.iter().zip(ids).enumerate() {
            let shape = &self.shapes[slot.table];
            if id >= shape.rows {
                return Err(EmbedError::IdOutOfRange {
                    slot: slot_index,
                    id,
                    rows: shape.rows,
                });
            }
            let group = &self.groups[slot.group];
            for (j, digit) in shape.digits.digits(id).into_iter().enumerate() {
                let col = slot.first_col + j * shape.digits.base as usize + digit as usize;
                let place = group.layout.input_slot(col);
                coefficients[(group.first_glwe + place.glwe) * n + place.coefficient] = 1;
            }
        }
        Ok(coefficients)
    }

    /// Encrypts the query for `ids` under the client key (seeded GLWE ciphertexts, 16 KiB each
    /// for the 2_2 set).
    ///
    /// ```
    /// use embed::{LookupPlan, PackingOptions, TableShape};
    /// use fhe::{ClientKey, KeySeed, ParameterSetId};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let shapes = vec![TableShape::one_hot(10, 3, 5).unwrap()];
    /// let plan = LookupPlan::one_lookup_per_table(&key.parameters(), shapes, PackingOptions::default()).unwrap();
    /// assert_eq!(plan.encrypt_query(&key, &[7]).unwrap().len(), 1);
    /// ```
    pub fn encrypt_query(&self, key: &ClientKey, ids: &[u64]) -> Result<SeededGlweBatch> {
        Ok(key.encrypt_glwe_batch(&self.encode_query(ids)?, self.encoding)?)
    }

    /// Decrypts lookup outputs (in whatever order they were requested).
    ///
    /// ```
    /// use embed::{LookupPlan, PackingOptions, TableShape};
    /// use fhe::{ClientKey, KeySeed, ParameterSetId};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let shapes = vec![TableShape::one_hot(10, 3, 5).unwrap()];
    /// let plan = LookupPlan::one_lookup_per_table(&key.parameters(), shapes, PackingOptions::default()).unwrap();
    /// let lwes = key.encrypt_lwe_batch(&[4, -5], plan.encoding()).unwrap();
    /// assert_eq!(plan.decrypt_outputs(&key, &lwes).unwrap(), vec![4, -5]);
    /// ```
    pub fn decrypt_outputs(&self, key: &ClientKey, outputs: &LweBatch) -> Result<Vec<i64>> {
        Ok(key.decrypt_lwe_batch(outputs, self.encoding)?)
    }

    /// Where output `output` sits in the packed product ciphertexts of a lookup (ciphertext index
    /// across all groups, coefficient).
    pub(crate) fn output_slot(&self, output: OutputRef) -> CoefficientSlot {
        let slot = &self.slots[output.slot];
        let group = &self.groups[slot.group];
        let first_output_glwe: usize = self.groups[..slot.group]
            .iter()
            .map(|g| g.layout.output_glwe_count())
            .sum();
        let local = group.layout.output_slot(slot.first_row + output.component);
        CoefficientSlot {
            glwe: first_output_glwe + local.glwe,
            coefficient: local.coefficient,
        }
    }
}

/// The largest scale (or the requested one) such that every output fits the encoding and the
/// worst-case noise of every output stays below half the scale: lookups then decrypt exactly
/// with certainty, not just with high probability.
fn choose_encoding(
    params: &FheParameters,
    shapes: &[TableShape],
    slot_tables: &[usize],
    requested: Option<u32>,
) -> Result<Encoding> {
    let used = || slot_tables.iter().map(|&t| &shapes[t]);
    let max_output = used().map(TableShape::max_output).max().unwrap_or(0);
    let max_l1 = used().map(TableShape::max_weight_l1).max().unwrap_or(0);
    let noise_bound = max_l1 * u128::from(params.fresh_noise_bound().unwrap_or(u64::MAX));
    let message_bits = 128 - max_output.leading_zeros() + 1;
    let noise_bits = 128 - noise_bound.leading_zeros();
    // Need: max_output < 2^(63 - s) and noise_bound < 2^(s - 1).
    let largest = 63u32.saturating_sub(message_bits);
    let scale_log = requested.unwrap_or(largest);
    if scale_log > largest || scale_log < noise_bits + 1 || scale_log == 0 {
        return Err(EmbedError::NoExactEncoding {
            message_bits,
            noise_bits,
        });
    }
    Ok(Encoding::new(ScaleLog(scale_log))?)
}
