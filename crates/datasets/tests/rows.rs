//! `RowMapper`: every raw line maps to exactly the row `prepare` wrote for it; unseen values,
//! bad lines and unknown dataset kinds.

mod common;

use std::path::Path;

use datasets::criteo::{self, CriteoOptions};
use datasets::shared::shared_file;
use datasets::uci::{self, UciOptions};
use datasets::{
    DatasetError, DenseTransform, MANIFEST_FILE, MappedRow, NoProgress, PreparedDataset,
    RESERVED_ID, RowMapper, SplitData, SplitMethod,
};

use common::{SplitCursor, kaggle_union};

/// Maps every line of `input` with a mapper opened on `prepared` and checks each mapped row is
/// the next row of one of the splits, and that every split row is accounted for.
fn assert_rows_map_as_prepared(input: &Path, prepared: &Path) -> Vec<(String, MappedRow)> {
    let dataset = PreparedDataset::open(prepared).unwrap();
    let manifest = dataset.manifest();
    let splits: Vec<SplitData> = manifest
        .splits
        .iter()
        .map(|s| dataset.load_split(&s.name).unwrap())
        .collect();
    let mapper = RowMapper::open(prepared).unwrap();
    assert_eq!(mapper.dense_width(), manifest.dense.len());
    assert_eq!(mapper.categorical_width(), manifest.categorical.len());
    assert_eq!(mapper.manifest(), manifest);
    let mut cursor = SplitCursor::new(&splits);
    let mut mapped = Vec::new();
    for (number, line) in std::fs::read_to_string(input).unwrap().lines().enumerate() {
        let row = mapper
            .map_line(line.as_bytes())
            .unwrap_or_else(|e| panic!("{}:{}: {e}", input.display(), number + 1));
        assert_eq!(row.dense.len(), mapper.dense_width());
        assert_eq!(row.ids.len(), mapper.categorical_width());
        let label = row.label.expect("raw rows carry labels");
        cursor.expect_next(label, &row.dense, &row.ids);
        mapped.push((line.to_string(), row));
    }
    cursor.assert_exhausted();
    assert_eq!(mapped.len() as u64, manifest.rows);
    mapped
}

/// Present Criteo categorical values that map to the reserved id.
fn criteo_unknowns(line: &str, ids: &[u32]) -> usize {
    let raw = criteo::parse_line(line.as_bytes()).unwrap();
    raw.categorical
        .iter()
        .zip(ids)
        .filter(|(v, id)| v.is_some() && **id == RESERVED_ID)
        .count()
}

/// A UCI line from a seed: every value kind, `?` in a continuous and a categorical column.
fn uci_line(seed: usize) -> String {
    let chol = if seed % 9 == 4 {
        "?".to_string()
    } else {
        format!("{:.1}", 180 + seed * 13 % 150)
    };
    let ca = if seed % 10 == 3 {
        "?".to_string()
    } else {
        format!("{:.1}", seed % 4)
    };
    [
        format!("{:.1}", 30 + seed % 41),
        format!("{:.1}", seed % 2),
        format!("{:.1}", 1 + seed % 4),
        format!("{:.1}", 100 + seed * 7 % 80),
        chol,
        format!("{:.1}", seed / 3 % 2),
        format!("{:.1}", seed % 3),
        format!("{:.1}", 90 + seed * 11 % 100),
        format!("{:.1}", seed / 2 % 2),
        format!("{:.1}", (seed % 13) as f64 * 0.3),
        format!("{:.1}", 1 + seed % 3),
        ca,
        format!("{:.1}", [3, 6, 7][seed % 3]),
        (seed % 5).to_string(),
    ]
    .join(",")
}

