//! Server-side tables and the encrypted lookup.

use std::sync::Arc;

use fhe::{CoefficientSlot, GlweBatch, LweBatch, NttGlweBatch, PackedMatrix, SeededGlweBatch};
use rayon::prelude::*;

use crate::error::{EmbedError, Result};
use crate::order::OutputOrder;
use crate::plan::LookupPlan;
use crate::shape::TableShape;

/// The integer contents of one table.
///
/// ```
/// use embed::{EmbeddingTable, TableShape};
/// // A full 3 x 2 table.
/// let table = EmbeddingTable::new(TableShape::one_hot(3, 2, 9).unwrap(), vec![1, 2, 3, 4, 5, 6]).unwrap();
/// assert_eq!(table.row(1), vec![3, 4]);
/// // Two base-2 codebooks of dimension 1: row i = C0[i % 2] + C1[i / 2].
/// let codebooks = EmbeddingTable::new(TableShape::digits(4, 1, 2, 10).unwrap(), vec![0, 1, 0, 10]).unwrap();
/// assert_eq!(codebooks.row(3), vec![11]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmbeddingTable {
    shape: TableShape,
    /// `count` codebooks of `base x dim` entries, row-major (for one-hot mode: the full table).
    codebooks: Vec<i64>,
}

impl EmbeddingTable {
    /// A table of `shape` from its codebooks (`digits.count` blocks of `digits.base x dim`
    /// entries, row-major; for a one-hot shape that is the full `rows x dim` table). Entries must
    /// be within `shape.max_abs_value`.
    ///
    /// ```
    /// use embed::{EmbeddingTable, TableShape};
    /// let shape = TableShape::one_hot(2, 2, 5).unwrap();
    /// assert!(EmbeddingTable::new(shape, vec![1, 2, 3]).is_err());
    /// assert!(EmbeddingTable::new(shape, vec![1, 2, 3, 6]).is_err());
    /// ```
    pub fn new(shape: TableShape, codebooks: Vec<i64>) -> Result<Self> {
        let expected = shape.input_len() * shape.dim;
        if codebooks.len() != expected {
            return Err(EmbedError::SizeMismatch {
                what: "table entries (digit count x base x dimension)".into(),
                expected,
                found: codebooks.len(),
            });
        }
        if let Some(&value) = codebooks
            .iter()
            .find(|v| v.unsigned_abs() > shape.max_abs_value as u64)
        {
            return Err(EmbedError::ValueBeyondBound {
                value,
                bound: shape.max_abs_value,
            });
        }
        Ok(EmbeddingTable { shape, codebooks })
    }

    /// The table's shape.
    ///
    /// ```
    /// use embed::{EmbeddingTable, TableShape};
    /// let shape = TableShape::one_hot(1, 1, 5).unwrap();
    /// assert_eq!(EmbeddingTable::new(shape, vec![5]).unwrap().shape(), shape);
    /// ```
    pub fn shape(&self) -> TableShape {
        self.shape
    }

    /// The plaintext row `id` (the sum of one codebook entry per digit), the reference every
    /// encrypted lookup is compared with. Panics if `id` is not a row; see
    /// [`LookupPlan::encode_query`] for the checked path.
    ///
    /// ```
    /// use embed::{EmbeddingTable, TableShape};
    /// let table = EmbeddingTable::new(TableShape::digits(9, 1, 3, 9).unwrap(), vec![0, 1, 2, 0, 3, 6]).unwrap();
    /// assert_eq!(table.row(7), vec![1 + 6]);
    /// ```
    pub fn row(&self, id: u64) -> Vec<i64> {
        assert!(
            id < self.shape.rows,
            "row {id} of a {}-row table",
            self.shape.rows
        );
        let dim = self.shape.dim;
        let base = self.shape.digits.base as usize;
        let mut row = vec![0i64; dim];
        for (j, digit) in self.shape.digits.digits(id).into_iter().enumerate() {
            let start = (j * base + digit as usize) * dim;
            for (r, c) in row.iter_mut().zip(&self.codebooks[start..start + dim]) {
                *r += c;
            }
        }
        row
    }

    /// Weight of one-hot coefficient `col` of this table's input for output `component`.
    fn weight(&self, col: usize, component: usize) -> i64 {
        self.codebooks[col * self.shape.dim + component]
    }
}

