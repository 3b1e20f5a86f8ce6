//! `dlrm-he embed`: token embeddings of a text looked up under encryption with a real tokenizer
//! and embedding table, checked against the plaintext table: load and quantise the table, pack it
//! (server), generate a client key, encrypt the token ids, look them up, decrypt, compare, and
//! print what was measured.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use embed::llm::{BERT_TOKEN_TENSOR, TokenLookup, TokenModel, TokenizedText, prompt_plan};
use embed::{EmbedError, LookupPlan, OutputOrder};
use fhe::{ClientKey, KeySeed, ParameterSetId, SeededGlweBatch};

#[derive(Args)]
pub(crate) struct EmbedArgs {
    /// Model directory holding `tokenizer.json` and `model.safetensors` (for example
    /// all-MiniLM-L6-v2).
    #[arg(long)]
    pub model: PathBuf,
    /// The text to embed.
    pub text: String,
    /// Name of the token-embedding tensor (F32, [vocabulary, dimension]).
    #[arg(long, default_value = BERT_TOKEN_TENSOR)]
    pub tensor: String,
    /// Width of the signed integers the table is quantised to (symmetric, one scale).
    #[arg(long, default_value_t = 8)]
    pub bits: u32,
    /// Look the tokens up one query at a time (decode steps) instead of the whole prompt at once.
    #[arg(long)]
    pub token_by_token: bool,
    /// Order of the output ciphertexts.
    #[arg(long, value_enum, default_value_t = OrderArg::TokenMajor)]
    pub order: OrderArg,
    /// Leave out the tokenizer's special tokens ([CLS], [SEP]).
    // clap prints this comment verbatim as the `--help` text, where `\[CLS\]` would keep its
    // backslashes; rustdoc shows an unresolved link as its plain text.
    #[allow(rustdoc::broken_intra_doc_links)]
    #[arg(long)]
    pub no_special_tokens: bool,
    /// Seed of the client key (default: drawn from the operating system).
    #[arg(long)]
    pub key_seed: Option<u128>,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum OrderArg {
    /// Every component of token 1, then of token 2, ...
    TokenMajor,
    /// Component 0 of every token, then component 1, ...
    ComponentMajor,
}

pub(crate) fn run(args: EmbedArgs) -> anyhow::Result<()> {
    let options = EmbedOptions {
        tensor: args.tensor,
        bits: args.bits,
        mode: if args.token_by_token {
            LookupMode::TokenByToken
        } else {
            LookupMode::Prompt
        },
        order: match args.order {
            OrderArg::TokenMajor => OutputOrder::SlotMajor,
            OrderArg::ComponentMajor => OutputOrder::ComponentMajor,
        },
        add_special_tokens: !args.no_special_tokens,
        key_seed: args.key_seed,
    };
    let report = run_embed_command(&args.model, &args.text, &options)
        .with_context(|| format!("embedding with the model in {}", args.model.display()))?;
    println!("{report}");
    anyhow::ensure!(
        report.is_exact(),
        "the encrypted lookup differs from the quantised table in {} outputs",
        report.integer_mismatches
    );
    Ok(())
}

/// How [`run_embed_command`] sends the tokens of a text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum LookupMode {
    /// One query and one lookup for the whole prompt.
    #[default]
    Prompt,
    /// One query and one lookup per token, as decode steps would.
    TokenByToken,
}

/// Options of [`run_embed_command`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EmbedOptions {
    /// Name of the token-embedding tensor in `model.safetensors`.
    pub tensor: String,
    /// Width of the quantised integers.
    pub bits: u32,
    /// Whole prompt at once, or token by token.
    pub mode: LookupMode,
    /// Order of the outputs: over the whole prompt in [`LookupMode::Prompt`], over each token's
    /// components in [`LookupMode::TokenByToken`].
    pub order: OutputOrder,
    /// Add the tokenizer's special tokens (`[CLS]`, `[SEP]`).
    pub add_special_tokens: bool,
    /// Seed of the client key; `None` draws one from the operating system.
    pub key_seed: Option<u128>,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        EmbedOptions {
            tensor: BERT_TOKEN_TENSOR.to_string(),
            bits: 8,
            mode: LookupMode::Prompt,
            order: OutputOrder::SlotMajor,
            add_special_tokens: true,
            key_seed: None,
        }
    }
}

