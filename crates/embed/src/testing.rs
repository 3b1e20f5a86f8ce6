//! Model directories for examples and tests, behind the `testing` feature: a BERT-style
//! WordPiece `tokenizer.json` over a given vocabulary and an F32 token table in
//! `model.safetensors`.

use std::path::Path;

use safetensors::Dtype;
use safetensors::tensor::TensorView;

use crate::llm::{BERT_TOKEN_TENSOR, TOKENIZER_FILE, WEIGHTS_FILE};

/// A WordPiece `tokenizer.json` over `vocabulary` (a token's id is its index; tokens hold no
/// quotes or backslashes): lower-casing, `##` continuation pieces, `[UNK]` for unknown words and
/// the `[CLS] ... [SEP]` template, so the vocabulary must hold those three.
///
/// ```
/// let json = embed::testing::tokenizer_json(&["[UNK]", "[CLS]", "[SEP]", "cat"]);
/// assert!(json.contains(r#""cat": 3"#));
/// ```
pub fn tokenizer_json<S: AsRef<str>>(vocabulary: &[S]) -> String {
    let id = |token: &str| {
        vocabulary
            .iter()
            .position(|t| t.as_ref() == token)
            .unwrap_or_else(|| panic!("the vocabulary has no {token}"))
    };
    let (unknown, cls, sep) = (id("[UNK]"), id("[CLS]"), id("[SEP]"));
    let entries: Vec<String> = vocabulary
        .iter()
        .enumerate()
        .map(|(id, token)| format!("\"{}\": {id}", token.as_ref()))
        .collect();
    let special = |id: usize, token: &str| {
        format!(
            r#"{{"id": {id}, "content": "{token}", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}}"#
        )
    };
    format!(
        r###"{{"version": "1.0", "truncation": null, "padding": null,
  "added_tokens": [{}, {}],
  "normalizer": {{"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": true}},
  "pre_tokenizer": {{"type": "BertPreTokenizer"}},
  "post_processor": {{"type": "TemplateProcessing",
    "single": [{{"SpecialToken": {{"id": "[CLS]", "type_id": 0}}}}, {{"Sequence": {{"id": "A", "type_id": 0}}}}, {{"SpecialToken": {{"id": "[SEP]", "type_id": 0}}}}],
    "pair": [{{"Sequence": {{"id": "A", "type_id": 0}}}}, {{"Sequence": {{"id": "B", "type_id": 1}}}}],
    "special_tokens": {{"[CLS]": {{"id": "[CLS]", "ids": [{cls}], "tokens": ["[CLS]"]}}, "[SEP]": {{"id": "[SEP]", "ids": [{sep}], "tokens": ["[SEP]"]}}}}}},
  "decoder": null,
  "model": {{"type": "WordPiece", "unk_token": "{}", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
    "vocab": {{{}}}}}}}"###,
        special(cls, "[CLS]"),
        special(sep, "[SEP]"),
        vocabulary[unknown].as_ref(),
        entries.join(", ")
    )
}

/// The tests' vocabulary of `size` tokens: `[UNK]` 0, `[CLS]` 1, `[SEP]` 2, the continuation
/// pieces `##x` 3 and `##y` 4, then the words `w5`, `w6`, ...
///
/// ```
/// assert_eq!(embed::testing::word_vocabulary(7)[3..], ["##x", "##y", "w5", "w6"]);
/// ```
pub fn word_vocabulary(size: usize) -> Vec<String> {
    let mut vocabulary: Vec<String> = ["[UNK]", "[CLS]", "[SEP]", "##x", "##y"]
        .map(String::from)
        .to_vec();
    vocabulary.extend((5..size).map(|i| format!("w{i}")));
    vocabulary
}

/// Float entries in (-1, 1), deterministic, not on the quantisation grid.
///
/// ```
/// let values = embed::testing::float_table(4, 3);
/// assert!(values.len() == 12 && values.iter().all(|v| v.abs() < 1.0));
/// ```
pub fn float_table(rows: usize, dim: usize) -> Vec<f32> {
    let mut state = 99u64;
    (0..rows * dim)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 1.8 - 0.9
        })
        .collect()
}

/// Little-endian bytes of F32 values, as safetensors stores them.
pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A safetensors file holding the one tensor `name`.
pub fn safetensors_bytes(name: &str, dtype: Dtype, shape: Vec<usize>, data: &[u8]) -> Vec<u8> {
    let view = TensorView::new(dtype, shape, data).expect("a consistent tensor");
    safetensors::serialize([(name, view)], None).expect("serialize a tensor")
}

/// Writes a model directory: the tokenizer over `vocabulary` and the row-major
/// `vocabulary.len() x dim` table `values` under [`BERT_TOKEN_TENSOR`].
pub fn write_model_dir<S: AsRef<str>>(dir: &Path, vocabulary: &[S], dim: usize, values: &[f32]) {
    std::fs::write(dir.join(TOKENIZER_FILE), tokenizer_json(vocabulary))
        .expect("write tokenizer.json");
    let shape = vec![vocabulary.len(), dim];
    let weights = safetensors_bytes(BERT_TOKEN_TENSOR, Dtype::F32, shape, &f32_bytes(values));
    std::fs::write(dir.join(WEIGHTS_FILE), weights).expect("write model.safetensors");
}

/// A temporary model directory over [`word_vocabulary`]`(rows)` with the
/// [`float_table`]`(rows, dim)`, removed when dropped.
pub fn word_model_dir(rows: usize, dim: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    write_model_dir(
        dir.path(),
        &word_vocabulary(rows),
        dim,
        &float_table(rows, dim),
    );
    dir
}

/// The model directory of the crate's examples: `[UNK]`, `hello`, `world`, `##s`, `[CLS]`,
/// `[SEP]` and a 6 x 4 table, in a temporary directory removed when dropped.
///
/// ```
/// let dir = embed::testing::doc_model_dir();
/// assert!(dir.path().join(embed::llm::TOKENIZER_FILE).is_file());
/// ```
pub fn doc_model_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let values: Vec<f32> = (0..24).map(|i| (i as f32 - 11.5) / 10.0).collect();
    let vocabulary = ["[UNK]", "hello", "world", "##s", "[CLS]", "[SEP]"];
    write_model_dir(dir.path(), &vocabulary, 4, &values);
    dir
}