/// Tables ready for encrypted lookups: for every distinct group of the plan, one packed matrix
/// whose plaintext polynomials are transformed once. Build once, look up many times.
pub struct PackedTables {
    plan: LookupPlan,
    matrices: Vec<Arc<PackedMatrix>>,
}

/// The outputs of a lookup left in GLWE coefficients, for a downstream coefficient-packed layer:
/// output `i` (in the requested order) is coefficient `slots[i]` of `glwes`.
pub struct PackedOutputs {
    /// The product ciphertexts.
    pub glwes: GlweBatch,
    /// Where each requested output sits.
    pub slots: Vec<CoefficientSlot>,
}

impl PackedTables {
    /// Packs `tables` (one per shape of `plan`, matching it) for lookups.
    ///
    /// ```
    /// use embed::{EmbeddingTable, LookupPlan, PackedTables, PackingOptions, TableShape};
    /// let params = fhe::ParameterSetId::default().parameters();
    /// let shape = TableShape::one_hot(3, 1, 9).unwrap();
    /// let plan = LookupPlan::one_lookup_per_table(&params, vec![shape], PackingOptions::default()).unwrap();
    /// let table = EmbeddingTable::new(shape, vec![7, 8, 9]).unwrap();
    /// assert!(PackedTables::new(plan.clone(), vec![table.clone()]).is_ok());
    /// assert!(PackedTables::new(plan, vec![table.clone(), table]).is_err());
    /// ```
    pub fn new(plan: LookupPlan, tables: Vec<EmbeddingTable>) -> Result<Self> {
        if tables.len() != plan.shapes.len() {
            return Err(EmbedError::SizeMismatch {
                what: "tables (one per shape of the plan)".into(),
                expected: plan.shapes.len(),
                found: tables.len(),
            });
        }
        for (index, (table, shape)) in tables.iter().zip(&plan.shapes).enumerate() {
            if table.shape != *shape {
                return Err(EmbedError::InvalidArgument(format!(
                    "table {index} has shape {:?}, the plan says {shape:?}",
                    table.shape
                )));
            }
        }
        let mut matrices = Vec::with_capacity(plan.matrix_tables.len());
        for (matrix, table_list) in plan.matrix_tables.iter().enumerate() {
            let group = plan
                .groups
                .iter()
                .find(|g| g.matrix == matrix)
                .expect("every matrix comes from a group");
            // Column and row ranges of each member, in group order.
            let mut col_owner = Vec::with_capacity(group.layout.cols());
            let mut row_owner = Vec::with_capacity(group.layout.rows());
            for (member, &table) in table_list.iter().enumerate() {
                let shape = &plan.shapes[table];
                col_owner.extend((0..shape.input_len()).map(|c| (member, c)));
                row_owner.extend((0..shape.dim).map(|r| (member, r)));
            }
            let packed = PackedMatrix::from_fn(&plan.params, group.layout, |row, col| {
                let (row_member, component) = row_owner[row];
                let (col_member, input) = col_owner[col];
                if row_member == col_member {
                    tables[table_list[row_member]].weight(input, component)
                } else {
                    0
                }
            })?;
            matrices.push(Arc::new(packed));
        }
        Ok(PackedTables { plan, matrices })
    }

    /// The plan the tables were packed for.
    ///
    /// ```
    /// use embed::{EmbeddingTable, LookupPlan, PackedTables, PackingOptions, TableShape};
    /// let params = fhe::ParameterSetId::default().parameters();
    /// let shape = TableShape::one_hot(3, 1, 9).unwrap();
    /// let plan = LookupPlan::one_lookup_per_table(&params, vec![shape], PackingOptions::default()).unwrap();
    /// let tables = PackedTables::new(plan, vec![EmbeddingTable::new(shape, vec![1, 2, 3]).unwrap()]).unwrap();
    /// assert_eq!(tables.plan().lookup_count(), 1);
    /// ```
    pub fn plan(&self) -> &LookupPlan {
        &self.plan
    }

