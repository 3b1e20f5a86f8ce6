//! The in-process session of the encrypted commands (`infer`, `bench infer`, `bench serve`): a
//! quantized model compiled for the server, the client key and the server key, an optional
//! remote service, and the rows they run (raw, from a prepared split, or already encoded).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use client::{Client, KeyDirectory, ServiceClient};
use datasets::MappedRow;
use dlrm::{DlrmWeights, Execution, QuantizedModel};
use fhe::{ClientKey, Encoding, LookupTable, LutBits, ParameterSetId, ScaleLog, ServerKey};
use infer::ServerModel;

use crate::report::{CLASS_PASSES, RowOutcome};

/// Parses a parameter set's name (a `--parameter-set` value).
pub(crate) fn parameter_set(name: &str) -> Result<ParameterSetId, String> {
    name.parse().map_err(|_| {
        let known: Vec<&str> = ParameterSetId::ALL.iter().map(|p| p.name()).collect();
        format!("unknown parameter set; known: {}", known.join(", "))
    })
}

/// The model, keys and dataset an encrypted run needs.
#[derive(Args)]
pub(crate) struct SessionArgs {
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
    pub(crate) fn data(&self) -> anyhow::Result<&Path> {
        self.data
            .as_deref()
            .context("give --data (the prepared dataset), or --encoded rows")
    }
}

/// A model, its keys and its client, ready to run rows.
pub(crate) struct Session {
    pub model: QuantizedModel,
    pub server: ServerModel,
    pub client: Client,
    pub client_key: ClientKey,
    pub server_key: ServerKey,
    /// When set, requests go to this service instead of `server`.
    pub remote: Option<Remote>,
}

/// A service the session's requests go to.
pub(crate) struct Remote {
    pub http: ServiceClient,
    pub model: String,
    pub key_id: String,
}

impl Remote {
    /// Connects to `url` (trusting the CA certificate file `ca` for https, and with the bearer
    /// `token` of a service with tenants), checks that its model `name` is the session's model,
    /// and registers the session's server key.
    pub(crate) fn connect(
        url: &str,
        name: &str,
        session: &Session,
        keys: &Path,
        ca: Option<&Path>,
        token: Option<&str>,
    ) -> anyhow::Result<Self> {
        let mut http = ServiceClient::new(url, Duration::from_secs(600))?;
        if let Some(ca) = ca {
            let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
            http = http
                .with_ca(&pem)
                .with_context(|| format!("--ca {}", ca.display()))?;
        }
        if let Some(token) = token {
            http = http.with_token(token);
        }
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
    pub(crate) fn open(model: &Path, keys: &Path) -> anyhow::Result<Self> {
        Self::open_with_roles(model, keys, None)
    }

    /// Like [`Session::open`], serving the model with the feature roles `roles` names (see
    /// `--roles`) instead of its own.
    pub(crate) fn open_with_roles(
        model: &Path,
        keys: &Path,
        roles: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let quantized = crate::roles_arg::load_with_roles(model, roles)?;
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
    pub(crate) fn run_row(
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
    pub(crate) fn bootstrap_cost(&self) -> anyhow::Result<(Duration, Duration)> {
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
pub(crate) fn model_name(path: &Path) -> anyhow::Result<String> {
    path.file_stem()
        .and_then(|s| s.to_str())
        .map(str::to_owned)
        .with_context(|| format!("{}: no usable file name for a model", path.display()))
}

/// The first `limit` rows of a prepared split, as mapped rows.
pub(crate) fn split_rows(data: &Path, split: &str, limit: usize) -> anyhow::Result<Vec<MappedRow>> {
    let data = datasets::PreparedDataset::open(data)?.load_split(split)?;
    Ok(mapped_rows(&data, limit, true))
}

/// The first `limit` rows of an encoded-rows CSV for `model`, as mapped rows.
pub(crate) fn encoded_rows(
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
