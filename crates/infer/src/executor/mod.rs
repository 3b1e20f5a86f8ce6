//! The server side: a quantized model prepared once for encrypted requests (packed first-layer
//! matrix, packed embedding tables, dense layers, lookup tables), and its execution.

use std::time::Instant;

use dlrm::{IntLayer, QuantizedModel};
use embed::{EmbeddingTable, OutputOrder, PackedTables};
use fhe::{
    CoefficientSlot, Encoding, LookupTable, LutBits, LweBatch, LweDenseLayer, PackedMatrix,
    ParameterSetId, SeededGlweBatch, ServerKey,
};
use rayon::prelude::*;

mod rank;
mod rank_dot;

use crate::dot_stage::DotStage;
use crate::error::{BatchError, InferError, Result, malformed};
use crate::interface::{ModelInterface, lookup_values};
use crate::plan::{FhePlan, compile};
use crate::scales::{encoding, shifted_bias};
use crate::timings::StageTimings;
use crate::trace::{ExecutionTrace, record};
use crate::wire::{Request, Response};
use rank::RankedPart;

/// A dense layer on LWE ciphertexts and the bootstrap that follows it (none for the output,
/// unless the model sanitises its output).
struct Stage {
    dense: LweDenseLayer,
    table: Option<LookupTable>,
}

/// A quantized model ready for encrypted requests. Build once (packs the tables and the first
/// layer's matrix, builds every lookup table), then run any number of requests, each with the
/// server key of the client that sent it.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use fhe::{ClientKey, KeySeed, ParameterSetId};
/// let model = infer::testing::tiny_model();
/// let server = infer::ServerModel::new(&model, ParameterSetId::default())?;
/// let client_key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
/// let server_key = client_key.compressed_server_key(KeySeed(2)).decompress();
/// let request = infer::encrypt_request(&client_key, server.interface(), &[0.5, -1.0], &[3, 7])?;
/// let (response, timings) = server.infer(&server_key, &request)?;
/// let numerator = infer::decrypt_response(&client_key, server.interface(), &response)?;
/// let exact = model.forward(&model.quantize_input(&[0.5, -1.0]), &[3, 7])?;
/// assert_eq!(numerator, exact); // the tiny model is exact by construction
/// println!("{:?}", timings.total());
/// # Ok(()) }
/// ```
pub struct ServerModel {
    plan: FhePlan,
    first: PackedMatrix,
    first_slots: Vec<CoefficientSlot>,
    /// The first layer's bias (see [`shifted_bias`]), added after extraction.
    first_bias: Vec<i64>,
    first_bias_encoding: Encoding,
    first_table: LookupTable,
    /// Bottom layers after the first, then the top layers.
    stages: Vec<Stage>,
    tables: Option<PackedTables>,
    dot: Option<DotStage>,
    /// What a ranked request needs beyond a single row's stages (models with a public table).
    ranked: Option<RankedPart>,
}