    /// Number of GLWE x plaintext products one lookup costs (all-zero tiles are skipped).
    ///
    /// ```
    /// use embed::{EmbeddingTable, LookupPlan, PackedTables, PackingOptions, TableShape};
    /// let params = fhe::ParameterSetId::default().parameters();
    /// let shape = TableShape::one_hot(3, 1, 9).unwrap();
    /// let plan = LookupPlan::one_lookup_per_table(&params, vec![shape], PackingOptions::default()).unwrap();
    /// let tables = PackedTables::new(plan, vec![EmbeddingTable::new(shape, vec![1, 2, 3]).unwrap()]).unwrap();
    /// assert_eq!(tables.product_count(), 1);
    /// ```
    pub fn product_count(&self) -> usize {
        self.plan
            .groups
            .iter()
            .map(|g| self.matrices[g.matrix].product_count())
            .sum()
    }

    /// Looks up the rows selected by an encrypted query and returns the outputs as LWE
    /// ciphertexts under the big key, in `order`: the sample extraction writes them directly in
    /// that order.
    ///
    /// ```
    /// use embed::{EmbeddingTable, LookupPlan, OutputOrder, PackedTables, PackingOptions, TableShape};
    /// use fhe::{ClientKey, KeySeed, ParameterSetId};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let shapes = vec![TableShape::one_hot(3, 2, 9).unwrap(), TableShape::digits(100, 1, 10, 9).unwrap()];
    /// let plan = LookupPlan::one_lookup_per_table(&key.parameters(), shapes.clone(), PackingOptions::default()).unwrap();
    /// let tables = vec![
    ///     EmbeddingTable::new(shapes[0], vec![1, 2, 3, 4, 5, 6]).unwrap(),
    ///     EmbeddingTable::new(shapes[1], (0..20).map(|v| v % 10).collect()).unwrap(),
    /// ];
    /// let packed = PackedTables::new(plan.clone(), tables).unwrap();
    /// let query = plan.encrypt_query(&key, &[2, 47]).unwrap();
    /// let outputs = packed.lookup(&query, &OutputOrder::SlotMajor).unwrap();
    /// assert_eq!(plan.decrypt_outputs(&key, &outputs).unwrap(), vec![5, 6, 7 + 4]);
    /// ```
    pub fn lookup(&self, query: &SeededGlweBatch, order: &OutputOrder) -> Result<LweBatch> {
        self.lookup_with_plan(&self.plan, query, order)
    }

    /// Like [`PackedTables::lookup`] for a query of another plan whose groups read the same
    /// tables in the same layouts as the groups these tables were packed for: tables packed once
    /// for one token serve prompts of any length (a plan with one group per token), without
    /// packing again.
    ///
    /// ```
    /// use embed::{EmbeddingTable, LookupPlan, OutputOrder, PackedTables, PackingOptions, TableShape};
    /// use fhe::{ClientKey, KeySeed, ParameterSetId};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let params = key.parameters();
    /// let shape = TableShape::one_hot(3, 2, 9).unwrap();
    /// // One group per lookup, so that every group reads the one-lookup matrix.
    /// let options = PackingOptions { max_inputs_per_group: Some(3), scale_log: None };
    /// let one = LookupPlan::new(&params, vec![shape], vec![0], options).unwrap();
    /// let table = EmbeddingTable::new(shape, vec![1, 2, 3, 4, 5, 6]).unwrap();
    /// let packed = PackedTables::new(one, vec![table]).unwrap();
    /// let three = LookupPlan::new(&params, vec![shape], vec![0; 3], options).unwrap();
    /// let query = three.encrypt_query(&key, &[2, 0, 1]).unwrap();
    /// let outputs = packed.lookup_with_plan(&three, &query, &OutputOrder::SlotMajor).unwrap();
    /// assert_eq!(three.decrypt_outputs(&key, &outputs).unwrap(), vec![5, 6, 1, 2, 3, 4]);
    /// // Packed together, two lookups need a matrix these tables were not packed for.
    /// let shared = LookupPlan::new(&params, vec![shape], vec![0; 2], PackingOptions::default()).unwrap();
    /// let query = shared.encrypt_query(&key, &[2, 0]).unwrap();
    /// assert!(packed.lookup_with_plan(&shared, &query, &OutputOrder::SlotMajor).is_err());
    /// ```
    pub fn lookup_with_plan(
        &self,
        plan: &LookupPlan,
        query: &SeededGlweBatch,
        order: &OutputOrder,
    ) -> Result<LweBatch> {
        let refs = order.resolve(plan)?;
        let batched = self.batched(plan, query)?;
        let slots: Vec<CoefficientSlot> = refs.iter().map(|&r| plan.output_slot(r)).collect();
        if let Some(matrix) = batched.single_matrix_in_plan_order(plan) {
            // Extract while computing: the output ciphertexts are never all held at once.
            let inputs: Vec<&NttGlweBatch> = batched.inputs.iter().collect();
            return Ok(matrix.apply_many_extract(&inputs, &slots)?);
        }
        Ok(batched.products(plan)?.extract(&slots)?)
    }

