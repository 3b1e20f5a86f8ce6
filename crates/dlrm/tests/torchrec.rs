//! The TorchRec layout on small state dicts written here: TorchRec's own forward pass, table
//! order, and half-precision files.

mod state_dicts;

use dlrm::{ImportOptions, Interaction, PytorchLayout};
use safetensors::tensor::Dtype;
use state_dicts::*;

#[test]
fn torchrec_layout_computes_torchrecs_logits() {
    let dir = tempfile::tempdir().unwrap();
    let model = torchrec_model(11, &TABLES, 3);
    let path = written(&dir, "torchrec.safetensors", &model, Dtype::F32);
    let import = dlrm::import_pytorch_with(&path, &ImportOptions::default()).unwrap();
    assert_eq!(import.layout, PytorchLayout::TorchRec);
    assert_eq!(
        import.tables,
        FEATURES
            .iter()
            .map(|t| format!("{BAGS}.{t}.weight"))
            .collect::<Vec<_>>()
    );
    let c = &import.weights.config;
    assert_eq!(
        (c.dense_features, c.bottom.clone(), c.embedding_dim),
        (2, vec![4, 3], 3)
    );
    assert_eq!(c.interaction, Interaction::Dot);
    assert_eq!(c.top, vec![8, 4, 1]);
    assert_eq!(
        c.tables.iter().map(|t| t.rows).collect::<Vec<_>>(),
        vec![5, 4, 6]
    );
    for (dense, row) in ROWS {
        let expected = torchrec_forward(&model, &FEATURES, &dense, &row);
        let logit = import.weights.forward(&dense, &ids(&row)).unwrap();
        assert!((logit - expected).abs() < 1e-5, "{logit} vs {expected}");
    }
    // The plain entry point takes it with the dot interaction and refuses concat.
    assert_eq!(
        dlrm::import_pytorch(&path, Interaction::Dot).unwrap(),
        import.weights
    );
    let err = dlrm::import_pytorch(&path, Interaction::Concat).unwrap_err();
    assert!(err.to_string().contains("dot interaction"), "{err}");

    // The same weights under the reference DLRM's names: the same model, the same logits.
    let reference = reference_names(&model, &FEATURES);
    let ref_path = written(&dir, "reference.safetensors", &reference, Dtype::F32);
    let ref_import = dlrm::import_pytorch_with(&ref_path, &ImportOptions::default()).unwrap();
    assert_eq!(ref_import.layout, PytorchLayout::Reference);
    assert_eq!(ref_import.weights, import.weights);
    let dot = dlrm::import_pytorch(&ref_path, Interaction::Dot).unwrap();
    for (dense, row) in ROWS {
        let a = dot.forward(&dense, &ids(&row)).unwrap();
        let b = import.weights.forward(&dense, &ids(&row)).unwrap();
        assert_eq!(a, b);
    }
    // A reference file of these widths cannot be read with concat (3 + 3 * 3 inputs).
    let err = dlrm::import_pytorch(&ref_path, Interaction::Concat).unwrap_err();
    assert!(err.to_string().contains("top_l.0.weight"), "{err}");

    // A common prefix (TorchRec's DLRMTrain wraps the model as `model.`) is accepted.
    let prefixed: Model = model
        .iter()
        .map(|(k, v)| (format!("model.{k}"), v.clone()))
        .collect();
    let prefixed_path = written(&dir, "prefixed.safetensors", &prefixed, Dtype::F32);
    let p = dlrm::import_pytorch_with(&prefixed_path, &ImportOptions::default()).unwrap();
    assert_eq!(p.weights, import.weights);
    assert!(p.tables[0].starts_with("model.sparse_arch."));
}

