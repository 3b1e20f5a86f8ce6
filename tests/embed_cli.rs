//! `dlrm-he embed` on a tiny model directory the test writes, and on a missing one.

use std::path::Path;
use std::process::Command;

const ROWS: usize = 8;
const DIM: usize = 3;

/// A WordPiece tokenizer over `[UNK]`, `[CLS]`, `[SEP]`, `the`, `cat`, `sat`, `##s`, `on`.
const TOKENIZER: &str = r###"{"version": "1.0", "truncation": null, "padding": null,
  "added_tokens": [
    {"id": 1, "content": "[CLS]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 2, "content": "[SEP]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
  "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
  "pre_tokenizer": {"type": "BertPreTokenizer"},
  "post_processor": {"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
    "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
    "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [1], "tokens": ["[CLS]"]}, "[SEP]": {"id": "[SEP]", "ids": [2], "tokens": ["[SEP]"]}}},
  "decoder": null,
  "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
    "vocab": {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "the": 3, "cat": 4, "sat": 5, "##s": 6, "on": 7}}}"###;

/// Writes `model.safetensors` by hand (8-byte header length, JSON header, little-endian F32 data),
/// so the file format is checked independently of the writer the library's tests use.
fn write_safetensors(path: &Path, values: &[f32]) {
    let header = format!(
        r#"{{"embeddings.word_embeddings.weight":{{"dtype":"F32","shape":[{ROWS},{DIM}],"data_offsets":[0,{}]}}}}"#,
        values.len() * 4
    );
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(path, bytes).unwrap();
}

fn embed(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_dlrm-he"))
        .arg("embed")
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn embed_prints_tokens_timings_and_the_error_against_the_float_table() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokenizer.json"), TOKENIZER).unwrap();
    let values: Vec<f32> = (0..ROWS * DIM).map(|i| (i as f32 - 11.3) / 16.0).collect();
    write_safetensors(&dir.path().join("model.safetensors"), &values);
    let model = dir.path().to_str().unwrap();

    for extra in [&[][..], &["--token-by-token", "--order", "component-major"]] {
        let mut args = vec!["--model", model, "--key-seed", "9", "The cats sat on it"];
        args.extend_from_slice(extra);
        let (success, stdout, stderr) = embed(&args);
        assert!(success, "stdout: {stdout}\nstderr: {stderr}");
        for token in ["[CLS]", "the", "cat", "##s", "sat", "on", "[UNK]", "[SEP]"] {
            assert!(stdout.contains(token), "{token} missing from\n{stdout}");
        }
        assert!(stdout.contains("table: 8 x 3, quantised to 8 bits"));
        assert!(stdout.contains("timings: load"));
        assert!(stdout.contains("exact vs quantised integer table: yes (0 of 24 outputs differ)"));
        let error_line = stdout
            .lines()
            .find(|l| l.starts_with("max error of the decrypted embeddings vs the float table: "))
            .unwrap_or_else(|| panic!("no error line in\n{stdout}"));
        let error: f32 = error_line.rsplit(' ').next().unwrap().parse().unwrap();
        // Exact lookups leave only the rounding of 8-bit quantisation: half a step of max/127.
        let max_abs = values.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(error <= max_abs / 127.0 / 2.0 * 1.0001, "{error}");
    }
}

#[test]
fn embed_on_a_missing_directory_fails_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-model");
    let (success, _, stderr) = embed(&["--model", missing.to_str().unwrap(), "hello"]);
    assert!(!success);
    assert!(stderr.contains("no-such-model"), "{stderr}");
    assert!(stderr.contains("tokenizer.json"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
