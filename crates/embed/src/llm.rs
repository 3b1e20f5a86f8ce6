//! LLM token-embedding mode: a real tokenizer (`tokenizer.json`) and a token-embedding matrix
//! (an F32 tensor in a safetensors file), quantised symmetrically to integers, looked up exactly
//! under encryption in one-hot mode, one token (a decode step) or a whole prompt at a time.
//!
//! The server packs the table once ([`TokenLookup::new`]); every token is a group of its own
//! ([`prompt_plan`]), so the same packed table serves prompts of any length, and the outputs of
//! a prompt come out in any [`OutputOrder`] over its tokens (`SlotMajor` is token-major:
//! `[e_1 | e_2 | ...]`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fhe::{ClientKey, FheParameters, KeySeed, LweBatch, ParameterSetId, SeededGlweBatch};
use safetensors::{Dtype, SafeTensorError, SafeTensors};
use tokenizers::Tokenizer;

use crate::error::{EmbedError, Result};
use crate::plan::{LookupPlan, OutputOrder, PackingOptions, TableShape};
use crate::tables::{EmbeddingTable, PackedTables};

/// The token-embedding tensor of BERT-style models such as all-MiniLM-L6-v2.
pub const BERT_TOKEN_TENSOR: &str = "embeddings.word_embeddings.weight";
/// The tokenizer file of a model directory.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// The weights file of a model directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Largest safetensors file read (it is read whole into memory).
const MAX_WEIGHTS_BYTES: u64 = 4 << 30;
/// Largest tokenizer file read (all-MiniLM-L6-v2's is 0.5 MB).
const MAX_TOKENIZER_BYTES: u64 = 64 << 20;
/// Integer widths accepted; wider tables fail the exactness check of the plan anyway.
const QUANTIZATION_BITS: std::ops::RangeInclusive<u32> = 2..=16;

/// A float token-embedding matrix and its symmetric integer quantisation
/// `q = round(x / scale)`, `|q| <= 2^(bits-1) - 1`, `scale = max |x| / (2^(bits-1) - 1)`.
/// The float values stay as the reference the decrypted embeddings are compared with.
///
/// ```
/// use embed::llm::QuantizedTable;
/// let table = QuantizedTable::quantize(2, 2, vec![0.5, -1.0, 0.25, 0.0], 8).unwrap();
/// assert_eq!(table.scale(), 1.0 / 127.0);
/// assert_eq!(table.table().row(0), vec![64, -127]);
/// assert_eq!(table.float_row(1), &[0.25, 0.0]);
/// ```
#[derive(Clone, Debug)]
pub struct QuantizedTable {
    rows: usize,
    dim: usize,
    bits: u32,
    scale: f32,
    float_values: Vec<f32>,
    table: EmbeddingTable,
}

