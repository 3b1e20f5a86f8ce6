//! Preparing real samples (from the shared folder) and generated data, read back value by value.

mod common;

use std::collections::HashMap;

use datasets::criteo::{self, CriteoOptions};
use datasets::shared::shared_file;
use datasets::synthetic::{self, SyntheticOptions};
use datasets::uci::{self, UciOptions};
use datasets::{DenseTransform, NoProgress, PreparedDataset, SplitData, SplitMethod};

use common::{SplitCursor, kaggle_file, kaggle_union};

#[test]
fn uci_cleveland_matches_the_published_facts_and_round_trips() {
    let Some(input) = shared_file("data/heart/processed.cleveland.data") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("uci");
    let summary = uci::prepare(&input, &out, &UciOptions::default(), &NoProgress).unwrap();
    let m = &summary.manifest;
    assert_eq!((m.rows, m.positives, m.skipped_rows), (303, 139, 0));
    assert_eq!(m.label_rate, 139.0 / 303.0);
    assert_eq!(
        m.source.sha256.as_deref(),
        Some("a74b7efa387bc9d108d7d0115d831fe9b414b29ae7124f331b622b4efa0427c8")
    );
    let sizes: HashMap<&str, (usize, u64)> = m
        .categorical
        .iter()
        .map(|c| (c.name.as_str(), (c.table_size, c.missing_rows)))
        .collect();
    // Values per SOURCES.md plus the reserved id; `?` appears 4 times in ca and twice in thal.
    let expected = [
        ("sex", 2, 0),
        ("cp", 4, 0),
        ("fbs", 2, 0),
        ("restecg", 3, 0),
        ("exang", 2, 0),
        ("slope", 3, 0),
        ("ca", 4, 4),
        ("thal", 3, 2),
    ];
    for (name, values, missing) in expected {
        assert_eq!(sizes[name], (values + 1, missing), "{name}");
    }
    // No continuous value is missing in Cleveland, so no flag columns.
    assert_eq!(m.dense.len(), 5);
    assert!(m.dense.iter().all(|d| d.missing_rows == 0));
    // Stratified: 20% of each class (164 negative, 139 positive) is held out.
    let test = m.split("test").unwrap();
    assert_eq!((test.rows, test.positives), (33 + 28, 28));

    let dataset = PreparedDataset::open(&out).unwrap();
    let splits = [
        dataset.load_split("train").unwrap(),
        dataset.load_split("test").unwrap(),
    ];
    // Standardised with train statistics: the train columns have mean 0 and variance 1.
    for j in 0..5 {
        let column: Vec<f64> = (0..splits[0].rows())
            .map(|r| f64::from(splits[0].dense_row(r)[j]))
            .collect();
        let mean = column.iter().sum::<f64>() / column.len() as f64;
        let variance = column.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / column.len() as f64;
        assert!(
            mean.abs() < 1e-5 && (variance - 1.0).abs() < 1e-4,
            "column {j}"
        );
    }
    let vocabularies: Vec<_> = uci::CATEGORICAL
        .iter()
        .map(|c| dataset.vocabulary(c).unwrap())
        .collect();
    let column = |name: &str| uci::COLUMNS.iter().position(|c| *c == name).unwrap();
    let mut cursor = SplitCursor::new(&splits);
    let mut missing_ids = 0;
    for line in std::fs::read_to_string(&input).unwrap().lines() {
        let raw = uci::parse_line(line.as_bytes()).unwrap();
        let dense: Vec<f32> = m
            .dense
            .iter()
            .map(|d| d.transform.apply(raw.values[column(&d.name)]))
            .collect();
        let ids: Vec<u32> = uci::CATEGORICAL
            .iter()
            .zip(&vocabularies)
            .map(|(name, vocab)| match raw.values[column(name)] {
                Some(v) => vocab.id(&uci::canonical_value(v)),
                None => {
                    missing_ids += 1;
                    datasets::RESERVED_ID
                }
            })
            .collect();
        assert!(
            ids.iter()
                .zip(&vocabularies)
                .all(|(&id, v)| id == 0 || v.raw(id).is_some())
        );
        cursor.expect_next(raw.label, &dense, &ids);
    }
    cursor.assert_exhausted();
    assert_eq!(missing_ids, 6);
}