/// A Criteo line from a seed, with missing and negative dense values and missing categoricals.
fn criteo_line(seed: usize) -> String {
    let mut fields = vec![(seed % 3 / 2).to_string()];
    fields.extend((0..13).map(|i| match (seed + i) % 6 {
        0 => String::new(),
        1 => format!("-{}", i + 1),
        _ => (seed * (i + 3) % 211).to_string(),
    }));
    fields.extend((0..26).map(|i| {
        if (seed * 7 + i).is_multiple_of(11) {
            String::new()
        } else {
            format!("{:08x}", (seed * 31 + i * 7) % (5 + 3 * i))
        }
    }));
    fields.join("\t")
}

fn write_lines(path: &Path, lines: impl IntoIterator<Item = String>) {
    let text: String = lines.into_iter().map(|l| l + "\n").collect();
    std::fs::write(path, text).unwrap();
}

#[test]
fn uci_cleveland_rows_map_as_prepared() {
    let Some(input) = shared_file("data/heart/processed.cleveland.data") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("uci");
    uci::prepare(&input, &out, &UciOptions::default(), &NoProgress).unwrap();
    let mapped = assert_rows_map_as_prepared(&input, &out);
    assert_eq!(mapped.len(), 303);
    assert!(mapped.iter().all(|(_, row)| row.unknown_values == 0));
    // `?` appears 4 times in ca and twice in thal: missing, so reserved but not unknown.
    let reserved = mapped
        .iter()
        .flat_map(|(_, row)| &row.ids)
        .filter(|&&id| id == RESERVED_ID)
        .count();
    assert_eq!(reserved, 6);
}

#[test]
fn criteo_kaggle_head_rows_map_as_prepared() {
    let dir = tempfile::tempdir().unwrap();
    let Some(input) = kaggle_union(dir.path()) else {
        return;
    };
    let every_value = CriteoOptions {
        split: SplitMethod::Sequential,
        ..CriteoOptions::default()
    };
    let capped = CriteoOptions {
        min_count: 3,
        max_table_size: Some(50),
        ..CriteoOptions::default()
    };
    for (name, options) in [("every-value", every_value), ("capped", capped)] {
        let out = dir.path().join(name);
        criteo::prepare(&input, &out, &options, &NoProgress).unwrap();
        let mapped = assert_rows_map_as_prepared(&input, &out);
        assert_eq!(mapped.len(), 8000);
        let mut unknown = 0;
        for (line, row) in &mapped {
            assert_eq!(
                row.unknown_values,
                criteo_unknowns(line, &row.ids),
                "{line}"
            );
            unknown += row.unknown_values;
        }
        // min-count 1 keeps every value; the cap and min-count 3 drop many.
        assert_eq!(
            unknown == 0,
            name == "every-value",
            "{name}: {unknown} unknown"
        );
    }
}

#[test]
fn generated_uci_rows_with_missing_continuous_values_map_as_prepared() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("heart.data");
    write_lines(&input, (0..60).map(uci_line));
    let out = dir.path().join("prepared");
    let m = uci::prepare(&input, &out, &UciOptions::default(), &NoProgress)
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
    let mapped = assert_rows_map_as_prepared(&input, &out);
    for (line, row) in &mapped {
        let chol_missing = line.split(',').nth(4) == Some("?");
        assert_eq!(row.dense[5], f32::from(u8::from(chol_missing)), "{line}");
        if chol_missing {
            assert_eq!(row.dense[2], 0.0, "imputed with the train mean: {line}");
        }
        assert_eq!(row.unknown_values, 0);
    }
    assert!(mapped.iter().any(|(_, row)| row.dense[5] == 1.0));
}

#[test]
fn generated_criteo_rows_map_as_prepared() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.tsv");
    write_lines(&input, (0..300).map(criteo_line));
    let out = dir.path().join("prepared");
    let options = CriteoOptions {
        min_count: 2,
        ..CriteoOptions::default()
    };
    criteo::prepare(&input, &out, &options, &NoProgress).unwrap();
    let mapped = assert_rows_map_as_prepared(&input, &out);
    for (line, row) in &mapped {
        let raw = criteo::parse_line(line.as_bytes()).unwrap();
        let dense: Vec<f32> = raw
            .dense
            .iter()
            .map(|v| DenseTransform::Log1p.apply(*v))
            .collect();
        assert_eq!(row.dense, dense);
        assert_eq!(row.unknown_values, criteo_unknowns(line, &row.ids));
    }
}

