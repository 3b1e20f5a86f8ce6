//! The server side of token lookups: the plan of a prompt (one group per token) and the token
//! table packed once.

use fhe::{FheParameters, LweBatch, SeededGlweBatch};

use super::quantized_table::QuantizedTable;
use crate::error::{EmbedError, Result};
use crate::order::OutputOrder;
use crate::packing::PackingOptions;
use crate::plan::LookupPlan;
use crate::shape::TableShape;
use crate::tables::PackedTables;

/// The plan of a lookup of `tokens` tokens in a table of `shape`: one group (and one matrix
/// product) per token, so that tables packed for one token serve prompts of any length. Client
/// and server build it from the public shape.
///
/// ```
/// use embed::{TableShape, llm::prompt_plan};
/// let params = fhe::ParameterSetId::default().parameters();
/// let shape = TableShape::one_hot(30522, 384, 127).unwrap();
/// let plan = prompt_plan(&params, shape, 3).unwrap();
/// assert_eq!(plan.query_glwe_count(), 3 * 15); // 15 ciphertexts per 30522-long one-hot
/// assert_eq!(plan.output_count(), 3 * 384);
/// ```
pub fn prompt_plan(params: &FheParameters, shape: TableShape, tokens: usize) -> Result<LookupPlan> {
    if tokens == 0 {
        return Err(EmbedError::NoTokens);
    }
    let one_token_per_group = PackingOptions {
        max_inputs_per_group: Some(shape.input_len()),
        scale_log: None,
    };
    LookupPlan::new(params, vec![shape], vec![0; tokens], one_token_per_group)
}

/// The server side: the token table packed once for encrypted lookups.
///
/// ```
/// use embed::{OutputOrder, llm::{QuantizedTable, TokenLookup, prompt_plan}};
/// use fhe::{ClientKey, KeySeed, ParameterSetId};
/// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
/// let table = QuantizedTable::quantize(3, 2, vec![0.1, 0.2, 0.3, 0.4, 0.5, -0.6], 8).unwrap();
/// let server = TokenLookup::new(&key.parameters(), &table).unwrap();
/// let plan = prompt_plan(&key.parameters(), table.table().shape(), 1).unwrap();
/// let outputs = server.lookup(&plan, &plan.encrypt_query(&key, &[2]).unwrap(), &OutputOrder::SlotMajor).unwrap();
/// assert_eq!(plan.decrypt_outputs(&key, &outputs).unwrap(), table.table().row(2));
/// ```
pub struct TokenLookup {
    packed: PackedTables,
}

impl TokenLookup {
    /// Packs `table` (its integer part) once.
    ///
    /// ```
    /// use embed::llm::{QuantizedTable, TokenLookup};
    /// let params = fhe::ParameterSetId::default().parameters();
    /// let table = QuantizedTable::quantize(3, 2, vec![0.5; 6], 8).unwrap();
    /// assert_eq!(TokenLookup::new(&params, &table).unwrap().product_count(), 1);
    /// ```
    pub fn new(params: &FheParameters, table: &QuantizedTable) -> Result<Self> {
        let plan = prompt_plan(params, table.table().shape(), 1)?;
        Ok(TokenLookup {
            packed: PackedTables::new(plan, vec![table.table().clone()])?,
        })
    }

    /// GLWE x plaintext products one token costs.
    ///
    /// ```
    /// use embed::llm::{QuantizedTable, TokenLookup};
    /// let params = fhe::ParameterSetId::default().parameters();
    /// let table = QuantizedTable::quantize(3000, 2, vec![0.5; 6000], 8).unwrap();
    /// assert_eq!(TokenLookup::new(&params, &table).unwrap().product_count(), 4); // 2 rows x 2 blocks
    /// ```
    pub fn product_count(&self) -> usize {
        self.packed.product_count()
    }

    /// Looks up the tokens of a query of `plan` (from [`prompt_plan`]; one token for a decode
    /// step, a whole prompt at once otherwise) and returns the outputs in `order` over the
    /// plan's tokens (`SlotMajor`: token-major).
    ///
    /// ```
    /// use embed::{OutputOrder, llm::{QuantizedTable, TokenLookup, prompt_plan}};
    /// use fhe::{ClientKey, KeySeed, ParameterSetId};
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let table = QuantizedTable::quantize(3, 2, vec![0.1, 0.2, 0.3, 0.4, 0.5, -0.6], 8).unwrap();
    /// let server = TokenLookup::new(&key.parameters(), &table).unwrap();
    /// let plan = prompt_plan(&key.parameters(), table.table().shape(), 2).unwrap();
    /// let query = plan.encrypt_query(&key, &[2, 0]).unwrap();
    /// let outputs = server.lookup(&plan, &query, &OutputOrder::ComponentMajor).unwrap();
    /// let (row2, row0) = (table.table().row(2), table.table().row(0));
    /// assert_eq!(plan.decrypt_outputs(&key, &outputs).unwrap(), vec![row2[0], row0[0], row2[1], row0[1]]);
    /// ```
    pub fn lookup(
        &self,
        plan: &LookupPlan,
        query: &SeededGlweBatch,
        order: &OutputOrder,
    ) -> Result<LweBatch> {
        self.packed.lookup_with_plan(plan, query, order)
    }
}