impl ServerModel {
    /// Compiles `model` for `parameter_set` and prepares its kernels.
    ///
    /// ```
    /// let model = infer::testing::tiny_model();
    /// let server = infer::ServerModel::new(&model, fhe::ParameterSetId::default()).unwrap();
    /// assert_eq!(server.plan().bootstraps(), 3 + 2 + 3);
    /// assert!(server.plan().lookup.products > 0);
    /// ```
    pub fn new(model: &QuantizedModel, parameter_set: ParameterSetId) -> Result<Self> {
        crate::noise::check_model_noise(model, parameter_set)?;
        let interface = ModelInterface::for_model(model, parameter_set)?;
        let mut plan = compile(model, interface)?;
        let params = parameter_set.parameters();
        let layers: Vec<&IntLayer> = model.bottom.iter().chain(&model.top).collect();
        let table_for = |index: usize| -> Result<Option<LookupTable>> {
            let (layer, step) = (layers[index], &plan.layers[index]);
            // A hidden layer's activations, or the output sanitiser's box centres.
            let entries: Vec<i64> = match (&layer.activation, &model.output_sanitiser) {
                (Some(table), _) => table.entries.iter().map(|&e| i64::from(e)).collect(),
                (None, Some(sanitiser)) if index + 1 == layers.len() => sanitiser.entries(),
                (None, _) => return Ok(None),
            };
            match step.activation {
                Some(a) => {
                    let output = encoding(a.output_scale_log);
                    Ok(Some(LookupTable::new(
                        &params,
                        LutBits(a.lut_bits),
                        output,
                        |k| output.reduce(entries[k as usize]),
                    )?))
                }
                None => Ok(None),
            }
        };
        let mut tables_of_layers = (0..layers.len())
            .map(table_for)
            .collect::<Result<Vec<_>>>()?
            .into_iter();

        let first_layer = layers[0];
        let layout = plan.interface.dense_layout()?;
        let first = PackedMatrix::from_fn(&params, layout, |r, c| {
            i64::from(first_layer.weights[r * first_layer.cols + c])
        })?;
        plan.layers[0].operations = first.product_count();
        let first_slots = (0..first_layer.rows)
            .map(|r| layout.output_slot(r))
            .collect();
        let boxes = |index: usize| plan.layers[index].activation.map(|a| (a.lo, a.box_shift));
        let (first_bias, first_bias_encoding) =
            shifted_bias(&first_layer.bias, boxes(0), plan.layers[0].input_scale_log);
        let first_table = tables_of_layers.next().flatten().ok_or_else(|| {
            InferError::Unsupported("the first bottom layer has no activation".into())
        })?;

        let mut stages = Vec::with_capacity(layers.len() - 1);
        for (index, layer) in layers.iter().enumerate().skip(1) {
            let (bias, bias_encoding) = shifted_bias(
                &layer.bias,
                boxes(index),
                plan.layers[index].input_scale_log,
            );
            let dense = LweDenseLayer::new(
                layer.rows,
                layer.cols,
                layer.weights.iter().map(|&w| i64::from(w)).collect(),
                bias,
                bias_encoding,
            )?;
            stages.push(Stage {
                dense,
                table: tables_of_layers.next().flatten(),
            });
        }

        let tables = match plan.interface.lookup_plan()? {
            None => None,
            Some(lookup_plan) => {
                let tables = plan
                    .interface
                    .tables
                    .iter()
                    .enumerate()
                    .map(|(t, shape)| EmbeddingTable::new(*shape, lookup_values(model, t).1))
                    .collect::<embed::Result<Vec<_>>>()?;
                let packed = PackedTables::new(lookup_plan, tables)?;
                plan.lookup.products = packed.product_count();
                Some(packed)
            }
        };
        let dot = DotStage::new(model, &plan, &params)?;
        let ranked = RankedPart::new(model, &plan)?;
        Ok(ServerModel {
            plan,
            first,
            first_slots,
            first_bias,
            first_bias_encoding,
            first_table,
            stages,
            tables,
            dot,
            ranked,
        })
    }

    /// The compiled plan.
    pub fn plan(&self) -> &FhePlan {
        &self.plan
    }

    /// What clients need to build requests.
    pub fn interface(&self) -> &ModelInterface {
        &self.plan.interface
    }

    /// Runs one request with the client's server key.
    pub fn infer(&self, key: &ServerKey, request: &Request) -> Result<(Response, StageTimings)> {
        let mut timings = StageTimings::default();
        let response = self.run(key, request, &mut timings, None, &never)?;
        Ok((response, timings))
    }

    /// Runs one request given as bytes and returns the response as bytes (see
    /// [`ServerModel::infer_batch_bytes`]).
    pub fn infer_bytes(&self, key: &ServerKey, bytes: &[u8]) -> Result<(Vec<u8>, StageTimings)> {
        let mut answers = self
            .infer_batch_bytes(key, &[bytes])
            .map_err(BatchError::into_inner)?;
        Ok(answers.pop().expect("one request gives one answer"))
    }

    /// Runs requests given as bytes, all with one server key, and returns each response as
    /// bytes, in order: what a service does. Every request is decoded before any runs, so one
    /// that does not decode fails the batch without costing a bootstrap. The timings include
    /// decoding and encoding.
    pub fn infer_batch_bytes<B: AsRef<[u8]> + Sync>(
        &self,
        key: &ServerKey,
        requests: &[B],
    ) -> std::result::Result<Vec<(Vec<u8>, StageTimings)>, BatchError> {
        self.infer_batch_bytes_until(key, requests, &never)
    }