/// Prepares `rows` generated Criteo lines under `dir` (default options) and opens the mapper.
fn generated_criteo_mapper(dir: &Path, rows: usize) -> RowMapper {
    let input = dir.join("in.tsv");
    write_lines(&input, (0..rows).map(criteo_line));
    let out = dir.join("criteo");
    criteo::prepare(&input, &out, &CriteoOptions::default(), &NoProgress).unwrap();
    RowMapper::open(&out).unwrap()
}

/// Prepares `rows` generated UCI lines under `dir` (default options) and opens the mapper.
fn generated_uci_mapper(dir: &Path, rows: usize) -> RowMapper {
    let input = dir.join("heart.data");
    write_lines(&input, (0..rows).map(uci_line));
    let out = dir.join("uci");
    uci::prepare(&input, &out, &UciOptions::default(), &NoProgress).unwrap();
    RowMapper::open(&out).unwrap()
}

#[test]
fn unseen_categorical_values_map_to_the_reserved_id_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();

    let mapper = generated_criteo_mapper(dir.path(), 100);
    let line = criteo_line(1);
    let known = mapper.map_line(line.as_bytes()).unwrap();
    assert_eq!(known.unknown_values, 0);
    assert!(known.ids[0] != RESERVED_ID && known.ids[2] != RESERVED_ID);
    let mut fields: Vec<&str> = line.split('\t').collect();
    fields[1 + 13] = "ffffffff"; // C1
    fields[1 + 13 + 2] = "0BADF00D"; // C3
    let unseen = mapper.map_line(fields.join("\t").as_bytes()).unwrap();
    assert_eq!(unseen.unknown_values, 2);
    assert_eq!((unseen.ids[0], unseen.ids[2]), (RESERVED_ID, RESERVED_ID));
    let mut expected = known.clone();
    expected.ids[0] = RESERVED_ID;
    expected.ids[2] = RESERVED_ID;
    expected.unknown_values = 2;
    assert_eq!(unseen, expected);
    // Hex ids are case-insensitive, and a line ending is ignored.
    let upper = line.to_uppercase() + "\r\n";
    assert_eq!(mapper.map_line(upper.as_bytes()).unwrap(), known);

    let mapper = generated_uci_mapper(dir.path(), 60);
    let line = uci_line(0);
    let known = mapper.map_line(line.as_bytes()).unwrap();
    let mut fields: Vec<&str> = line.split(',').collect();
    fields[2] = "9.0"; // cp: 1 to 4 only
    let unseen = mapper.map_line(fields.join(",").as_bytes()).unwrap();
    let mut expected = known.clone();
    expected.ids[1] = RESERVED_ID;
    expected.unknown_values = 1;
    assert_eq!(unseen, expected);
    // `1` and `1.0` are the same categorical value.
    let short: Vec<String> = line
        .split(',')
        .map(|f| f.strip_suffix(".0").unwrap_or(f).to_string())
        .collect();
    assert_eq!(mapper.map_line(short.join(",").as_bytes()).unwrap(), known);
}

