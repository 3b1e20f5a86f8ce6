//! The FHE plan of a quantized model: per layer, the kernel that runs it, the encodings around
//! it, its lookup table and its cost; printed by `dlrm-he plan` before anything is encrypted.

use std::fmt;

use dlrm::{DotLayout, IntLayer, QuantizedModel};
use fhe::ParameterSetId;
use serde::Serialize;

use crate::error::{InferError, Result};
use crate::interface::ModelInterface;
use crate::scales::{activation_input_scale_log, input_scale_log, output_scale_log};

/// How a layer is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Kernel {
    /// Coefficient-packed GLWE x plaintext-polynomial products on the client's dense GLWEs,
    /// then sample extraction of the outputs (the first bottom layer).
    PackedProduct {
        /// The client's dense GLWE ciphertexts the layer reads.
        input_glwes: usize,
        /// The product GLWE ciphertexts the outputs are extracted from.
        output_glwes: usize,
    },
    /// Integer weights x LWE ciphertexts (wrapping `u64` GEMM).
    LweGemm,
}

/// The activation that follows a hidden layer (or the output sanitiser that follows the output
/// layer): one keyswitch + programmable bootstrap per output, reading the accumulator in
/// `2^lut_bits` boxes of `2^box_shift` from `lo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ActivationPlan {
    /// Log2 of the number of boxes.
    pub lut_bits: u32,
    /// Log2 of the box width, in accumulator units.
    pub box_shift: u32,
    /// Centre of the first box, in accumulator units.
    pub lo: i64,
    /// Scale (log2) of the table's outputs: the next layer's input scale.
    pub output_scale_log: u32,
}

/// One dense layer of the plan.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerPlan {
    /// `bottom.K` or `top.K`.
    pub name: String,
    /// How the layer is computed.
    pub kernel: Kernel,
    /// Output width.
    pub rows: usize,
    /// Input width.
    pub cols: usize,
    /// Scale (log2) of the layer's inputs and accumulators.
    pub input_scale_log: u32,
    /// `None` for the output layer, unless the model sanitises its output: then the
    /// sanitiser's identity table on the numerator's boxes, returning the output encoding.
    pub activation: Option<ActivationPlan>,
    /// Plaintext-polynomial products (packed kernel) or weight x ciphertext multiply-adds
    /// (GEMM, non-zero weights only).
    pub operations: usize,
    /// Probability that the noisiest row's bootstrap reads a neighbouring box for an
    /// accumulator at a box centre (noise model; `p(miss)` in the printed plan). Accumulators
    /// near a box edge flip more often: that is the bootstrap rounding `simulate` reproduces.
    pub wrong_box_rate: f64,
}

impl LayerPlan {
    /// Bootstraps the layer's activation (or output sanitiser) costs (one per output).
    pub fn bootstraps(&self) -> usize {
        if self.activation.is_some() {
            self.rows
        } else {
            0
        }
    }
}

/// The embedding lookups of the plan.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LookupSummary {
    /// Embedding tables looked up.
    pub tables: usize,
    /// GLWE ciphertexts of the client's one-hot query.
    pub query_glwes: usize,
    /// Plaintext-polynomial products (all-zero tiles skipped).
    pub products: usize,
    /// LWE outputs, in the top MLP's input order.
    pub outputs: usize,
}

/// The dot interaction of the plan: the bottom output is bootstrapped a second time at the
/// squares' input scale, every pair's sums `v_i[k] + v_j[k]` and the entries of the vectors
/// without a table norm are formed (a small-integer LWE GEMM), squared by one bootstrap each,
/// and combined with the tables' norms into the pair features `2 v_i . v_j` (a second GEMM) at
/// the top MLP's input scale.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InteractionPlan {
    /// Pairs of vectors whose dot products feed the top MLP.
    pub pairs: usize,
    /// Squares, one bootstrap each: `pairs x d` sums, plus `d` entries for each vector whose
    /// squared norm does not come with its lookup.
    pub squares: usize,
    /// Vectors whose squared norms come with their lookups (small full tables).
    pub table_norms: usize,
    /// Bootstraps of the bottom output at the squares' input scale (its `d` values).
    pub bottom_copies: usize,
    /// The square table's boxes.
    pub activation: ActivationPlan,
    /// Scale (log2) of the squares' inputs: the bottom copies' and the lookup outputs' scale.
    pub input_scale_log: u32,
    /// Non-zero weights of the two GEMMs.
    pub operations: usize,
    /// Probability that a square of a pair with the bottom output reads a neighbouring box.
    pub wrong_box_rate: f64,
}

