//! The packing algorithm behind a [`LookupPlan`](crate::LookupPlan): lookups grouped next-fit
//! into GLWE ciphertexts, each group one packed matrix-vector product, and the encoding scale at
//! which every lookup decrypts exactly.

use fhe::{Encoding, FheParameters, PackedMatVecLayout, ScaleLog};
use serde::{Deserialize, Serialize};

use crate::error::{EmbedError, Result};
use crate::shape::TableShape;

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

/// Where every lookup of a plan goes, and the encoding of its query and outputs.
pub(crate) struct Packing {
    pub(crate) slots: Vec<Slot>,
    pub(crate) groups: Vec<Group>,
    /// For each distinct matrix, the tables of its slots in order.
    pub(crate) matrix_tables: Vec<Vec<usize>>,
    pub(crate) encoding: Encoding,
}

/// Packs lookups `slot_tables` (the table each reads) in order, next-fit, into groups of at most
/// `options.max_inputs_per_group` one-hot coefficients; a lookup longer than that gets a group of
/// its own spanning several ciphertexts. Groups reading the same tables in the same order share
/// one matrix.
pub(crate) fn pack(
    params: &FheParameters,
    shapes: &[TableShape],
    slot_tables: &[usize],
    options: PackingOptions,
) -> Result<Packing> {
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
    let encoding = choose_encoding(params, shapes, slot_tables, options.scale_log)?;

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
    Ok(Packing {
        slots,
        groups,
        matrix_tables,
        encoding,
    })
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