    /// Like [`PackedTables::lookup`] but leaves the outputs in GLWE coefficients.
    ///
    /// ```
    /// use embed::{EmbeddingTable, LookupPlan, OutputOrder, PackedTables, PackingOptions, TableShape};
    /// use fhe::{ClientKey, KeySeed, ParameterSetId};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let shape = TableShape::one_hot(3, 1, 9).unwrap();
    /// let plan = LookupPlan::one_lookup_per_table(&key.parameters(), vec![shape], PackingOptions::default()).unwrap();
    /// let packed = PackedTables::new(plan.clone(), vec![EmbeddingTable::new(shape, vec![4, 5, 6]).unwrap()]).unwrap();
    /// let outputs = packed.lookup_packed(&plan.encrypt_query(&key, &[1]).unwrap(), &OutputOrder::SlotMajor).unwrap();
    /// let coefficients = key.decrypt_glwe_batch(&outputs.glwes, plan.encoding()).unwrap();
    /// let n = key.parameters().polynomial_size().0;
    /// assert_eq!(coefficients[outputs.slots[0].glwe * n + outputs.slots[0].coefficient], 5);
    /// ```
    pub fn lookup_packed(
        &self,
        query: &SeededGlweBatch,
        order: &OutputOrder,
    ) -> Result<PackedOutputs> {
        self.lookup_packed_with_plan(&self.plan, query, order)
    }

    /// Like [`PackedTables::lookup_packed`] for a query of another compatible plan (see
    /// [`PackedTables::lookup_with_plan`]).
    ///
    /// ```
    /// use embed::{EmbeddingTable, LookupPlan, OutputOrder, PackedTables, PackingOptions, TableShape};
    /// use fhe::{ClientKey, KeySeed, ParameterSetId};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let shape = TableShape::one_hot(3, 1, 9).unwrap();
    /// let options = PackingOptions { max_inputs_per_group: Some(3), scale_log: None };
    /// let one = LookupPlan::new(&key.parameters(), vec![shape], vec![0], options).unwrap();
    /// let packed = PackedTables::new(one, vec![EmbeddingTable::new(shape, vec![4, 5, 6]).unwrap()]).unwrap();
    /// let two = LookupPlan::new(&key.parameters(), vec![shape], vec![0, 0], options).unwrap();
    /// let query = two.encrypt_query(&key, &[2, 1]).unwrap();
    /// let outputs = packed.lookup_packed_with_plan(&two, &query, &OutputOrder::SlotMajor).unwrap();
    /// assert_eq!(outputs.slots.len(), 2);
    /// assert_eq!(outputs.glwes.len(), 2);
    /// ```
    pub fn lookup_packed_with_plan(
        &self,
        plan: &LookupPlan,
        query: &SeededGlweBatch,
        order: &OutputOrder,
    ) -> Result<PackedOutputs> {
        let refs = order.resolve(plan)?;
        let glwes = self.batched(plan, query)?.products(plan)?;
        let slots = refs.iter().map(|&r| plan.output_slot(r)).collect();
        Ok(PackedOutputs { glwes, slots })
    }

