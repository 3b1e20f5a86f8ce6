//! Which outputs a lookup returns and in what order, and where each sits in the packed product
//! ciphertexts.

use fhe::CoefficientSlot;
use serde::{Deserialize, Serialize};

use crate::error::{EmbedError, Result};
use crate::plan::LookupPlan;

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

impl LookupPlan {
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
