//! What one request's execution can keep for checks against the integer reference: every
//! intermediate ciphertext ([`ExecutionTrace`]) and, decrypted with the client key, every
//! intermediate integer ([`DecryptedTrace`]).

use fhe::{ClientKey, LweBatch};

use crate::error::Result;
use crate::plan::FhePlan;
use crate::scales::encoding;

/// Every intermediate ciphertext of one request, for layer-by-layer checks against the
/// integer reference (a debugging and testing aid: a server never decrypts these).
pub struct ExecutionTrace {
    /// Per layer: the accumulators (minus the table's `lo` where a table follows) at the layer's
    /// input scale, and the activations at the next layer's input scale.
    pub layers: Vec<(LweBatch, Option<LweBatch>)>,
    /// The dot interaction's square inputs (pair sums and vector entries, minus the table's
    /// `lo`) and their squares.
    pub interaction: Option<(LweBatch, LweBatch)>,
    /// The first top layer's input: bottom output, then the embedding sums or pair features.
    pub top_input: Option<LweBatch>,
}

/// Every decrypted ciphertext of an [`ExecutionTrace`].
#[derive(Clone, Debug, PartialEq)]
pub struct DecryptedTrace {
    /// Per layer, bottom then top.
    pub layers: Vec<DecryptedLayer>,
    /// The dot interaction's square inputs (as accumulators) and squares.
    pub interaction: Option<DecryptedLayer>,
    /// The first top layer's input, empty when it was not recorded.
    pub top_input: Vec<i64>,
}

/// One decrypted layer of an [`ExecutionTrace`].
#[derive(Clone, Debug, PartialEq)]
pub struct DecryptedLayer {
    /// Accumulators `W x + b` (with `lo` added back), rounded from their noisy phases.
    pub accumulators: Vec<i64>,
    /// What the bootstraps returned (the squares for the interaction), empty for the output
    /// layer unless the model sanitises its output (then the sanitised numerator).
    pub activations: Vec<i64>,
}

impl ExecutionTrace {
    /// Decrypts every recorded ciphertext with the client key.
    pub fn decrypt(&self, key: &ClientKey, plan: &FhePlan) -> Result<DecryptedTrace> {
        let mut layers = Vec::with_capacity(self.layers.len());
        for ((accumulators, activations), layer) in self.layers.iter().zip(&plan.layers) {
            let lo = layer.activation.map_or(0, |a| a.lo);
            let accumulators = key
                .decrypt_lwe_batch(accumulators, encoding(layer.input_scale_log))?
                .into_iter()
                .map(|a| a + lo)
                .collect();
            let activations = match (activations, layer.activation) {
                (Some(batch), Some(a)) => {
                    key.decrypt_lwe_batch(batch, encoding(a.output_scale_log))?
                }
                _ => Vec::new(),
            };
            layers.push(DecryptedLayer {
                accumulators,
                activations,
            });
        }
        let interaction = match (&self.interaction, &plan.interaction) {
            (Some((sums, squares)), Some(dot)) => Some(DecryptedLayer {
                accumulators: key
                    .decrypt_lwe_batch(sums, encoding(dot.input_scale_log))?
                    .into_iter()
                    .map(|u| u + dot.activation.lo)
                    .collect(),
                activations: key
                    .decrypt_lwe_batch(squares, encoding(dot.activation.output_scale_log))?,
            }),
            _ => None,
        };
        let top_input = match (&self.top_input, plan.layers.get(plan.bottom_layers)) {
            (Some(batch), Some(top)) => {
                key.decrypt_lwe_batch(batch, encoding(top.input_scale_log))?
            }
            _ => Vec::new(),
        };
        Ok(DecryptedTrace {
            layers,
            interaction,
            top_input,
        })
    }
}

/// Appends one layer's accumulators and activations to the trace, when one is kept.
pub(crate) fn record(
    trace: &mut Option<&mut ExecutionTrace>,
    accumulators: &LweBatch,
    activations: Option<&LweBatch>,
) {
    if let Some(trace) = trace.as_deref_mut() {
        trace
            .layers
            .push((accumulators.clone(), activations.cloned()));
    }
}