#[test]
fn bad_lines_give_errors_that_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let criteo_mapper = generated_criteo_mapper(dir.path(), 50);
    let uci_mapper = generated_uci_mapper(dir.path(), 60);

    let replace = |line: String, sep: char, index: usize, value: &str| {
        let mut fields: Vec<&str> = line.split(sep).collect();
        fields[index] = value;
        fields.join(&sep.to_string())
    };
    let cases = [
        (
            &criteo_mapper,
            "1\t2".to_string(),
            "expected 40 tab-separated fields, found 2",
        ),
        (
            &criteo_mapper,
            String::new(),
            "expected 40 tab-separated fields, found 1",
        ),
        (
            &criteo_mapper,
            replace(criteo_line(3), '\t', 0, "2"),
            "label must be 0 or 1",
        ),
        (
            &criteo_mapper,
            replace(criteo_line(3), '\t', 3, "abc"),
            "I3: not a number",
        ),
        (
            &criteo_mapper,
            replace(criteo_line(3), '\t', 15, "xyz"),
            "C2: not a hex id",
        ),
        (
            &criteo_mapper,
            uci_line(3),
            "expected 40 tab-separated fields",
        ),
        (
            &uci_mapper,
            replace(uci_line(3), ',', 0, "abc"),
            "age: not a number or '?'",
        ),
        (
            &uci_mapper,
            replace(uci_line(3), ',', 13, "-1"),
            "num: expected a non-negative",
        ),
        (
            &uci_mapper,
            criteo_line(3),
            "expected 14 comma-separated fields, found 1",
        ),
    ];
    for (mapper, line, needle) in cases {
        let error = mapper.map_line(line.as_bytes()).unwrap_err();
        assert!(
            error.contains(needle),
            "{line:?}: {error:?} lacks {needle:?}"
        );
        assert!(
            !error.contains(&*dir.path().to_string_lossy()),
            "no path in {error:?}"
        );
    }
    let error = uci_mapper.map_line(b"\xff,\xfe").unwrap_err();
    assert_eq!(error, "not UTF-8 text");
}

#[test]
fn open_rejects_unknown_dataset_kinds_and_missing_directories() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("heart.data");
    write_lines(&input, (0..30).map(uci_line));
    let out = dir.path().join("uci");
    uci::prepare(&input, &out, &UciOptions::default(), &NoProgress).unwrap();

    let manifest_path = out.join(MANIFEST_FILE);
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    manifest["dataset"] = "movielens".into();
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    match RowMapper::open(&out) {
        Err(DatasetError::InvalidDataset { path, message }) => {
            assert_eq!(path, manifest_path);
            assert!(message.contains("\"movielens\""), "{message}");
        }
        other => panic!("expected an invalid-dataset error, got {other:?}"),
    }

    // A UCI manifest claiming to be Criteo: its columns are not Criteo columns.
    manifest["dataset"] = "criteo".into();
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let error = RowMapper::open(&out).unwrap_err().to_string();
    assert!(error.contains("is not a column of criteo rows"), "{error}");

    let missing = dir.path().join("nothing-here");
    assert!(matches!(
        RowMapper::open(&missing),
        Err(DatasetError::Io { .. })
    ));
}

#[test]
fn read_rows_maps_a_raw_file_and_names_the_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let mapper = generated_uci_mapper(dir.path(), 60);
    let input = dir.path().join("rows.data");
    let lines = [uci_line(0), String::new(), uci_line(1), "56.0,1.0".into()];
    write_lines(&input, lines);
    let rows = mapper.read_rows(&input, 2).unwrap();
    let expected: Vec<MappedRow> = [0, 1]
        .map(|seed| mapper.map_line(uci_line(seed).as_bytes()).unwrap())
        .to_vec();
    assert_eq!(rows, expected, "blank lines are skipped");
    match mapper.read_rows(&input, 10) {
        Err(DatasetError::Malformed {
            path,
            line,
            message,
        }) => {
            assert_eq!((path, line), (input.clone(), 4));
            assert_eq!(message, "expected 14 comma-separated fields, found 2");
        }
        other => panic!("expected a malformed-line error, got {other:?}"),
    }
    write_lines(&input, [String::new()]);
    assert!(matches!(
        mapper.read_rows(&input, 10),
        Err(DatasetError::Empty { .. })
    ));
    assert!(matches!(
        mapper.read_rows(&dir.path().join("absent"), 10),
        Err(DatasetError::Io { .. })
    ));
}
