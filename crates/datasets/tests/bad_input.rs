//! Malformed input: clear errors naming the file and line, or counted skips; never a panic and
//! never a half-written output directory.

use std::path::{Path, PathBuf};

use datasets::criteo::{self, CriteoOptions};
use datasets::synthetic::{self, SyntheticOptions};
use datasets::uci::{self, UciOptions};
use datasets::{DatasetError, NoProgress};

/// A valid Criteo line built from a seed, so tests need no shared data.
fn criteo_line(seed: usize) -> String {
    let mut fields = vec![(seed % 2).to_string()];
    fields.extend((0..13).map(|i| {
        if (seed + i).is_multiple_of(5) {
            String::new()
        } else {
            (seed * i % 97).to_string()
        }
    }));
    fields.extend((0..26).map(|i| format!("{:08x}", (seed * 31 + i * 7) % 50)));
    fields.join("\t")
}

fn write_lines(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// Only the input files are left in `dir`: no output directory and no partial one.
fn assert_no_output(dir: &Path, inputs: &[&str]) {
    let mut left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !inputs.contains(&name.as_str()))
        .collect();
    left.sort();
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn prepare_criteo_with_bad_line(bad_line: usize, replacement: String) -> (DatasetError, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let mut lines: Vec<String> = (0..50).map(criteo_line).collect();
    lines[bad_line - 1] = replacement;
    let input = write_lines(dir.path(), "in.tsv", &lines);
    let error = criteo::prepare(
        &input,
        &dir.path().join("out"),
        &CriteoOptions::default(),
        &NoProgress,
    )
    .unwrap_err();
    assert_no_output(dir.path(), &["in.tsv"]);
    (error, input)
}

fn assert_malformed(error: &DatasetError, input: &Path, line: u64, needle: &str) {
    match error {
        DatasetError::Malformed {
            path,
            line: l,
            message,
        } => {
            assert_eq!(path, input);
            assert_eq!(*l, line);
            assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        }
        other => panic!("expected a malformed-row error, got {other:?}"),
    }
    let text = error.to_string();
    assert!(
        text.starts_with(&format!("{}:{line}: ", input.display())),
        "{text}"
    );
}

#[test]
fn wrong_field_count_names_file_and_line() {
    let short = criteo_line(6).rsplit_once('\t').unwrap().0.to_string();
    let (error, input) = prepare_criteo_with_bad_line(7, short);
    assert_malformed(
        &error,
        &input,
        7,
        "expected 40 tab-separated fields, found 39",
    );
    let long = criteo_line(6) + "\textra";
    let (error, input) = prepare_criteo_with_bad_line(3, long);
    assert_malformed(&error, &input, 3, "found 41");
}

#[test]
fn non_numeric_dense_value_names_the_column() {
    let mut fields: Vec<String> = criteo_line(4).split('\t').map(String::from).collect();
    fields[3] = "12abc".into();
    let (error, input) = prepare_criteo_with_bad_line(12, fields.join("\t"));
    assert_malformed(&error, &input, 12, "I3: not a number");
}

#[test]
fn bad_hex_and_bad_label_are_rejected() {
    let mut fields: Vec<String> = criteo_line(4).split('\t').map(String::from).collect();
    fields[15] = "zz12ab34".into();
    let (error, input) = prepare_criteo_with_bad_line(20, fields.join("\t"));
    assert_malformed(&error, &input, 20, "C2: not a hex id");
    fields[15] = "123456789".into();
    let (error, input) = prepare_criteo_with_bad_line(21, fields.join("\t"));
    assert_malformed(&error, &input, 21, "C2: hex id longer than 8 digits");
    let mut fields: Vec<String> = criteo_line(4).split('\t').map(String::from).collect();
    fields[0] = "2".into();
    let (error, input) = prepare_criteo_with_bad_line(1, fields.join("\t"));
    assert_malformed(&error, &input, 1, "label must be 0 or 1");
}

#[test]
fn line_numbers_stay_exact_past_the_first_chunk() {
    // 30,000 generated rows are several read chunks; the bad row is far into the file.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.tsv");
    let options = SyntheticOptions {
        rows: 30_000,
        ..SyntheticOptions::default()
    };
    synthetic::generate(&options, &input, &NoProgress).unwrap();
    let text = std::fs::read_to_string(&input).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    assert!(
        text.len() > 5 << 20,
        "the file must span more than one chunk"
    );
    lines[28_766] = "1\t2\t3";
    std::fs::write(&input, lines.join("\n")).unwrap();
    let error = criteo::prepare(
        &input,
        &dir.path().join("out"),
        &CriteoOptions::default(),
        &NoProgress,
    )
    .unwrap_err();
    assert_malformed(&error, &input, 28_767, "found 3");

    // Skipping: the bad row is counted, the rest kept; the last line has no newline.
    let options = CriteoOptions {
        skip_bad_rows: true,
        ..CriteoOptions::default()
    };
    let m = criteo::prepare(&input, &dir.path().join("skipped"), &options, &NoProgress)
        .unwrap()
        .manifest;
    assert_eq!((m.rows, m.skipped_rows), (29_999, 1));
    let whole_file = m.source.sha256.expect("the whole file was read");

    // Stopping early never records the checksum of a prefix: either the reader had reached the
    // end anyway (read-ahead) and it is the whole file's, or there is none.
    let first_rows = CriteoOptions {
        max_rows: Some(100),
        ..CriteoOptions::default()
    };
    let m = criteo::prepare(&input, &dir.path().join("head"), &first_rows, &NoProgress)
        .unwrap()
        .manifest;
    assert_eq!(m.rows, 100);
    assert!(m.source.sha256.is_none_or(|sha| sha == whole_file));
}

#[test]
fn skip_bad_rows_counts_them_and_max_rows_ignores_later_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines: Vec<String> = (0..40).map(criteo_line).collect();
    lines[4] = "garbage".into();
    lines[9] = String::new();
    lines[30] = "x\ty".into();
    let input = write_lines(dir.path(), "in.tsv", &lines);
    let skip = CriteoOptions {
        skip_bad_rows: true,
        ..CriteoOptions::default()
    };
    let m = criteo::prepare(&input, &dir.path().join("a"), &skip, &NoProgress)
        .unwrap()
        .manifest;
    assert_eq!((m.rows, m.skipped_rows), (37, 3));
    // The first 20 good rows end at line 22; the bad line 31 is never reached.
    let capped = CriteoOptions {
        max_rows: Some(20),
        ..skip
    };
    let m = criteo::prepare(&input, &dir.path().join("b"), &capped, &NoProgress)
        .unwrap()
        .manifest;
    assert_eq!((m.rows, m.skipped_rows), (20, 2));
    // Without skipping, a bad row inside the first max-rows rows is still an error.
    let strict = CriteoOptions {
        max_rows: Some(20),
        ..CriteoOptions::default()
    };
    let error = criteo::prepare(&input, &dir.path().join("c"), &strict, &NoProgress).unwrap_err();
    assert_malformed(&error, &input, 5, "found 1");
}