impl InteractionPlan {
    /// Bootstraps of the interaction: the squares and the bottom copies.
    pub fn bootstraps(&self) -> usize {
        self.squares + self.bottom_copies
    }
}

/// Costs in core-milliseconds of the kernels, for the plan's estimate. The default figures are
/// the kernel benchmarks of the 2_2 set on this project's 2-core development machine, listed
/// with that machine in `docs/fhe.md` (the constants below restate them).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CostModel {
    /// One keyswitch + programmable bootstrap.
    pub bootstrap_ms: f64,
    /// One GLWE x plaintext-polynomial product.
    pub product_ms: f64,
    /// One integer weight x LWE ciphertext multiply-add.
    pub multiply_add_ms: f64,
}

impl CostModel {
    /// The measured figures for `parameter_set`. The 3_3 set's are the 2_2 set's scaled: its
    /// bootstraps by their measured ratio on this machine (docs/dlrm.md, "Quantizing for the 3_3
    /// set"), its products by its four times longer polynomials.
    pub fn for_parameter_set(parameter_set: ParameterSetId) -> Self {
        let base = CostModel {
            bootstrap_ms: 2.0 * 19.4,
            product_ms: 0.04,
            multiply_add_ms: 2.0 * 95.7 / (512.0 * 512.0),
        };
        match parameter_set {
            ParameterSetId::Tfhe1_8Message2Carry2KsPbsTUniform2M128 => base,
            ParameterSetId::Tfhe1_8Message3Carry3KsPbsTUniform2M128 => CostModel {
                bootstrap_ms: base.bootstrap_ms * 7.6,
                product_ms: base.product_ms * 4.0,
                multiply_add_ms: base.multiply_add_ms * 4.0,
            },
        }
    }
}

/// A compiled model: its interface, the layers in execution order (bottom, then top) and the
/// lookup between them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FhePlan {
    /// What clients of the compiled model need.
    pub interface: ModelInterface,
    /// Bottom layers, then top layers; the lookup runs after the bottom MLP and its outputs
    /// follow the bottom output in the first top layer's input.
    pub layers: Vec<LayerPlan>,
    /// How many of `layers` are the bottom MLP's.
    pub bottom_layers: usize,
    /// The embedding lookups.
    pub lookup: LookupSummary,
    /// The dot interaction (`None` for concat: the first top layer reads the bottom output and
    /// the lookup outputs directly).
    pub interaction: Option<InteractionPlan>,
    /// Per-kernel costs the estimate is computed with.
    pub cost: CostModel,
}

impl FhePlan {
    /// Total bootstraps of one request.
    pub fn bootstraps(&self) -> usize {
        self.layers.iter().map(LayerPlan::bootstraps).sum::<usize>()
            + self
                .interaction
                .as_ref()
                .map_or(0, InteractionPlan::bootstraps)
    }

    /// Estimated server time of one request with `threads` threads, in milliseconds.
    pub fn estimated_ms(&self, threads: usize) -> f64 {
        let products = self.lookup.products
            + self
                .layers
                .iter()
                .filter(|l| matches!(l.kernel, Kernel::PackedProduct { .. }))
                .map(|l| l.operations)
                .sum::<usize>();
        let multiply_adds: usize = self
            .layers
            .iter()
            .filter(|l| l.kernel == Kernel::LweGemm)
            .map(|l| l.operations)
            .sum::<usize>()
            + self.interaction.as_ref().map_or(0, |i| i.operations);
        let core_ms = self.bootstraps() as f64 * self.cost.bootstrap_ms
            + products as f64 * self.cost.product_ms
            + multiply_adds as f64 * self.cost.multiply_add_ms;
        core_ms / threads.max(1) as f64
    }
}

