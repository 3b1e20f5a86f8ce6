//! A tokenizer and its quantised token-embedding table, loaded from a model directory.

use std::path::{Path, PathBuf};

use tokenizers::Tokenizer;

use super::model_files::{MAX_TOKENIZER_BYTES, TOKENIZER_FILE, WEIGHTS_FILE, read_limited};
use super::quantized_table::QuantizedTable;
use crate::error::{EmbedError, Result};

/// A tokenizer and its quantised token-embedding table.
///
/// ```
/// # let temporary = embed::testing::doc_model_dir();
/// # let dir = temporary.path();
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
    /// # let temporary = embed::testing::doc_model_dir();
    /// # let dir = temporary.path();
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
    /// # let temporary = embed::testing::doc_model_dir();
    /// # let dir = temporary.path();
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
    /// # let temporary = embed::testing::doc_model_dir();
    /// # let dir = temporary.path();
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