impl QuantizedTable {
    /// Quantises a row-major `rows x dim` float matrix to `bits`-bit signed integers.
    ///
    /// ```
    /// use embed::{EmbedError, llm::QuantizedTable};
    /// let table = QuantizedTable::quantize(1, 3, vec![2.0, -1.2, 0.1], 4).unwrap();
    /// assert_eq!(table.table().row(0), vec![7, -4, 0]); // scale 2/7
    /// assert!(matches!(QuantizedTable::quantize(1, 2, vec![1.0, f32::NAN], 8), Err(EmbedError::NonFiniteWeight { index: 1, .. })));
    /// assert!(QuantizedTable::quantize(2, 2, vec![1.0; 3], 8).is_err());
    /// assert!(QuantizedTable::quantize(1, 1, vec![1.0], 1).is_err());
    /// ```
    pub fn quantize(rows: usize, dim: usize, float_values: Vec<f32>, bits: u32) -> Result<Self> {
        if !QUANTIZATION_BITS.contains(&bits) {
            return Err(EmbedError::InvalidArgument(format!(
                "quantisation bits must be in {QUANTIZATION_BITS:?}, got {bits}"
            )));
        }
        let expected = rows.checked_mul(dim).ok_or_else(|| {
            EmbedError::InvalidArgument(format!("a {rows} x {dim} table is too large"))
        })?;
        if float_values.len() != expected {
            return Err(EmbedError::SizeMismatch {
                what: "float table entries (rows x dimension)".into(),
                expected,
                found: float_values.len(),
            });
        }
        if let Some((index, &value)) = float_values
            .iter()
            .enumerate()
            .find(|(_, v)| !v.is_finite())
        {
            return Err(EmbedError::NonFiniteWeight { index, value });
        }
        let max_level = (1i64 << (bits - 1)) - 1;
        let max_abs = float_values.iter().fold(0f32, |m, v| m.max(v.abs()));
        // An all-zero table quantises to zeros at any scale; 1 keeps dequantisation finite.
        let scale = if max_abs > 0.0 {
            max_abs / max_level as f32
        } else {
            1.0
        };
        let levels = float_values
            .iter()
            .map(|&v| ((v / scale).round() as i64).clamp(-max_level, max_level))
            .collect();
        let shape = TableShape::one_hot(rows as u64, dim, max_level)?;
        Ok(QuantizedTable {
            rows,
            dim,
            bits,
            scale,
            float_values,
            table: EmbeddingTable::new(shape, levels)?,
        })
    }

    /// Reads tensor `tensor` of a safetensors file (F32, `[rows, dim]`) and quantises it. The
    /// file is untrusted: its size, header, dtype and shape are checked, and every problem is a
    /// typed error.
    ///
    /// ```
    /// use embed::{EmbedError, llm::QuantizedTable};
    /// use safetensors::{Dtype, tensor::TensorView};
    /// let path = std::env::temp_dir().join(format!("embed-doc-load-{}.safetensors", std::process::id()));
    /// let bytes: Vec<u8> = [0.5f32, -0.25, 1.0, 0.0, 0.75, -1.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    /// let view = TensorView::new(Dtype::F32, vec![3, 2], &bytes).unwrap();
    /// std::fs::write(&path, safetensors::serialize([("weight", view)], None).unwrap()).unwrap();
    /// let table = QuantizedTable::load_safetensors(&path, "weight", 8).unwrap();
    /// assert_eq!((table.rows(), table.dim()), (3, 2));
    /// assert_eq!(table.table().row(2), vec![95, -127]);
    /// assert!(matches!(QuantizedTable::load_safetensors(&path, "other", 8), Err(EmbedError::TensorMissing { .. })));
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn load_safetensors(path: &Path, tensor: &str, bits: u32) -> Result<Self> {
        let bytes = read_limited(path, MAX_WEIGHTS_BYTES)?;
        let file = SafeTensors::deserialize(&bytes).map_err(|source| EmbedError::Safetensors {
            path: path.to_path_buf(),
            source,
        })?;
        let view = file.tensor(tensor).map_err(|source| match source {
            SafeTensorError::TensorNotFound(_) => EmbedError::TensorMissing {
                path: path.to_path_buf(),
                name: tensor.to_string(),
            },
            source => EmbedError::Safetensors {
                path: path.to_path_buf(),
                source,
            },
        })?;
        if view.dtype() != Dtype::F32 {
            return Err(EmbedError::TensorDtype {
                name: tensor.to_string(),
                found: format!("{:?}", view.dtype()),
            });
        }
        let (rows, dim) = match *view.shape() {
            [rows, dim] if rows > 0 && dim > 0 => (rows, dim),
            _ => {
                return Err(EmbedError::TensorShape {
                    name: tensor.to_string(),
                    found: view.shape().to_vec(),
                });
            }
        };
        let data = view.data();
        let expected = rows
            .checked_mul(dim)
            .and_then(|entries| entries.checked_mul(4))
            .ok_or_else(|| EmbedError::TensorShape {
                name: tensor.to_string(),
                found: view.shape().to_vec(),
            })?;
        if data.len() != expected {
            return Err(EmbedError::SizeMismatch {
                what: format!("bytes of tensor {tensor:?}"),
                expected,
                found: data.len(),
            });
        }
        let float_values = data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Self::quantize(rows, dim, float_values, bits)
    }

