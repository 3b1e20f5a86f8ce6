//! `dlrm-he keygen|plan|infer`: keys, the FHE plan of a quantized model, and encrypted inference
//! of raw rows with client and server in one process, compared with the integer reference and
//! the float model.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use client::{Client, KeyDirectory, ServiceClient};
use datasets::{MappedRow, RowMapper};
use dlrm::{DlrmWeights, Execution, QuantizedModel};
use fhe::{ClientKey, Encoding, LookupTable, LutBits, ParameterSetId, ScaleLog, ServerKey};
use infer::ServerModel;

use crate::report::{CLASS_PASSES, RowOutcome, ms, print_summary};

pub fn parameter_set(name: &str) -> Result<ParameterSetId, String> {
    name.parse().map_err(|_| {
        let known: Vec<&str> = ParameterSetId::ALL.iter().map(|p| p.name()).collect();
        format!("unknown parameter set; known: {}", known.join(", "))
    })
}

#[derive(Args)]
pub struct KeygenArgs {
    /// Directory to create: client.key (secret), server.key (compressed, for the server), keys.json.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, value_parser = parameter_set, default_value_t = ParameterSetId::default())]
    pub parameter_set: ParameterSetId,
}

#[derive(Args)]
pub struct PlanArgs {
    /// Quantized model file (from `dlrm-he quantize`).
    pub model: PathBuf,
    #[arg(long, value_parser = parameter_set, default_value_t = ParameterSetId::default())]
    pub parameter_set: ParameterSetId,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The model, keys and dataset an encrypted run needs.
#[derive(Args)]
pub struct SessionArgs {
    /// Quantized model file (from `dlrm-he quantize`).
    #[arg(long)]
    pub model: PathBuf,
    /// Key directory (from `dlrm-he keygen`).
    #[arg(long)]
    pub keys: PathBuf,
    /// The prepared dataset the model was trained on: its vocabularies and transforms map raw
    /// rows on the client, its splits supply held-out rows (not needed with --encoded).
    #[arg(long)]
    pub data: Option<PathBuf>,
}

impl SessionArgs {
    fn data(&self) -> anyhow::Result<&Path> {
        self.data
            .as_deref()
            .context("give --data (the prepared dataset), or --encoded rows")
    }
}

#[derive(Args)]
pub struct InferArgs {
    #[command(flatten)]
    pub session: SessionArgs,
    /// Raw rows in the dataset's own format (Criteo TSV, UCI heart CSV lines).
    #[arg(long, required_unless_present_any = ["split", "encoded"], conflicts_with_all = ["split", "encoded"])]
    pub input: Option<PathBuf>,
    /// Rows of a split of the prepared dataset instead (for example `test`: held-out rows).
    #[arg(long, conflicts_with = "encoded")]
    pub split: Option<String>,
    /// Rows already in the model's input form instead (CSV with a header: optional `label`, the
    /// dense values, one id per table), for models without a prepared dataset.
    #[arg(long)]
    pub encoded: Option<PathBuf>,
    /// The float model directory, to print its probabilities alongside.
    #[arg(long)]
    pub float_model: Option<PathBuf>,
    /// Rows to run (from the start of the input).
    #[arg(long, default_value_t = 20)]
    pub rows: usize,
    /// Seed of the integer reference's simulated noise.
    #[arg(long, default_value_t = 1)]
    pub simulate_seed: u64,
    /// Send the encrypted requests to a running `dlrm-he serve` (e.g. http://127.0.0.1:8080)
    /// instead of running them in this process. The server key is registered first.
    #[arg(long)]
    pub server: Option<String>,
    /// The model's name on the service (default: the model file's name without extension).
    #[arg(long, requires = "server")]
    pub server_model: Option<String>,
}

#[derive(Args)]
pub struct BenchInferArgs {
    #[command(flatten)]
    pub session: SessionArgs,
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Time these rows instead of the split's (CSV in the model's input form: optional
    /// `label`, the dense values, one id per table), for models without a prepared dataset.
    #[arg(long)]
    pub encoded: Option<PathBuf>,
    /// Requests to time (the medians are over these).
    #[arg(long, default_value_t = 5)]
    pub requests: usize,
}

/// `dlrm-he bench infer`: server compute per request (median), bootstraps, the floor ratio,
/// sizes and client times, with the encrypted results checked against the reference.
pub fn bench_infer(args: BenchInferArgs) -> anyhow::Result<()> {
    if args.requests == 0 {
        bail!("--requests must be at least 1");
    }
    let session = Session::open(&args.session.model, &args.session.keys)?;
    let rows = match &args.encoded {
        Some(file) => encoded_rows(&session.model, file, args.requests)?,
        None => split_rows(args.session.data()?, &args.split, args.requests)?,
    };
    // Fewer rows than requests: the rows are sent again in turn.
    let rows: Vec<&MappedRow> = rows.iter().cycle().take(args.requests).collect();
    println!("{}\n", session.server.plan());
    let progress = crate::progress::Bar::rows();
    datasets::Progress::start(&progress, "requests", Some(rows.len() as u64));
    let mut outcomes = Vec::with_capacity(rows.len());
    for (index, row) in rows.iter().enumerate() {
        outcomes.push(session.run_row(row, index as u64, None, 1)?);
        datasets::Progress::advance(&progress, 1);
    }
    progress.finish();
    let bootstrap = session.bootstrap_cost()?;
    println!(
        "machine: {} threads ({}); {} requests of {}",
        rayon::current_num_threads(),
        std::env::consts::ARCH,
        outcomes.len(),
        args.session.model.display()
    );
    print_summary(&session.model, session.server.plan(), &outcomes, bootstrap);
    Ok(())
}

pub fn keygen(args: KeygenArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let keys = KeyDirectory::generate(&args.out, args.parameter_set)?;
    println!(
        "wrote {}: client key {:.1} KiB (secret), server key {:.1} MiB (compressed), parameter set {} ({:.2} s)",
        args.out.display(),
        keys.client_key_bytes as f64 / 1024.0,
        keys.server_key_bytes as f64 / (1 << 20) as f64,
        keys.parameter_set,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

pub fn plan(args: PlanArgs) -> anyhow::Result<()> {
    let model = QuantizedModel::load(&args.model)?;
    let server = ServerModel::new(&model, args.parameter_set)
        .with_context(|| format!("compiling {}", args.model.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(server.plan())?);
    } else {
        println!("{}", server.plan());
    }
    Ok(())
}

/// A model, its keys and its client, ready to run rows.
pub struct Session {
    pub model: QuantizedModel,
    pub server: ServerModel,
    pub client: Client,
    pub client_key: ClientKey,
    pub server_key: ServerKey,
    /// When set, requests go to this service instead of `server`.
    pub remote: Option<Remote>,
}

/// A service the session's requests go to.
pub struct Remote {
    pub http: ServiceClient,
    pub model: String,
    pub key_id: String,
}

impl Remote {
    /// Connects to `url`, checks that its model `name` is the session's model, and registers
    /// the session's server key.
    pub fn connect(url: &str, name: &str, session: &Session, keys: &Path) -> anyhow::Result<Self> {
        let http = ServiceClient::new(url, Duration::from_secs(600))?;
        let interface = http.model_interface(name)?;
        if interface != *session.server.interface() {
            bail!(
                "the service's model `{name}` (id {}) is not the model file given (id {})",
                &interface.model_id[..16],
                &session.server.interface().model_id[..16]
            );
        }
        let key = KeyDirectory::open(keys)?.load_server_key()?;
        let registered = http.register_key(&key)?;
        println!(
            "service {url}: model `{name}`, server key {} ({})",
            registered.key_id,
            if registered.created {
                "registered now"
            } else {
                "already registered"
            }
        );
        Ok(Remote {
            http,
            model: name.to_owned(),
            key_id: registered.key_id,
        })
    }
}

impl Session {
    pub fn open(model: &Path, keys: &Path) -> anyhow::Result<Self> {
        let quantized = QuantizedModel::load(model)?;
        let keys = KeyDirectory::open(keys)?;
        let server = ServerModel::new(&quantized, keys.parameter_set)
            .with_context(|| format!("compiling {}", model.display()))?;
        let client_key = keys.load_client_key()?;
        let server_key = keys.load_server_key()?.decompress();
        let client = Client::new(client_key.clone(), server.interface().clone())?;
        Ok(Session {
            model: quantized,
            server,
            client,
            client_key,
            server_key,
            remote: None,
        })
    }

    /// Encrypts, runs and decrypts one mapped row, with the references beside it.
    pub fn run_row(
        &self,
        row: &MappedRow,
        index: u64,
        float: Option<&DlrmWeights>,
        simulate_seed: u64,
    ) -> anyhow::Result<RowOutcome> {
        let started = Instant::now();
        let request = self.client.encrypt(&row.dense, &row.ids)?.to_bytes()?;
        let encrypt = started.elapsed();
        let (response, server) = match &self.remote {
            None => self.server.infer_bytes(&self.server_key, &request)?,
            Some(remote) => {
                let answer = remote.http.infer(&remote.model, &remote.key_id, &request)?;
                (answer.bytes, answer.stages.unwrap_or_default())
            }
        };
        let started = Instant::now();
        let prediction = self.client.decrypt_bytes(&response)?;
        let decrypt = started.elapsed();
        let inputs = self.model.quantize_input(&row.dense);
        let reference_numerator = self.model.forward(&inputs, &row.ids)?;
        let simulated_numerator = self
            .model
            .trace(
                &inputs,
                &row.ids,
                Execution::Simulate {
                    seed: simulate_seed,
                },
                index,
            )?
            .logit_numerator;
        let class_kept = self.model.simulated_class_kept(
            &inputs,
            &row.ids,
            index,
            (0..CLASS_PASSES).map(|pass| simulate_seed.wrapping_add(pass)),
        )?;
        let float_logit = float
            .map(|w| w.forward(&row.dense, &row.ids).map(f64::from))
            .transpose()?;
        Ok(RowOutcome {
            label: row.label,
            float_logit,
            reference_numerator,
            simulated_numerator,
            class_kept,
            encrypted_numerator: prediction.logit_numerator as f64,
            encrypt,
            decrypt,
            upload_bytes: request.len(),
            download_bytes: response.len(),
            server,
        })
    }

    /// Measures one keyswitch + bootstrap alone (one thread) and in a batch on every thread,
    /// in this process: the floor a request's latency is compared with.
    pub fn bootstrap_cost(&self) -> anyhow::Result<(Duration, Duration)> {
        let params = self.client_key.parameters();
        let output = Encoding::new(ScaleLog(58))?;
        let lut = LookupTable::new(&params, LutBits(5), output, |i| i as i64)?;
        let one = self
            .client_key
            .encrypt_lwe_batch(&[3], lut.input_encoding())?;
        self.server_key.keyswitch_bootstrap(&one, &lut)?; // warm-up
        let mut singles: Vec<Duration> = (0..5)
            .map(|_| {
                let started = Instant::now();
                self.server_key
                    .keyswitch_bootstrap(&one, &lut)
                    .map(|_| started.elapsed())
            })
            .collect::<Result<_, _>>()?;
        singles.sort();
        let count = 8 * rayon::current_num_threads();
        let many = self
            .client_key
            .encrypt_lwe_batch(&vec![3; count], lut.input_encoding())?;
        let started = Instant::now();
        self.server_key.keyswitch_bootstrap(&many, &lut)?;
        Ok((singles[2], started.elapsed() / count as u32))
    }
}

/// A model's name on the service: its file's name without the extension.
pub fn model_name(path: &Path) -> anyhow::Result<String> {
    path.file_stem()
        .and_then(|s| s.to_str())
        .map(str::to_owned)
        .with_context(|| format!("{}: no usable file name for a model", path.display()))
}

/// Reads up to `limit` raw rows and maps them, reporting `FILE:LINE:` on a bad row.
pub fn read_rows(mapper: &RowMapper, input: &Path, limit: usize) -> anyhow::Result<Vec<MappedRow>> {
    let file =
        std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?;
    let mut rows = Vec::new();
    for (number, line) in std::io::BufReader::new(file).split(b'\n').enumerate() {
        if rows.len() == limit {
            break;
        }
        let line = line.with_context(|| format!("reading {}", input.display()))?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let row = mapper
            .map_line(&line)
            .map_err(|e| anyhow::anyhow!("{}:{}: {e}", input.display(), number + 1))?;
        rows.push(row);
    }
    if rows.is_empty() {
        bail!("{}: no rows", input.display());
    }
    Ok(rows)
}

/// The first `limit` rows of a prepared split, as mapped rows.
pub fn split_rows(data: &Path, split: &str, limit: usize) -> anyhow::Result<Vec<MappedRow>> {
    let data = datasets::PreparedDataset::open(data)?.load_split(split)?;
    Ok(mapped_rows(&data, limit, true))
}

/// The first `limit` rows of an encoded-rows CSV for `model`, as mapped rows.
pub fn encoded_rows(
    model: &QuantizedModel,
    file: &Path,
    limit: usize,
) -> anyhow::Result<Vec<MappedRow>> {
    let c = &model.config;
    let tables: Vec<usize> = c.tables.iter().map(|t| t.rows).collect();
    let read = datasets::read_encoded_rows(file, c.dense_features, &tables, Some(limit))?;
    Ok(mapped_rows(&read.rows, limit, read.labelled))
}

fn mapped_rows(data: &datasets::SplitData, limit: usize, labelled: bool) -> Vec<MappedRow> {
    (0..data.rows().min(limit))
        .map(|r| MappedRow {
            label: labelled.then_some(data.labels[r]),
            dense: data.dense_row(r).to_vec(),
            ids: data.categorical_row(r).to_vec(),
            unknown_values: 0,
        })
        .collect()
}

pub fn infer(args: InferArgs) -> anyhow::Result<()> {
    let mut session = Session::open(&args.session.model, &args.session.keys)?;
    if let Some(url) = &args.server {
        let name = match &args.server_model {
            Some(name) => name.clone(),
            None => model_name(&args.session.model)?,
        };
        session.remote = Some(Remote::connect(url, &name, &session, &args.session.keys)?);
    }
    let float = args
        .float_model
        .as_deref()
        .map(|dir| dlrm::load_model(dir).map(|m| m.weights))
        .transpose()?;
    let rows = match (&args.input, &args.split, &args.encoded) {
        (Some(input), _, _) => {
            read_rows(&RowMapper::open(args.session.data()?)?, input, args.rows)?
        }
        (None, Some(split), _) => split_rows(args.session.data()?, split, args.rows)?,
        (None, None, Some(file)) => encoded_rows(&session.model, file, args.rows)?,
        (None, None, None) => bail!("give --input, --split or --encoded"),
    };
    println!("{}\n", session.server.plan());
    let unknown: usize = rows.iter().map(|r| r.unknown_values).sum();
    if unknown > 0 {
        println!(
            "{unknown} categorical values not in the vocabularies were sent as the reserved id 0"
        );
    }
    println!(
        "{:>5} {:>5} {:>9} {:>9} {:>9} {:>11} {:>11} {:>11} {:>11} {:>9}",
        "row",
        "label",
        "p float",
        "p int",
        "p enc",
        "numerator",
        "enc - int",
        "logit float",
        "logit enc",
        "server ms"
    );
    let scale = session.model.logit_scale;
    let mut outcomes = Vec::with_capacity(rows.len());
    for (index, row) in rows.iter().enumerate() {
        let o = session.run_row(row, index as u64, float.as_ref(), args.simulate_seed)?;
        println!(
            "{:>5} {:>5} {:>9} {:>9.4} {:>9.4} {:>11} {:>+11.2} {:>11} {:>+11.6} {:>9.0}",
            index,
            o.label.map_or("-".into(), |l| l.to_string()),
            o.float_logit
                .map_or("-".into(), |l| format!("{:.4}", dlrm::sigmoid(l))),
            dlrm::sigmoid(o.reference_numerator as f64 * scale),
            dlrm::sigmoid(o.encrypted_numerator * scale),
            o.reference_numerator,
            o.encrypted_numerator - o.reference_numerator as f64,
            o.float_logit.map_or("-".into(), |l| format!("{l:+.6}")),
            o.encrypted_numerator * scale,
            ms(o.server.total()),
        );
        outcomes.push(o);
    }
    let bootstrap = session.bootstrap_cost()?;
    println!();
    print_summary(&session.model, session.server.plan(), &outcomes, bootstrap);
    Ok(())
}
