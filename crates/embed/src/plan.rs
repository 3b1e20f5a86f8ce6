//! The lookup plan: the public contract between client and server. Both sides build the same
//! [`LookupPlan`] from the same public shapes (no table value is needed): which ciphertext and
//! coefficient every one-hot entry goes to, where every output lands, and the encoding scale.

use fhe::{Encoding, FheParameters};

use crate::error::Result;
use crate::packing::{Group, PackingOptions, Slot, pack};
use crate::shape::TableShape;

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
        let packing = pack(params, &shapes, &slot_tables, options)?;
        Ok(LookupPlan {
            params: *params,
            shapes,
            slots: packing.slots,
            groups: packing.groups,
            matrix_tables: packing.matrix_tables,
            encoding: packing.encoding,
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
}