    /// Number of rows (tokens).
    ///
    /// ```
    /// use embed::llm::QuantizedTable;
    /// assert_eq!(QuantizedTable::quantize(3, 1, vec![1.0; 3], 8).unwrap().rows(), 3);
    /// ```
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Embedding dimension.
    ///
    /// ```
    /// use embed::llm::QuantizedTable;
    /// assert_eq!(QuantizedTable::quantize(1, 3, vec![1.0; 3], 8).unwrap().dim(), 3);
    /// ```
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Width of the signed integers.
    ///
    /// ```
    /// use embed::llm::QuantizedTable;
    /// assert_eq!(QuantizedTable::quantize(1, 1, vec![1.0], 6).unwrap().bits(), 6);
    /// ```
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// The float value of one integer step.
    ///
    /// ```
    /// use embed::llm::QuantizedTable;
    /// assert_eq!(QuantizedTable::quantize(1, 2, vec![-3.0, 1.0], 3).unwrap().scale(), 1.0);
    /// ```
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// The quantised integer table (the exact reference of an encrypted lookup).
    ///
    /// ```
    /// use embed::llm::QuantizedTable;
    /// let table = QuantizedTable::quantize(1, 2, vec![-3.0, 1.0], 3).unwrap();
    /// assert_eq!(table.table().row(0), vec![-3, 1]);
    /// ```
    pub fn table(&self) -> &EmbeddingTable {
        &self.table
    }

    /// Float row `id` as loaded. Panics if `id` is not a row.
    ///
    /// ```
    /// use embed::llm::QuantizedTable;
    /// let table = QuantizedTable::quantize(2, 1, vec![0.5, 0.25], 8).unwrap();
    /// assert_eq!(table.float_row(1), &[0.25]);
    /// ```
    pub fn float_row(&self, id: usize) -> &[f32] {
        &self.float_values[id * self.dim..(id + 1) * self.dim]
    }

    /// The float value an integer output stands for.
    ///
    /// ```
    /// use embed::llm::QuantizedTable;
    /// let table = QuantizedTable::quantize(1, 1, vec![2.0], 2).unwrap();
    /// assert_eq!(table.dequantize(-1), -2.0);
    /// ```
    pub fn dequantize(&self, value: i64) -> f32 {
        value as f32 * self.scale
    }
}

/// A tokenizer and its quantised token-embedding table.
///
/// ```
/// # let dir = embed::llm::doc_model_dir("model-type");
/// use embed::llm::{BERT_TOKEN_TENSOR, TokenModel};
/// let model = TokenModel::load(&dir, BERT_TOKEN_TENSOR, 8).unwrap();
/// assert_eq!(model.table().rows(), 6);
/// ```
pub struct TokenModel {
    tokenizer_path: PathBuf,
    tokenizer: Tokenizer,
    table: QuantizedTable,
}

/// The tokens of a text: ids (rows of the table) and their strings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenizedText {
    /// Token ids, in text order.
    pub ids: Vec<u64>,
    /// The token strings, as the tokenizer spells them.
    pub tokens: Vec<String>,
}