#[test]
fn criteo_kaggle_head_matches_the_published_facts_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let Some(input) = kaggle_union(dir.path()) else {
        return;
    };
    let options = CriteoOptions {
        split: SplitMethod::Sequential,
        ..CriteoOptions::default()
    };
    let out = dir.path().join("prepared");
    let m = criteo::prepare(&input, &out, &options, &NoProgress)
        .unwrap()
        .manifest;
    assert_eq!((m.rows, m.positives), (8000, 1728));
    assert_eq!(m.label_rate, 0.216);
    // Distinct values per column (SOURCES.md), counting "missing" as one value.
    let distinct = [
        157, 370, 4525, 3370, 53, 8, 2817, 82, 3, 2584, 1904, 4338, 1591, 22, 1833, 3906, 9, 1055,
        481, 4, 4141, 8, 12, 2153, 38, 1636,
    ];
    for (column, expected) in m.categorical.iter().zip(distinct) {
        let with_missing = column.distinct_values + u64::from(column.missing_rows > 0);
        assert_eq!(with_missing, expected, "{}", column.name);
        // min-count 1 keeps every value: the table is the values plus the reserved id.
        assert_eq!(column.table_size as u64, column.distinct_values + 1);
    }
    // Missing percentages (SOURCES.md, rounded to whole percent).
    let dense_missing = [45, 0, 20, 20, 5, 25, 5, 0, 5, 45, 5, 78, 20];
    for (column, percent) in m.dense.iter().zip(dense_missing) {
        let measured = column.missing_rows as f64 * 100.0 / 8000.0;
        assert!(
            (measured - percent as f64).abs() <= 1.0,
            "{}: {measured}",
            column.name
        );
        assert_eq!(column.transform, DenseTransform::Log1p);
    }
    let mut categorical_missing = [0; 26];
    for c in [3, 4, 12, 16, 21, 24] {
        categorical_missing[c - 1] = 3;
    }
    categorical_missing[5] = 13;
    for c in [19, 20, 25, 26] {
        categorical_missing[c - 1] = 45;
    }
    categorical_missing[21] = 82;
    for (column, percent) in m.categorical.iter().zip(categorical_missing) {
        let measured = column.missing_rows as f64 * 100.0 / 8000.0;
        assert!(
            (measured - percent as f64).abs() <= 1.0,
            "{}: {measured}",
            column.name
        );
    }
    // Sequential split: the last 5% + 5% are validation and test.
    let rows: Vec<u64> = m.splits.iter().map(|s| s.rows).collect();
    assert_eq!(rows, [7200, 400, 400]);

    let dataset = PreparedDataset::open(&out).unwrap();
    let splits: Vec<SplitData> = ["train", "val", "test"]
        .iter()
        .map(|s| dataset.load_split(s).unwrap())
        .collect();
    let vocabularies: Vec<_> = criteo::categorical_names()
        .iter()
        .map(|c| dataset.vocabulary(c).unwrap())
        .collect();
    let mut cursor = SplitCursor::new(&splits);
    for line in std::fs::read_to_string(&input).unwrap().lines() {
        let raw = criteo::parse_line(line.as_bytes()).unwrap();
        let dense: Vec<f32> = raw
            .dense
            .iter()
            .map(|v| DenseTransform::Log1p.apply(*v))
            .collect();
        let ids: Vec<u32> = raw
            .categorical
            .iter()
            .zip(&vocabularies)
            .map(|(v, vocab)| v.map_or(0, |v| vocab.id(&criteo::format_hex(v))))
            .collect();
        assert!(
            raw.categorical
                .iter()
                .zip(&ids)
                .all(|(v, &id)| v.is_some() == (id != 0))
        );
        cursor.expect_next(raw.label, &dense, &ids);
    }
    cursor.assert_exhausted();
}