impl fmt::Display for FhePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.interface;
        writeln!(f, "model {}", i.model_id)?;
        writeln!(f, "parameter set {}", i.parameter_set)?;
        let (dense_glwes, query_glwes) = (
            self.layers.first().map_or(0, |l| match l.kernel {
                Kernel::PackedProduct { input_glwes, .. } => input_glwes,
                Kernel::LweGemm => 0,
            }),
            self.lookup.query_glwes,
        );
        let n = i.parameter_set.parameters().polynomial_size().0;
        writeln!(
            f,
            "request: {dense_glwes} dense + {query_glwes} query GLWE ciphertexts (seeded, about {} KiB); response: 1 LWE ciphertext ({} KiB)",
            (dense_glwes + query_glwes) * (n * 8) / 1024,
            (n + 1) * 8 / 1024
        )?;
        writeln!(
            f,
            "{:<10} {:<16} {:>10} {:>7} {:>9} {:>10} {:>10} {:>9}",
            "stage", "kernel", "shape", "scale", "lut bits", "bootstraps", "operations", "p(miss)"
        )?;
        let row = |f: &mut fmt::Formatter<'_>, layer: &LayerPlan| {
            let kernel = match layer.kernel {
                Kernel::PackedProduct { .. } => "packed product",
                Kernel::LweGemm => "LWE GEMM",
            };
            writeln!(
                f,
                "{:<10} {:<16} {:>10} {:>7} {:>9} {:>10} {:>10} {:>9.1e}",
                layer.name,
                kernel,
                format!("{}x{}", layer.rows, layer.cols),
                format!("2^{}", layer.input_scale_log),
                layer
                    .activation
                    .map_or("-".to_string(), |a| a.lut_bits.to_string()),
                layer.bootstraps(),
                layer.operations,
                layer.wrong_box_rate,
            )
        };
        for layer in &self.layers[..self.bottom_layers] {
            row(f, layer)?;
        }
        writeln!(
            f,
            "{:<10} {:<16} {:>10} {:>7} {:>9} {:>10} {:>10} {:>9}",
            "lookup",
            "packed tables",
            format!("{} tables", self.lookup.tables),
            format!("2^{}", i.lookup_scale_log),
            "-",
            0,
            self.lookup.products,
            "exact"
        )?;
        if let Some(dot) = &self.interaction {
            writeln!(
                f,
                "{:<10} {:<16} {:>10} {:>7} {:>9} {:>10} {:>10} {:>9.1e}",
                "dot",
                "squares (PBS)",
                format!("{} pairs", dot.pairs),
                format!("2^{}", dot.input_scale_log),
                dot.activation.lut_bits,
                dot.bootstraps(),
                dot.operations,
                dot.wrong_box_rate,
            )?;
            writeln!(
                f,
                "           ({} squares of pair sums and vector entries, 2 x y = (x + y)^2 - x^2 - y^2, {} squared norms returned by tables, and {} bootstraps of the bottom output at the squares' scale)",
                dot.squares, dot.table_norms, dot.bottom_copies
            )?;
        }
        for layer in &self.layers[self.bottom_layers..] {
            row(f, layer)?;
        }
        write!(
            f,
            "total: {} bootstraps; estimated {:.0} ms on 1 thread, {:.0} ms on {} threads",
            self.bootstraps(),
            self.estimated_ms(1),
            self.estimated_ms(rayon::current_num_threads()),
            rayon::current_num_threads()
        )
    }
}