/// Wall-clock time of each stage of [`run_embed_command`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct EmbedStageTimings {
    /// Reading the tokenizer and the tensor, quantising.
    pub load: Duration,
    /// Server: packing and transforming the table (once per model).
    pub pack: Duration,
    /// Client key generation (the lookup needs no server key).
    pub keygen: Duration,
    /// Client: encrypting the queries.
    pub encrypt: Duration,
    /// Server: the encrypted lookups.
    pub lookup: Duration,
    /// Client: decrypting the outputs.
    pub decrypt: Duration,
}

/// What [`run_embed_command`] did and measured; `Display` prints it for people.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct EmbedReport {
    /// Rows and dimension of the table.
    pub table_shape: (usize, usize),
    /// Quantisation width.
    pub bits: u32,
    /// Quantisation scale (float value of one integer step).
    pub scale: f32,
    /// The tokens looked up.
    pub text: TokenizedText,
    /// The lookup mode used.
    pub mode: LookupMode,
    /// Decrypted, dequantised embedding of every token (components in table order).
    pub embeddings: Vec<Vec<f32>>,
    /// Largest `|decrypted * scale - float table entry|` over all outputs.
    pub max_error_vs_float: f32,
    /// Outputs that differ from the quantised integer table (0 for an exact lookup).
    pub integer_mismatches: usize,
    /// Number of outputs checked.
    pub output_count: usize,
    /// Serialized size of all queries.
    pub upload_bytes: usize,
    /// GLWE ciphertexts of all queries.
    pub query_glwes: usize,
    /// GLWE x plaintext products per token.
    pub products_per_token: usize,
    /// Stage timings.
    pub timings: EmbedStageTimings,
}

impl EmbedReport {
    /// Whether every decrypted output equals the quantised integer table.
    pub(crate) fn is_exact(&self) -> bool {
        self.integer_mismatches == 0
    }
}

impl fmt::Display for EmbedReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (rows, dim) = self.table_shape;
        let tokens = self.text.ids.len();
        writeln!(
            f,
            "table: {rows} x {dim}, quantised to {} bits, scale {:.6e} (max quantisation error {:.6e})",
            self.bits,
            self.scale,
            self.scale / 2.0
        )?;
        writeln!(f, "tokens ({tokens}, {:?} lookup):", self.mode)?;
        for ((id, token), embedding) in self
            .text
            .ids
            .iter()
            .zip(&self.text.tokens)
            .zip(&self.embeddings)
        {
            let head: Vec<String> = embedding
                .iter()
                .take(4)
                .map(|v| format!("{v:+.4}"))
                .collect();
            let more = if embedding.len() > 4 { ", ..." } else { "" };
            writeln!(f, "  {id:>6} {token:<16} [{}{more}]", head.join(", "))?;
        }
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let t = &self.timings;
        writeln!(
            f,
            "timings: load {:.1} ms, pack {:.1} ms, keygen {:.1} ms, encrypt {:.1} ms, lookup {:.1} ms ({:.1} ms per token), decrypt {:.1} ms",
            ms(t.load),
            ms(t.pack),
            ms(t.keygen),
            ms(t.encrypt),
            ms(t.lookup),
            ms(t.lookup) / tokens as f64,
            ms(t.decrypt)
        )?;
        writeln!(
            f,
            "upload: {} bytes in {} GLWE ciphertexts ({:.1} KiB per token); {} products per token",
            self.upload_bytes,
            self.query_glwes,
            self.upload_bytes as f64 / 1024.0 / tokens as f64,
            self.products_per_token
        )?;
        writeln!(
            f,
            "exact vs quantised integer table: {} ({} of {} outputs differ)",
            if self.is_exact() { "yes" } else { "NO" },
            self.integer_mismatches,
            self.output_count
        )?;
        write!(
            f,
            "max error of the decrypted embeddings vs the float table: {:.6e}",
            self.max_error_vs_float
        )
    }
}

