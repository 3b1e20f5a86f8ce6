//! LLM token-embedding mode on a tiny tokenizer and table written by the tests: loading and
//! quantisation, exact lookups of single tokens and prompts in every layout, and bad model files.
//! The whole `dlrm-he embed` run (and the real all-MiniLM-L6-v2 model) is tested with the
//! command, in `src/embed_command/tests.rs`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use embed::llm::{
    BERT_TOKEN_TENSOR, QuantizedTable, TOKENIZER_FILE, TokenLookup, TokenModel, WEIGHTS_FILE,
    prompt_plan,
};
use embed::testing::{f32_bytes, float_table, safetensors_bytes, word_model_dir};
use embed::{EmbedError, OutputOrder, OutputRef};
use fhe::{ClientKey, KeySeed, ParameterSetId};
use safetensors::Dtype;

const ROWS: usize = 40;
const DIM: usize = 5;

fn client() -> &'static ClientKey {
    static KEY: OnceLock<ClientKey> = OnceLock::new();
    KEY.get_or_init(|| ClientKey::from_seed(ParameterSetId::default(), KeySeed(5)))
}

/// A model directory with the tests' vocabulary and a `ROWS x DIM` table.
fn tiny_model() -> (tempfile::TempDir, PathBuf) {
    let dir = word_model_dir(ROWS, DIM);
    let path = dir.path().to_path_buf();
    (dir, path)
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