impl TokenModel {
    /// Loads `dir/tokenizer.json` and tensor `tensor` of `dir/model.safetensors`, quantised to
    /// `bits` bits. Padding configured in the tokenizer is turned off (only real tokens are
    /// looked up); its truncation is kept.
    ///
    /// ```
    /// # let dir = embed::llm::doc_model_dir("model-load");
    /// use embed::{EmbedError, llm::{BERT_TOKEN_TENSOR, TokenModel}};
    /// assert!(TokenModel::load(&dir, BERT_TOKEN_TENSOR, 8).is_ok());
    /// let missing = TokenModel::load(&dir.join("absent"), BERT_TOKEN_TENSOR, 8);
    /// assert!(matches!(missing, Err(EmbedError::Io { .. })));
    /// ```
    pub fn load(dir: &Path, tensor: &str, bits: u32) -> Result<Self> {
        let tokenizer_path = dir.join(TOKENIZER_FILE);
        let tokenizer_bytes = read_limited(&tokenizer_path, MAX_TOKENIZER_BYTES)?;
        let mut tokenizer =
            Tokenizer::from_bytes(&tokenizer_bytes).map_err(|source| EmbedError::Tokenizer {
                path: tokenizer_path.clone(),
                source,
            })?;
        tokenizer.with_padding(None);
        let table = QuantizedTable::load_safetensors(&dir.join(WEIGHTS_FILE), tensor, bits)?;
        let tokenizer_vocabulary = tokenizer.get_vocab_size(true);
        if tokenizer_vocabulary > table.rows() {
            return Err(EmbedError::VocabularyMismatch {
                tokenizer_vocabulary,
                table_rows: table.rows(),
            });
        }
        Ok(TokenModel {
            tokenizer_path,
            tokenizer,
            table,
        })
    }

    /// The quantised table.
    ///
    /// ```
    /// # let dir = embed::llm::doc_model_dir("model-table");
    /// use embed::llm::{BERT_TOKEN_TENSOR, TokenModel};
    /// assert_eq!(TokenModel::load(&dir, BERT_TOKEN_TENSOR, 8).unwrap().table().dim(), 4);
    /// ```
    pub fn table(&self) -> &QuantizedTable {
        &self.table
    }

    /// Tokenizes `text`, with the tokenizer's special tokens (such as `[CLS]` and `[SEP]`) if
    /// `add_special_tokens`.
    ///
    /// ```
    /// # let dir = embed::llm::doc_model_dir("model-tokenize");
    /// use embed::llm::{BERT_TOKEN_TENSOR, TokenModel};
    /// let model = TokenModel::load(&dir, BERT_TOKEN_TENSOR, 8).unwrap();
    /// let text = model.tokenize("Hello worlds", true).unwrap();
    /// assert_eq!(text.tokens, ["[CLS]", "hello", "world", "##s", "[SEP]"]);
    /// assert_eq!(text.ids, [4, 1, 2, 3, 5]);
    /// ```
    pub fn tokenize(&self, text: &str, add_special_tokens: bool) -> Result<TokenizedText> {
        let encoding = self
            .tokenizer
            .encode(text, add_special_tokens)
            .map_err(|source| EmbedError::Tokenizer {
                path: self.tokenizer_path.clone(),
                source,
            })?;
        Ok(TokenizedText {
            ids: encoding.get_ids().iter().map(|&id| u64::from(id)).collect(),
            tokens: encoding.get_tokens().to_vec(),
        })
    }
}

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

/// How [`run_embed_command`] sends the tokens of a text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LookupMode {
    /// One query and one lookup for the whole prompt.
    #[default]
    Prompt,
    /// One query and one lookup per token, as decode steps would.
    TokenByToken,
}