#[test]
fn empty_missing_directory_and_existing_output() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.tsv");
    std::fs::write(&empty, "").unwrap();
    let out = dir.path().join("out");
    let options = CriteoOptions::default();
    let error = criteo::prepare(&empty, &out, &options, &NoProgress).unwrap_err();
    assert!(matches!(error, DatasetError::Empty { .. }), "{error:?}");
    assert!(error.to_string().contains("empty.tsv: no data rows"));

    let missing = dir.path().join("missing.tsv");
    let error = criteo::prepare(&missing, &out, &options, &NoProgress).unwrap_err();
    assert!(
        matches!(&error, DatasetError::Io { path, source } if path == &missing && source.kind() == std::io::ErrorKind::NotFound),
        "{error:?}"
    );
    let error = criteo::prepare(dir.path(), &out, &options, &NoProgress).unwrap_err();
    assert!(error.to_string().contains("is a directory"), "{error}");
    assert_no_output(dir.path(), &["empty.tsv"]);

    let input = write_lines(dir.path(), "in.tsv", &[criteo_line(1), criteo_line(2)]);
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "mine").unwrap();
    let error = criteo::prepare(&input, &out, &options, &NoProgress).unwrap_err();
    assert!(
        matches!(error, DatasetError::OutputExists { .. }),
        "{error:?}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("keep.txt")).unwrap(),
        "mine"
    );
    let error = uci::prepare(&input, &out, &UciOptions::default(), &NoProgress).unwrap_err();
    assert!(
        matches!(error, DatasetError::OutputExists { .. }),
        "{error:?}"
    );
}

#[test]
fn corrupt_compressed_input_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let text: String = (0..200).map(|i| criteo_line(i) + "\n").collect();
    let compressed = zstd::encode_all(text.as_bytes(), 3).unwrap();
    let input = dir.path().join("cut.tsv.zst");
    std::fs::write(&input, &compressed[..compressed.len() / 2]).unwrap();
    let error = criteo::prepare(
        &input,
        &dir.path().join("out"),
        &CriteoOptions::default(),
        &NoProgress,
    )
    .unwrap_err();
    assert!(
        error.to_string().starts_with(&input.display().to_string()),
        "{error}"
    );
    assert_no_output(dir.path(), &["cut.tsv.zst"]);
}