    /// Like [`ServerModel::infer_batch_bytes`], asking `abandoned` at every layer boundary
    /// whether the caller still wants the answers: once it says yes, every request stops
    /// before its next stage with [`InferError::Abandoned`], so the work of a client that
    /// disconnected ends within one layer.
    ///
    /// ```
    /// use fhe::{ClientKey, KeySeed, ParameterSetId};
    /// let server = infer::ServerModel::new(&infer::testing::tiny_model(), ParameterSetId::default())?;
    /// let client_key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let server_key = client_key.compressed_server_key(KeySeed(2)).decompress();
    /// let request = infer::encrypt_request(&client_key, server.interface(), &[0.5, -1.0], &[3, 7])?;
    /// let bytes = request.to_bytes()?;
    /// let error = server
    ///     .infer_batch_bytes_until(&server_key, &[bytes], &|| true)
    ///     .unwrap_err()
    ///     .into_inner();
    /// assert!(matches!(error, infer::InferError::Abandoned { stage: "bottom" }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn infer_batch_bytes_until<B: AsRef<[u8]> + Sync>(
        &self,
        key: &ServerKey,
        requests: &[B],
        abandoned: &(dyn Fn() -> bool + Sync),
    ) -> std::result::Result<Vec<(Vec<u8>, StageTimings)>, BatchError> {
        let decoded = each(requests.iter().enumerate().collect(), |(index, bytes)| {
            let started = Instant::now();
            let request = Request::from_bytes(bytes.as_ref(), self.interface())
                .map_err(|source| BatchError::Request { index, source })?;
            Ok((request, started.elapsed()))
        })?;
        each(decoded, |(request, decode)| {
            let mut timings = StageTimings::default();
            let response = self.run(key, &request, &mut timings, None, abandoned)?;
            timings.decode += decode;
            let started = Instant::now();
            let bytes = response.to_bytes()?;
            timings.encode = started.elapsed();
            Ok((bytes, timings))
        })
        .map_err(BatchError::Execution)
    }

    /// Like [`ServerModel::infer`], keeping every intermediate ciphertext.
    pub fn infer_traced(
        &self,
        key: &ServerKey,
        request: &Request,
    ) -> Result<(Response, ExecutionTrace)> {
        let mut trace = ExecutionTrace {
            layers: Vec::new(),
            interaction: None,
            top_input: None,
        };
        let response = self.run(
            key,
            request,
            &mut StageTimings::default(),
            Some(&mut trace),
            &never,
        )?;
        Ok((response, trace))
    }

    fn run(
        &self,
        key: &ServerKey,
        request: &Request,
        timings: &mut StageTimings,
        mut trace: Option<&mut ExecutionTrace>,
        abandoned: &(dyn Fn() -> bool + Sync),
    ) -> Result<Response> {
        let stage_may_start = |stage: &'static str| may_start(abandoned, stage);
        self.check_request(key, &request.model_id, request.parameter_set)?;
        let (mut x, mut vectors) =
            self.bottom(key, &request.dense, timings, &mut trace, abandoned)?;

        stage_may_start("lookup")?;
        let query = request.query.as_ref();
        append_lookups(
            self.tables.as_ref(),
            query,
            &mut x,
            &mut vectors,
            "request",
            timings,
        )?;

        stage_may_start("interaction")?;
        let started = Instant::now();
        if let (Some(dot), Some(vectors)) = (&self.dot, vectors) {
            let sums = dot.sums.apply(&vectors)?;
            let mut squares = key.keyswitch_bootstrap(&sums, &dot.square)?;
            if let Some(trace) = trace.as_deref_mut() {
                trace.interaction = Some((sums, squares.clone()));
            }
            // The pair features read the squares, then the tables' norms among the inputs.
            squares.append(&vectors)?;
            x.append(&dot.pairs.apply(&squares)?)?;
        }
        timings.interaction = started.elapsed();
        if let Some(trace) = trace.as_deref_mut() {
            trace.top_input = Some(x.clone());
        }

        let started = Instant::now();
        for stage in self.top_stages() {
            stage_may_start("top")?;
            let accumulators = stage.dense.apply(&x)?;
            match &stage.table {
                Some(table) => {
                    x = key.keyswitch_bootstrap(&accumulators, table)?;
                    record(&mut trace, &accumulators, Some(&x));
                }
                None => {
                    record(&mut trace, &accumulators, None);
                    x = accumulators;
                }
            }
        }
        timings.top = started.elapsed();
        Ok(Response {
            model_id: self.interface().model_id.clone(),
            parameter_set: self.interface().parameter_set,
            logit: x,
        })
    }

    /// Refuses a request for another model, or ciphertexts or a key of another parameter set.
    fn check_request(
        &self,
        key: &ServerKey,
        model_id: &str,
        parameter_set: ParameterSetId,
    ) -> Result<()> {
        let interface = self.interface();
        if model_id != interface.model_id {
            return Err(InferError::ModelMismatch {
                what: "request",
                expected: interface.model_id.clone(),
                found: model_id.to_owned(),
            });
        }
        for found in [parameter_set, key.parameters().id()] {
            if found != interface.parameter_set {
                return Err(fhe::FheError::ParameterSetMismatch {
                    expected: interface.parameter_set,
                    found,
                }
                .into());
            }
        }
        Ok(())
    }

    /// The bottom MLP on the request's dense GLWEs: its output, and for a dot model the output's
    /// second copy at the squares' scale.
    fn bottom(
        &self,
        key: &ServerKey,
        dense: &SeededGlweBatch,
        timings: &mut StageTimings,
        trace: &mut Option<&mut ExecutionTrace>,
        abandoned: &(dyn Fn() -> bool + Sync),
    ) -> Result<(LweBatch, Option<LweBatch>)> {
        let started = Instant::now();
        let dense = dense.decompress().to_ntt()?;
        timings.decode = started.elapsed();

        may_start(abandoned, "bottom")?;
        let started = Instant::now();
        let mut accumulators = self.first.apply(&dense)?.extract(&self.first_slots)?;
        accumulators.add_plaintexts(&self.first_bias, self.first_bias_encoding)?;
        let mut x = key.keyswitch_bootstrap(&accumulators, &self.first_table)?;
        record(trace, &accumulators, Some(&x));
        for stage in &self.stages[..self.plan.bottom_layers - 1] {
            may_start(abandoned, "bottom")?;
            accumulators = stage.dense.apply(&x)?;
            let table = stage.table.as_ref().expect("bottom layers have tables");
            x = key.keyswitch_bootstrap(&accumulators, table)?;
            record(trace, &accumulators, Some(&x));
        }
        // A dot model's squares read the bottom output at their own scale.
        let vectors = match &self.dot {
            Some(dot) => Some(key.keyswitch_bootstrap(&accumulators, &dot.bottom_copy)?),
            None => None,
        };
        timings.bottom = started.elapsed();
        Ok((x, vectors))
    }

    /// The top MLP's stages, the first top layer first.
    fn top_stages(&self) -> &[Stage] {
        &self.stages[self.plan.bottom_layers - 1..]
    }
}