/// Embeds `text` with the model in `model_dir` under encryption and checks the result: load and
/// quantise the table, pack it (server), generate a client key, encrypt the token ids, look them
/// up, decrypt, and compare with the integer and the float table.
pub(crate) fn run_embed_command(
    model_dir: &Path,
    text: &str,
    options: &EmbedOptions,
) -> embed::Result<EmbedReport> {
    let start = Instant::now();
    let model = TokenModel::load(model_dir, &options.tensor, options.bits)?;
    let load = start.elapsed();
    let tokens = model.tokenize(text, options.add_special_tokens)?;
    if tokens.ids.is_empty() {
        return Err(EmbedError::NoTokens);
    }
    let table = model.table();
    let shape = table.table().shape();
    let parameter_set = ParameterSetId::default();

    let start = Instant::now();
    let server = TokenLookup::new(&parameter_set.parameters(), table)?;
    let pack = start.elapsed();

    let start = Instant::now();
    let key = match options.key_seed {
        Some(seed) => ClientKey::from_seed(parameter_set, KeySeed(seed)),
        None => ClientKey::generate(parameter_set),
    };
    let keygen = start.elapsed();
    let params = key.parameters();

    // (plan, ids) of every lookup: the whole prompt at once, or one token at a time.
    let lookups: Vec<(LookupPlan, Vec<u64>)> = match options.mode {
        LookupMode::Prompt => vec![(
            prompt_plan(&params, shape, tokens.ids.len())?,
            tokens.ids.clone(),
        )],
        LookupMode::TokenByToken => {
            let plan = prompt_plan(&params, shape, 1)?;
            tokens
                .ids
                .iter()
                .map(|&id| (plan.clone(), vec![id]))
                .collect()
        }
    };

    let start = Instant::now();
    let queries = lookups
        .iter()
        .map(|(plan, ids)| plan.encrypt_query(&key, ids))
        .collect::<embed::Result<Vec<_>>>()?;
    let encrypt = start.elapsed();
    let mut upload_bytes = 0;
    for query in &queries {
        upload_bytes += query.to_bytes()?.len();
    }
    let query_glwes = queries.iter().map(SeededGlweBatch::len).sum();

    let start = Instant::now();
    let outputs = lookups
        .iter()
        .zip(&queries)
        .map(|((plan, _), query)| server.lookup(plan, query, &options.order))
        .collect::<embed::Result<Vec<_>>>()?;
    let lookup = start.elapsed();

    let start = Instant::now();
    let decrypted = lookups
        .iter()
        .zip(&outputs)
        .map(|((plan, _), outputs)| plan.decrypt_outputs(&key, outputs))
        .collect::<embed::Result<Vec<_>>>()?;
    let decrypt = start.elapsed();

    // Put every decrypted output back at (token, component) through the declared order.
    let dim = table.dim();
    let mut integer_outputs = vec![vec![0i64; dim]; tokens.ids.len()];
    let mut output_count = 0;
    let mut first_token = 0;
    for ((plan, ids), values) in lookups.iter().zip(&decrypted) {
        for (output, &value) in options.order.resolve(plan)?.iter().zip(values) {
            integer_outputs[first_token + output.slot][output.component] = value;
            output_count += 1;
        }
        first_token += ids.len();
    }
    let mut integer_mismatches = 0;
    let mut max_error_vs_float = 0f32;
    for (&id, outputs) in tokens.ids.iter().zip(&integer_outputs) {
        let expected = table.table().row(id);
        let float_row = table.float_row(id as usize);
        for ((&value, &reference), &float) in outputs.iter().zip(&expected).zip(float_row) {
            integer_mismatches += usize::from(value != reference);
            max_error_vs_float = max_error_vs_float.max((table.dequantize(value) - float).abs());
        }
    }
    let embeddings = integer_outputs
        .iter()
        .map(|row| row.iter().map(|&v| table.dequantize(v)).collect())
        .collect();
    Ok(EmbedReport {
        table_shape: (table.rows(), dim),
        bits: table.bits(),
        scale: table.scale(),
        text: tokens,
        mode: options.mode,
        embeddings,
        max_error_vs_float,
        integer_mismatches,
        output_count,
        upload_bytes,
        query_glwes,
        products_per_token: server.product_count(),
        timings: EmbedStageTimings {
            load,
            pack,
            keygen,
            encrypt,
            lookup,
            decrypt,
        },
    })
}

#[cfg(test)]
mod tests;