#[test]
fn torchrec_tables_are_ordered_by_their_trailing_number_or_as_given() {
    let dir = tempfile::tempdir().unwrap();
    // Sorted as text these would be 10, 2, 9.
    let tables = [("t_cat_10", 5), ("t_cat_2", 4), ("t_cat_9", 6)];
    let order = ["t_cat_2", "t_cat_9", "t_cat_10"];
    let model = torchrec_model(12, &tables, 3);
    let path = written(&dir, "numbered.safetensors", &model, Dtype::F32);
    let import = dlrm::import_pytorch_with(&path, &ImportOptions::default()).unwrap();
    assert!(import.tables[2].ends_with(".t_cat_10.weight"));
    for (dense, row) in ROWS {
        let row = [row[0].min(3), row[1].min(5), row[2].min(4)];
        let expected = torchrec_forward(&model, &order, &dense, &row);
        let logit = import.weights.forward(&dense, &ids(&row)).unwrap();
        assert!((logit - expected).abs() < 1e-5, "{logit} vs {expected}");
    }

    // Names without numbers need the order.
    let tables = [("user", 5), ("item", 4), ("ad", 6)];
    let model = torchrec_model(13, &tables, 3);
    let path = written(&dir, "named.safetensors", &model, Dtype::F32);
    let err = dlrm::import_pytorch_with(&path, &ImportOptions::default()).unwrap_err();
    assert!(err.to_string().contains("table_order"), "{err}");
    let features = ["item", "ad", "user"];
    let options = ImportOptions {
        table_order: Some(features.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    };
    let import = dlrm::import_pytorch_with(&path, &options).unwrap();
    assert_eq!(
        import
            .weights
            .config
            .tables
            .iter()
            .map(|t| t.rows)
            .collect::<Vec<_>>(),
        vec![4, 6, 5]
    );
    for (dense, row) in ROWS {
        let row = [row[0].min(3), row[1].min(5), row[2].min(4)];
        let expected = torchrec_forward(&model, &features, &dense, &row);
        let logit = import.weights.forward(&dense, &ids(&row)).unwrap();
        assert!((logit - expected).abs() < 1e-5, "{logit} vs {expected}");
    }
    // A wrong order names what is wrong.
    for (order, needle) in [
        (vec!["item", "ad", "nope"], "\"nope\""),
        (vec!["item", "ad", "ad"], "\"user\""),
    ] {
        let options = ImportOptions {
            table_order: Some(order.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        };
        let err = dlrm::import_pytorch_with(&path, &options).unwrap_err();
        assert!(err.to_string().contains(needle), "{err}");
    }

    // One table serving two features (TorchRec's feature_names=["f1", "f3"]): named twice.
    let tables = [("t_cat_0", 5), ("t_cat_1", 4)];
    let features = ["t_cat_0", "t_cat_1", "t_cat_0"];
    let model = torchrec_model(14, &tables, 3);
    let path = written(&dir, "shared.safetensors", &model, Dtype::F32);
    let err = dlrm::import_pytorch_with(&path, &ImportOptions::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("over_arch.model.0._mlp.0._linear.weight"),
        "{err}"
    );
    let options = ImportOptions {
        table_order: Some(features.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    };
    let import = dlrm::import_pytorch_with(&path, &options).unwrap();
    for (dense, row) in ROWS {
        let row = [row[0].min(4), row[1].min(3), row[2].min(4)];
        let expected = torchrec_forward(&model, &features, &dense, &row);
        let logit = import.weights.forward(&dense, &ids(&row)).unwrap();
        assert!((logit - expected).abs() < 1e-5, "{logit} vs {expected}");
    }
}

#[test]
fn half_precision_files_agree_with_f32_within_their_precision() {
    let dir = tempfile::tempdir().unwrap();
    let model = torchrec_model(21, &TABLES, 3);
    let f32_path = written(&dir, "f32.safetensors", &model, Dtype::F32);
    let full = dlrm::import_pytorch_with(&f32_path, &ImportOptions::default())
        .unwrap()
        .weights;
    // Half a unit in the last place: 2^-11 relative for F16 (plus its subnormal step), 2^-8 for
    // BF16.
    for (dtype, relative, absolute, logit_tolerance) in [
        (Dtype::F16, 2f32.powi(-11), 2f32.powi(-25), 5e-3),
        (Dtype::BF16, 2f32.powi(-8), 0.0, 5e-2),
    ] {
        let path = written(&dir, "half.safetensors", &model, dtype);
        let half = dlrm::import_pytorch_with(&path, &ImportOptions::default())
            .unwrap()
            .weights;
        assert_eq!(half.config, full.config);
        let close = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .all(|(a, b)| (a - b).abs() <= b.abs() * relative + absolute)
        };
        for (h, f) in half
            .bottom
            .iter()
            .zip(&full.bottom)
            .chain(half.top.iter().zip(&full.top))
        {
            assert!(close(&h.weight.data, &f.weight.data), "{dtype:?}");
            assert!(close(&h.bias, &f.bias), "{dtype:?}");
        }
        for (h, f) in half.tables.iter().zip(&full.tables) {
            assert!(close(&h.data, &f.data), "{dtype:?}");
        }
        for (dense, row) in ROWS {
            let a = half.forward(&dense, &ids(&row)).unwrap();
            let b = full.forward(&dense, &ids(&row)).unwrap();
            assert!((a - b).abs() < logit_tolerance, "{dtype:?}: {a} vs {b}");
        }
    }
    // Mixed dtypes (TorchRec's FP16 tables with F32 layers) are read too.
    let path = dir.path().join("mixed.safetensors");
    write(&path, &model, |name| {
        if name.starts_with("sparse_arch.") {
            Dtype::F16
        } else {
            Dtype::F32
        }
    });
    let mixed = dlrm::import_pytorch_with(&path, &ImportOptions::default())
        .unwrap()
        .weights;
    assert_eq!(mixed.bottom, full.bottom);
    assert_eq!(mixed.top, full.top);
    // Exact half values are read exactly.
    let mut exact = model.clone();
    let table = format!("{BAGS}.t_cat_0.weight");
    let values = [
        1.0,
        -2.0,
        65504.0,
        2f32.powi(-14),
        2f32.powi(-24),
        -0.333_251_95,
    ];
    exact.get_mut(&table).unwrap().1[..6].copy_from_slice(&values);
    let path = written(&dir, "exact.safetensors", &exact, Dtype::F16);
    let w = dlrm::import_pytorch_with(&path, &ImportOptions::default())
        .unwrap()
        .weights;
    assert_eq!(w.tables[0].data[..6], values);
}