#[test]
fn criteo_train_sample_checksum_and_compressed_inputs_agree() {
    let Some(train) = kaggle_file("train.tsv") else {
        return;
    };
    let dev = kaggle_file("dev.tsv").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options = CriteoOptions::default();
    let m = criteo::prepare(&train, &dir.path().join("train"), &options, &NoProgress)
        .unwrap()
        .manifest;
    assert_eq!(m.rows, 7200);
    assert_eq!(
        m.source.sha256.as_deref(),
        Some("2b0614035f6c931dc4ac2c1a1a26fa954f2b9231703f3a77bcdd53d9d9f29872")
    );

    let plain = std::fs::read(&dev).unwrap();
    let gz_path = dir.path().join("dev.tsv.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &plain).unwrap();
    std::fs::write(&gz_path, gz.finish().unwrap()).unwrap();
    let zst_path = dir.path().join("dev.tsv.zst");
    std::fs::write(&zst_path, zstd::encode_all(&plain[..], 3).unwrap()).unwrap();

    let mut loaded = Vec::new();
    for (name, path, format) in [
        ("plain", dev.clone(), datasets::InputFormat::Plain),
        ("gz", gz_path, datasets::InputFormat::Gzip),
        ("zst", zst_path, datasets::InputFormat::Zstd),
    ] {
        let out = dir.path().join(name);
        let m = criteo::prepare(&path, &out, &options, &NoProgress)
            .unwrap()
            .manifest;
        assert_eq!(m.source.format, format);
        assert_eq!(m.rows, 409);
        let dataset = PreparedDataset::open(&out).unwrap();
        let splits: Vec<SplitData> = ["train", "val", "test"]
            .iter()
            .map(|s| dataset.load_split(s).unwrap())
            .collect();
        loaded.push((m.categorical.clone(), m.splits.clone(), splits));
    }
    assert!(loaded.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn criteo_min_count_table_cap_and_max_rows() {
    let Some(train) = kaggle_file("train.tsv") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let full = criteo::prepare(
        &train,
        &dir.path().join("full"),
        &CriteoOptions::default(),
        &NoProgress,
    )
    .unwrap()
    .manifest;
    let options = CriteoOptions {
        min_count: 3,
        max_table_size: Some(50),
        max_rows: Some(1000),
        ..CriteoOptions::default()
    };
    let out = dir.path().join("small");
    let m = criteo::prepare(&train, &out, &options, &NoProgress)
        .unwrap()
        .manifest;
    assert_eq!(m.rows, 1000);
    // The small file is read whole in one chunk, so its checksum is still known.
    assert_eq!(m.source.sha256, full.source.sha256);
    let dataset = PreparedDataset::open(&out).unwrap();
    for (column, full_column) in m.categorical.iter().zip(&full.categorical) {
        assert!(column.table_size <= 50, "{}", column.name);
        assert!(column.table_size <= full_column.table_size);
        let vocab = dataset.vocabulary(&column.name).unwrap();
        for id in 1..vocab.table_size() as u32 {
            assert!(vocab.count(id).unwrap() >= 3);
            if id > 1 {
                assert!(vocab.count(id) <= vocab.count(id - 1), "frequency order");
            }
        }
    }
    // Rows whose value was dropped map to the reserved id; kept ones keep their raw value.
    let text = std::fs::read_to_string(&train).unwrap();
    let c3 = dataset.vocabulary("C3").unwrap();
    let splits: Vec<SplitData> = ["train", "val", "test"]
        .iter()
        .map(|s| dataset.load_split(s).unwrap())
        .collect();
    let total: usize = splits.iter().map(|s| s.rows()).sum();
    assert_eq!(total, 1000);
    let kept_in_raw = text
        .lines()
        .take(1000)
        .filter(|l| {
            let row = criteo::parse_line(l.as_bytes()).unwrap();
            row.categorical[2].is_some_and(|v| c3.id(&criteo::format_hex(v)) != 0)
        })
        .count();
    let kept_in_prepared: usize = splits
        .iter()
        .map(|s| {
            (0..s.rows())
                .filter(|&r| s.categorical_row(r)[2] != 0)
                .count()
        })
        .sum();
    assert_eq!(kept_in_raw, kept_in_prepared);
}

#[test]
fn random_split_is_reproducible() {
    let Some(dev) = kaggle_file("dev.tsv") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let load = |name: &str, seed: u64| {
        let out = dir.path().join(name);
        let options = CriteoOptions {
            seed,
            val_fraction: 0.2,
            test_fraction: 0.2,
            ..CriteoOptions::default()
        };
        criteo::prepare(&dev, &out, &options, &NoProgress).unwrap();
        PreparedDataset::open(&out)
            .unwrap()
            .load_split("test")
            .unwrap()
    };
    let (a, b, c) = (load("a", 5), load("b", 5), load("c", 6));
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(
        (50..115).contains(&a.rows()),
        "{} of 409 rows in test",
        a.rows()
    );
}

#[test]
fn synthetic_data_is_deterministic_and_criteo_shaped() {
    let dir = tempfile::tempdir().unwrap();
    let options = SyntheticOptions {
        rows: 40_000,
        scale: 0.0005,
        seed: 11,
        ..SyntheticOptions::default()
    };
    let first = dir.path().join("a.tsv");
    let report = synthetic::generate(&options, &first, &NoProgress).unwrap();
    let one_thread = dir.path().join("b.tsv");
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| synthetic::generate(&options, &one_thread, &NoProgress).unwrap());
    assert_eq!(
        std::fs::read(&first).unwrap(),
        std::fs::read(&one_thread).unwrap()
    );
    let sidecar: synthetic::SyntheticReport = serde_json::from_str(
        &std::fs::read_to_string(synthetic::SyntheticReport::sidecar_path(&first)).unwrap(),
    )
    .unwrap();
    assert_eq!(sidecar, report);
    assert!(report.oracle_auc > 0.7, "oracle AUC {}", report.oracle_auc);
    let rate = report.positives as f64 / report.rows as f64;
    assert!((rate - 0.256).abs() < 0.02, "label rate {rate}");

    let out = dir.path().join("prepared");
    let m = criteo::prepare(&first, &out, &CriteoOptions::default(), &NoProgress)
        .unwrap()
        .manifest;
    assert_eq!(m.rows, 40_000);
    assert_eq!(m.positives, report.positives);
    for (column, cardinality) in m.categorical.iter().zip(&report.cardinalities) {
        assert!(column.distinct_values <= *cardinality, "{}", column.name);
    }
    // The largest table is near its cardinality, the smallest ones are full.
    assert!(m.categorical[2].distinct_values > report.cardinalities[2] / 4);
    assert_eq!(m.categorical[8].distinct_values, report.cardinalities[8]);
    let c22 = m.categorical[21].missing_rows as f64 / 40_000.0;
    assert!((c22 - 0.82).abs() < 0.02, "C22 missing {c22}");
    let i12 = m.dense[11].missing_rows as f64 / 40_000.0;
    assert!((i12 - 0.78).abs() < 0.02, "I12 missing {i12}");

    let other = SyntheticOptions {
        seed: 12,
        ..options
    };
    let different = dir.path().join("c.tsv");
    synthetic::generate(&other, &different, &NoProgress).unwrap();
    assert_ne!(
        std::fs::read(&first).unwrap(),
        std::fs::read(&different).unwrap()
    );
}