/// `Abandoned` at `stage` once the caller has given up.
/// The encrypted lookups of `query` in `tables`, appended to the interaction's vectors (dot
/// models) or else to the first top layer's input `x`; a query without tables, or tables without
/// a query, is a malformed `what`.
fn append_lookups(
    tables: Option<&PackedTables>,
    query: Option<&SeededGlweBatch>,
    x: &mut LweBatch,
    vectors: &mut Option<LweBatch>,
    what: &'static str,
    timings: &mut StageTimings,
) -> Result<()> {
    let started = Instant::now();
    match (tables, query) {
        (Some(tables), Some(query)) => {
            let embeddings = tables.lookup(query, &OutputOrder::SlotMajor)?;
            vectors.as_mut().unwrap_or(x).append(&embeddings)?;
        }
        (None, None) => {}
        _ => return Err(malformed(what, "query present or missing")),
    }
    timings.lookup = started.elapsed();
    Ok(())
}

fn may_start(abandoned: &(dyn Fn() -> bool + Sync), stage: &'static str) -> Result<()> {
    match abandoned() {
        true => Err(InferError::Abandoned { stage }),
        false => Ok(()),
    }
}

/// A caller that never gives up.
fn never() -> bool {
    false
}

/// Applies `job` to every item: side by side on the current rayon pool for several, on the
/// calling thread for one (whose stages parallelise inside), so a single request runs where its
/// caller does.
fn each<T: Send, U: Send, E: Send>(
    items: Vec<T>,
    job: impl Fn(T) -> std::result::Result<U, E> + Sync + Send,
) -> std::result::Result<Vec<U>, E> {
    if items.len() == 1 {
        items.into_iter().map(job).collect()
    } else {
        items.into_par_iter().map(job).collect()
    }
}
