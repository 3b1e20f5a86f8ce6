//! The dot interaction's kernels: the bottom output's second copy at the squares' scale, the
//! GEMM forming every square's input, the square table, and the GEMM from squares and tables'
//! norms to pair features (`2 x y = (x + y)^2 - x^2 - y^2`, see `dlrm::DotLayout`).

use dlrm::{DotLayout, QuantizedModel};
use fhe::{Encoding, LookupTable, LutBits, LweDenseLayer};

use crate::error::{InferError, Result};
use crate::plan::{FhePlan, InteractionPlan};
use crate::scales::{encoding, shifted_bias};

/// The dot interaction's kernels.
pub(crate) struct DotStage {
    /// The bottom MLP's last activation, returned at the squares' input scale.
    pub(crate) bottom_copy: LookupTable,
    /// Bottom copy and lookup outputs to every pair's sums and the entries squared by
    /// bootstrap (minus the table's `lo`; lookup outputs multiplied up to the squares' scale).
    pub(crate) sums: LweDenseLayer,
    pub(crate) square: LookupTable,
    /// Squares, then the interaction's inputs (for the tables' norms, multiplied up to the
    /// pair features' scale), to pair features.
    pub(crate) pairs: LweDenseLayer,
}

impl DotStage {
    pub(crate) fn new(
        model: &QuantizedModel,
        plan: &FhePlan,
        params: &fhe::FheParameters,
    ) -> Result<Option<Self>> {
        let (Some(dot), Some(step)) = (&model.dot, &plan.interaction) else {
            return Ok(None);
        };
        let last_bottom = model.bottom.last().and_then(|l| l.activation.as_ref());
        let last_bottom = last_bottom.ok_or_else(|| {
            InferError::Unsupported("a dot model's bottom MLP must end in an activation".into())
        })?;
        let table = |entries: &[u32], lut_bits: u32, output: Encoding| {
            LookupTable::new(params, LutBits(lut_bits), output, |k| {
                output.reduce(i64::from(entries[k as usize]))
            })
        };
        let square_input = encoding(step.input_scale_log);
        let bottom_copy = table(&last_bottom.entries, last_bottom.lut_bits, square_input)?;
        let square = table(
            &dot.square.entries,
            dot.square.lut_bits,
            encoding(step.activation.output_scale_log),
        )?;
        let layout = DotLayout::of(&model.config);
        let inputs =
            InteractionInputs::new(&layout, plan.interface.lookup_scale_log, step, |_| true)?;
        let (rows, weights) = matrix(inputs.len, &|v| layout.square_inputs(&inputs.vectors(v)));
        let (bias, bias_encoding) = shifted_bias(
            &vec![0; rows],
            Some((dot.square.lo, dot.square.box_shift)),
            step.input_scale_log,
        );
        let sums = LweDenseLayer::new(rows, inputs.len, weights, bias, bias_encoding)?;
        let (pair_rows, pair_weights) = matrix(rows + inputs.len, &|v| {
            let (squares, rest) = v.split_at(rows);
            layout.pair_features(squares, &inputs.norms(rest))
        });
        let pairs = LweDenseLayer::new(
            pair_rows,
            rows + inputs.len,
            pair_weights,
            vec![0; pair_rows],
            encoding(step.activation.output_scale_log),
        )?;
        Ok(Some(DotStage {
            bottom_copy,
            sums,
            square,
            pairs,
        }))
    }
}

/// The interaction's input ciphertexts: the bottom copy (`d`, at the squares' scale), then each
/// table's lookup outputs at the lookup scale (`d` entries, and the squared norm for tables
/// that return one); a ranked request holds only the private vectors' inputs.
pub(crate) struct InteractionInputs {
    dim: usize,
    /// The vectors held, in order (0 is the bottom output).
    held: Vec<usize>,
    /// Outputs of each held vector: `d`, or `d + 1` with a table norm.
    widths: Vec<usize>,
    pub(crate) len: usize,
    /// Lookup scale to the squares' input scale.
    to_squares: i64,
    /// Lookup scale to the pair features' scale (tables with norms only).
    to_pairs: i64,
}

impl InteractionInputs {
    /// The inputs of the vectors for which `held` says yes.
    pub(crate) fn new(
        layout: &DotLayout,
        lookup_scale_log: u32,
        step: &InteractionPlan,
        held: impl Fn(usize) -> bool,
    ) -> Result<Self> {
        let power = |to: u32, what: &str| {
            to.checked_sub(lookup_scale_log)
                .filter(|shift| *shift < 62)
                .map(|shift| 1i64 << shift)
                .ok_or_else(|| {
                    InferError::Unsupported(format!(
                        "lookup outputs at 2^{lookup_scale_log} cannot reach {what} at 2^{to}"
                    ))
                })
        };
        let to_squares = power(step.input_scale_log, "the squares' inputs")?;
        let to_pairs = if step.table_norms > 0 {
            power(step.activation.output_scale_log, "the pair features")?
        } else {
            0
        };
        let dim = layout.dim();
        let held: Vec<usize> = (0..layout.table_norms().len())
            .filter(|&v| held(v))
            .collect();
        let widths: Vec<usize> = (held.iter())
            .map(|&v| dim + usize::from(layout.table_norms()[v]))
            .collect();
        Ok(InteractionInputs {
            dim,
            len: widths.iter().sum(),
            held,
            widths,
            to_squares,
            to_pairs,
        })
    }

    /// Each held vector's `d` values at the squares' scale and, for a table that returns it,
    /// its squared norm at the pair features' scale.
    pub(crate) fn split(&self, inputs: &[i64]) -> Vec<(Vec<i64>, Option<i64>)> {
        let mut at = 0;
        (self.held.iter().zip(&self.widths))
            .map(|(&v, &width)| {
                let scale = if v == 0 { 1 } else { self.to_squares };
                let values = inputs[at..at + self.dim]
                    .iter()
                    .map(|x| x * scale)
                    .collect();
                let norm = (width > self.dim).then(|| inputs[at + self.dim] * self.to_pairs);
                at += width;
                (values, norm)
            })
            .collect()
    }

    /// The vectors (`d` values each) at the squares' scale.
    fn vectors(&self, inputs: &[i64]) -> Vec<i64> {
        (self.split(inputs).into_iter())
            .flat_map(|(values, _)| values)
            .collect()
    }

    /// The tables' norms at the pair features' scale.
    fn norms(&self, inputs: &[i64]) -> Vec<i64> {
        (self.split(inputs).into_iter())
            .filter_map(|(_, norm)| norm)
            .collect()
    }
}

/// A linear map on `inputs` values as a row-major matrix: column `c` is the map applied to unit
/// vector `c`.
pub(crate) fn matrix(inputs: usize, map: &dyn Fn(&[i64]) -> Vec<i64>) -> (usize, Vec<i64>) {
    let columns: Vec<Vec<i64>> = (0..inputs)
        .map(|c| {
            let mut unit = vec![0; inputs];
            unit[c] = 1;
            map(&unit)
        })
        .collect();
    let rows = columns.first().map_or(0, Vec::len);
    let weights = (0..rows)
        .flat_map(|r| columns.iter().map(move |column| column[r]))
        .collect();
    (rows, weights)
}