/// The layers of `model` as the executor runs them (without the lookup's exact product count,
/// which the server fills in once its tables are packed).
pub(crate) fn compile(model: &QuantizedModel, interface: ModelInterface) -> Result<FhePlan> {
    let layout = interface.dense_layout()?;
    let all: Vec<(String, &IntLayer)> = model
        .bottom
        .iter()
        .enumerate()
        .map(|(k, l)| (format!("bottom.{k}"), l))
        .chain(
            model
                .top
                .iter()
                .enumerate()
                .map(|(k, l)| (format!("top.{k}"), l)),
        )
        .collect();
    let mut layers = Vec::with_capacity(all.len());
    for (index, (name, layer)) in all.iter().enumerate() {
        let scale = input_scale_log(model, layer, index + 1 == all.len())?;
        let activation = match (&layer.activation, all.get(index + 1)) {
            (Some(table), Some((_, next))) => Some(ActivationPlan {
                lut_bits: table.lut_bits,
                box_shift: table.box_shift,
                lo: table.lo,
                output_scale_log: input_scale_log(model, next, index + 2 == all.len())?,
            }),
            // The output sanitiser: the output layer's table, returning the output encoding.
            (None, None) => match &model.output_sanitiser {
                Some(s) => Some(ActivationPlan {
                    lut_bits: s.lut_bits,
                    box_shift: s.box_shift,
                    lo: s.lo,
                    output_scale_log: output_scale_log(model)?,
                }),
                None => None,
            },
            _ => {
                return Err(InferError::Unsupported(format!(
                    "{name}: activation tables must follow every layer but the output layer"
                )));
            }
        };
        let kernel = if index == 0 {
            Kernel::PackedProduct {
                input_glwes: layout.input_glwe_count(),
                output_glwes: layout.output_glwe_count(),
            }
        } else {
            Kernel::LweGemm
        };
        let operations = match kernel {
            Kernel::PackedProduct {
                input_glwes,
                output_glwes,
            } => input_glwes * output_glwes,
            Kernel::LweGemm => layer.weights.iter().filter(|&&w| w != 0).count(),
        };
        let wrong_box_rate = activation.map_or(0.0, |a| {
            let norm = layer.max_noise_norm(&model.column_noises(index));
            model
                .noise
                .wrong_box_rate(model.noise.bootstrap_input_sd(norm), a.lut_bits)
        });
        layers.push(LayerPlan {
            name: name.clone(),
            kernel,
            rows: layer.rows,
            cols: layer.cols,
            input_scale_log: scale,
            activation,
            operations,
            wrong_box_rate,
        });
    }
    let lookup = LookupSummary {
        tables: interface.tables.len(),
        query_glwes: interface.request_glwe_counts()?.1,
        products: 0,
        outputs: interface.tables.iter().map(|t| t.dim).sum(),
    };
    let interaction = match &model.dot {
        None => None,
        Some(dot) => {
            let table = &dot.square;
            let d = model.config.embedding_dim;
            let layout = DotLayout::of(&model.config);
            let pairs = layout.pairs();
            let squares = layout.square_count();
            let table_norms = layout.table_norms().iter().filter(|&&n| n).count();
            Some(InteractionPlan {
                pairs,
                squares,
                table_norms,
                bottom_copies: d,
                activation: ActivationPlan {
                    lut_bits: table.lut_bits,
                    box_shift: table.box_shift,
                    lo: table.lo,
                    output_scale_log: input_scale_log(model, &model.top[0], model.top.len() == 1)?,
                },
                input_scale_log: activation_input_scale_log(table)?,
                // Two terms per sum and one per entry, then per pair feature its squares (or
                // a table's norm in place of a vector's d squares).
                operations: 2 * pairs * d
                    + (squares - pairs * d)
                    + layout
                        .pair_noises()
                        .iter()
                        .map(|&n| n as usize + (3 * d - n as usize) / d.max(1))
                        .sum::<usize>(),
                wrong_box_rate: model
                    .noise
                    .wrong_box_rate(model.noise.bootstrap_input_sd(1.0), table.lut_bits),
            })
        }
    };
    let cost = CostModel::for_parameter_set(interface.parameter_set);
    Ok(FhePlan {
        interface,
        layers,
        bottom_layers: model.bottom.len(),
        lookup,
        interaction,
        cost,
    })
}