#[test]
fn bad_options_are_rejected_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_lines(dir.path(), "in.tsv", &[criteo_line(1)]);
    for options in [
        CriteoOptions {
            val_fraction: 0.6,
            test_fraction: 0.5,
            ..CriteoOptions::default()
        },
        CriteoOptions {
            test_fraction: -0.1,
            ..CriteoOptions::default()
        },
        CriteoOptions {
            max_table_size: Some(0),
            ..CriteoOptions::default()
        },
    ] {
        let error =
            criteo::prepare(&input, &dir.path().join("out"), &options, &NoProgress).unwrap_err();
        assert!(matches!(error, DatasetError::InvalidOption(_)), "{error:?}");
    }
    let bad_scale = SyntheticOptions {
        scale: 0.0,
        ..SyntheticOptions::default()
    };
    let error =
        synthetic::generate(&bad_scale, &dir.path().join("s.tsv"), &NoProgress).unwrap_err();
    assert!(matches!(error, DatasetError::InvalidOption(_)), "{error:?}");
    assert_no_output(dir.path(), &["in.tsv"]);
}

#[test]
fn uci_bad_rows() {
    let good = "63.0,1.0,1.0,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,0.0,6.0,0";
    let cases = [
        (
            "63.0,1.0,1.0,145.0",
            "expected 14 comma-separated fields, found 4",
        ),
        (
            "63.0,1.0,1.0,145.0,abc,1.0,2.0,150.0,0.0,2.3,3.0,0.0,6.0,0",
            "chol: not a number",
        ),
        (
            "63.0,1.0,1.0,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,0.0,6.0,?",
            "num: expected a non-negative integer",
        ),
        (
            "63.0,1.0,1.0,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,0.0,6.0,1.5",
            "num: expected",
        ),
    ];
    for (bad, needle) in cases {
        let dir = tempfile::tempdir().unwrap();
        let lines = vec![
            good.to_string(),
            good.to_string(),
            bad.to_string(),
            good.to_string(),
        ];
        let input = write_lines(dir.path(), "heart.data", &lines);
        let error = uci::prepare(
            &input,
            &dir.path().join("out"),
            &UciOptions::default(),
            &NoProgress,
        )
        .unwrap_err();
        assert_malformed(&error, &input, 3, needle);
        assert_no_output(dir.path(), &["heart.data"]);
        let skip = UciOptions {
            skip_bad_rows: true,
            test_fraction: 0.0,
            ..UciOptions::default()
        };
        let m = uci::prepare(&input, &dir.path().join("out"), &skip, &NoProgress)
            .unwrap()
            .manifest;
        assert_eq!((m.rows, m.skipped_rows), (3, 1));
    }
}

#[test]
fn uci_missing_continuous_values_are_imputed_and_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = [
        "60,1,1,140,?,0,2,150,0,1.0,3,0,6,0",
        "50,0,2,120,200,1,0,160,1,0.0,1,?,3,1",
        "40,1,3,130,300,0,1,170,0,2.0,2,1,7,2",
        "70,0,4,110,250,0,0,140,1,3.0,1,2,3,0",
    ]
    .map(String::from)
    .to_vec();
    let input = write_lines(dir.path(), "heart.data", &lines);
    let options = UciOptions {
        test_fraction: 0.0,
        ..UciOptions::default()
    };
    let out = dir.path().join("out");
    let m = uci::prepare(&input, &out, &options, &NoProgress)
        .unwrap()
        .manifest;
    let names: Vec<&str> = m.dense.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "age",
            "trestbps",
            "chol",
            "thalach",
            "oldpeak",
            "chol_missing"
        ]
    );
    let train = datasets::PreparedDataset::open(&out)
        .unwrap()
        .load_split("train")
        .unwrap();
    // chol: mean of the present values (250) is the imputed value, i.e. 0 after standardising.
    assert_eq!(train.dense_row(0)[2], 0.0);
    assert_eq!(train.dense_row(0)[5], 1.0);
    assert_eq!(train.dense_row(1)[5], 0.0);
    let std = (((200f64 - 250.0).powi(2) + 50f64.powi(2) + 0.0) / 3.0).sqrt();
    assert!((f64::from(train.dense_row(1)[2]) - (200.0 - 250.0) / std).abs() < 1e-6);
    // ca missing in row 2: reserved id.
    assert_eq!(train.categorical_row(1)[6], datasets::RESERVED_ID);
    assert_ne!(train.categorical_row(0)[6], datasets::RESERVED_ID);
    assert_eq!(train.labels, [0, 1, 1, 0]);
}