    /// The query of `plan` split into its groups' transformed inputs, and the groups grouped by
    /// the packed matrix they read. Groups reading the same matrix (the tokens of a prompt,
    /// whose plan names one matrix per token while the tables hold it once) then run as one
    /// batched product.
    fn batched<'a>(&'a self, plan: &LookupPlan, query: &SeededGlweBatch) -> Result<Batched<'a>> {
        let matrices = self.matrices_for(plan)?;
        let expected = plan.query_glwe_count();
        if query.len() != expected {
            return Err(EmbedError::SizeMismatch {
                what: "query ciphertexts".into(),
                expected,
                found: query.len(),
            });
        }
        // Groups take consecutive query ciphertexts, in plan order.
        let lengths: Vec<usize> = plan
            .groups
            .iter()
            .map(|group| group.layout.input_glwe_count())
            .collect();
        let inputs = query.decompress().to_ntt()?.split(&lengths)?;
        let mut readers: Vec<(&PackedMatrix, Vec<usize>)> = Vec::new();
        for (g, group) in plan.groups.iter().enumerate() {
            let matrix = matrices[group.matrix];
            match readers.iter_mut().find(|(m, _)| std::ptr::eq(*m, matrix)) {
                Some((_, groups)) => groups.push(g),
                None => readers.push((matrix, vec![g])),
            }
        }
        Ok(Batched { inputs, readers })
    }

    /// The packed matrix of every matrix of `plan` (indexed like `plan.matrix_tables`), or an
    /// error if `plan` needs one these tables were not packed for.
    fn matrices_for<'a>(&'a self, plan: &LookupPlan) -> Result<Vec<&'a PackedMatrix>> {
        if plan.params.id() != self.plan.params.id() || plan.shapes != self.plan.shapes {
            return Err(EmbedError::InvalidArgument(
                "the plan's parameter set or table shapes differ from the packed tables'".into(),
            ));
        }
        (0..plan.matrix_tables.len())
            .map(|matrix| {
                let layout = plan
                    .groups
                    .iter()
                    .find(|g| g.matrix == matrix)
                    .map(|g| g.layout);
                self.plan
                    .matrix_tables
                    .iter()
                    .zip(&self.matrices)
                    .find(|(tables, packed)| {
                        **tables == plan.matrix_tables[matrix] && Some(packed.layout()) == layout
                    })
                    .map(|(_, packed)| packed.as_ref())
                    .ok_or_else(|| {
                        EmbedError::InvalidArgument(format!(
                            "the plan reads tables {:?} together, which these tables were not packed for",
                            plan.matrix_tables[matrix]
                        ))
                    })
            })
            .collect()
    }
}

/// A query split by group, and the groups of each packed matrix (see `PackedTables::batched`).
struct Batched<'a> {
    inputs: Vec<NttGlweBatch>,
    readers: Vec<(&'a PackedMatrix, Vec<usize>)>,
}

impl<'a> Batched<'a> {
    /// The matrix, when one matrix serves every group of `plan` in plan order: its batched
    /// outputs are then laid out exactly as the plan's output slots count them.
    fn single_matrix_in_plan_order(&self, plan: &LookupPlan) -> Option<&'a PackedMatrix> {
        match self.readers.as_slice() {
            [(matrix, groups)] if groups.iter().copied().eq(0..plan.groups.len()) => Some(*matrix),
            _ => None,
        }
    }

    /// Every group's output ciphertexts, in plan order (the layout `plan.output_slot` counts).
    fn products(&self, plan: &LookupPlan) -> Result<GlweBatch> {
        let products = self
            .readers
            .par_iter()
            .map(|(matrix, groups)| {
                let inputs: Vec<&NttGlweBatch> = groups.iter().map(|&g| &self.inputs[g]).collect();
                Ok(matrix.apply_many(&inputs)?)
            })
            .collect::<Result<Vec<GlweBatch>>>()?;
        if self.single_matrix_in_plan_order(plan).is_some() {
            // Already in place.
            return Ok(products.into_iter().next().expect("one product batch"));
        }
        // Each group's outputs, in plan order, from its matrix's batch.
        let mut parts = vec![None; plan.groups.len()];
        for ((matrix, groups), batch) in self.readers.iter().zip(&products) {
            let count = matrix.layout().output_glwe_count();
            for (k, &g) in groups.iter().enumerate() {
                parts[g] = Some((batch, k * count..(k + 1) * count));
            }
        }
        let parts: Vec<(&GlweBatch, std::ops::Range<usize>)> =
            parts.into_iter().flatten().collect();
        Ok(GlweBatch::gather(&parts)?)
    }
}