/// Options of [`run_embed_command`].
///
/// ```
/// use embed::llm::{EmbedOptions, LookupMode};
/// let options = EmbedOptions { bits: 6, mode: LookupMode::TokenByToken, ..EmbedOptions::default() };
/// assert_eq!(options.tensor, embed::llm::BERT_TOKEN_TENSOR);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmbedOptions {
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
pub struct LlmStageTimings {
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
pub struct EmbedReport {
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
    pub timings: LlmStageTimings,
}

impl EmbedReport {
    /// Whether every decrypted output equals the quantised integer table.
    ///
    /// ```
    /// # let dir = embed::llm::doc_model_dir("report-exact");
    /// use embed::llm::{EmbedOptions, run_embed_command};
    /// let options = EmbedOptions { key_seed: Some(1), ..EmbedOptions::default() };
    /// assert!(run_embed_command(&dir, "hello", &options).unwrap().is_exact());
    /// ```
    pub fn is_exact(&self) -> bool {
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
///
/// ```
/// # let dir = embed::llm::doc_model_dir("run");
/// use embed::llm::{EmbedOptions, LookupMode, run_embed_command};
/// let options = EmbedOptions { key_seed: Some(7), ..EmbedOptions::default() };
/// let report = run_embed_command(&dir, "Hello world", &options).unwrap();
/// assert_eq!(report.text.tokens, ["[CLS]", "hello", "world", "[SEP]"]);
/// assert_eq!(report.integer_mismatches, 0);
/// assert!(report.max_error_vs_float <= report.scale / 2.0 + 1e-6);
/// assert!(report.to_string().contains("max error"));
/// let per_token = EmbedOptions { mode: LookupMode::TokenByToken, ..options };
/// assert_eq!(run_embed_command(&dir, "Hello world", &per_token).unwrap().embeddings, report.embeddings);
/// ```
pub fn run_embed_command(
    model_dir: &Path,
    text: &str,
    options: &EmbedOptions,
) -> Result<EmbedReport> {
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
        .collect::<Result<Vec<_>>>()?;
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
        .collect::<Result<Vec<_>>>()?;
    let lookup = start.elapsed();

    let start = Instant::now();
    let decrypted = lookups
        .iter()
        .zip(&outputs)
        .map(|((plan, _), outputs)| plan.decrypt_outputs(&key, outputs))
        .collect::<Result<Vec<_>>>()?;
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
        timings: LlmStageTimings {
            load,
            pack,
            keygen,
            encrypt,
            lookup,
            decrypt,
        },
    })
}

/// Reads a whole file of at most `max` bytes.
fn read_limited(path: &Path, max: u64) -> Result<Vec<u8>> {
    let io_error = |source| EmbedError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bytes = std::fs::metadata(path).map_err(io_error)?.len();
    if bytes > max {
        return Err(EmbedError::FileTooLarge {
            path: path.to_path_buf(),
            bytes,
            max,
        });
    }
    std::fs::read(path).map_err(io_error)
}

/// Writes a tiny model directory for the examples of this module: a WordPiece `tokenizer.json`
/// (`[UNK]`, `hello`, `world`, `##s`, `[CLS]`, `[SEP]`, lower-casing, `[CLS] ... [SEP]`
/// template) and a 6 x 4 F32 table under [`BERT_TOKEN_TENSOR`]. Returns the directory (under the
/// system temporary directory, named after `name` and the process).
#[doc(hidden)]
pub fn doc_model_dir(name: &str) -> PathBuf {
    const TOKENIZER: &str = r###"{
  "version": "1.0", "truncation": null, "padding": null,
  "added_tokens": [
    {"id": 4, "content": "[CLS]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 5, "content": "[SEP]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
  ],
  "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
  "pre_tokenizer": {"type": "BertPreTokenizer"},
  "post_processor": {"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
    "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
    "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [4], "tokens": ["[CLS]"]}, "[SEP]": {"id": "[SEP]", "ids": [5], "tokens": ["[SEP]"]}}},
  "decoder": null,
  "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
    "vocab": {"[UNK]": 0, "hello": 1, "world": 2, "##s": 3, "[CLS]": 4, "[SEP]": 5}}
}"###;
    let dir = std::env::temp_dir().join(format!("embed-doc-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    std::fs::write(dir.join(TOKENIZER_FILE), TOKENIZER).expect("write tokenizer.json");
    let values: Vec<u8> = (0..24)
        .map(|i| (i as f32 - 11.5) / 10.0)
        .flat_map(f32::to_le_bytes)
        .collect();
    let view = safetensors::tensor::TensorView::new(Dtype::F32, vec![6, 4], &values)
        .expect("a consistent tensor");
    let bytes =
        safetensors::serialize([(BERT_TOKEN_TENSOR, view)], None).expect("serialize a tensor");
    std::fs::write(dir.join(WEIGHTS_FILE), bytes).expect("write model.safetensors");
    dir
}
