//! Importing a PyTorch-named safetensors DLRM: the HE-LRM toy model from the shared folder
//! reproduces its published float reference; malformed files are refused without panics.

use dlrm::Interaction;

#[test]
fn helrm_toy_reproduces_its_float_reference() {
    let Some(path) = datasets::shared::shared_file("models/helrm_toy/dlrm.safetensors") else {
        return;
    };
    let weights = dlrm::import_pytorch(&path, Interaction::Concat).unwrap();
    let c = &weights.config;
    assert_eq!(
        (c.dense_features, c.bottom.clone(), c.embedding_dim),
        (4, vec![3, 2], 2)
    );
    assert_eq!(
        c.tables.iter().map(|t| t.rows).collect::<Vec<_>>(),
        vec![4, 3, 2]
    );
    assert_eq!(c.top, vec![4, 2, 1]);
    let logit = weights
        .forward(&[0.1753, -0.9315, -1.5055, -0.6610], &[3, 0, 1])
        .unwrap();
    assert!(
        (f64::from(logit) - -0.04672338).abs() < 1e-5,
        "logit {logit}"
    );
    // The published concatenation: embeddings of ids 3, 0, 1.
    assert_eq!(weights.embedding(0, 3).len(), 2);
    let e: Vec<f32> = [(0, 3), (1, 0), (2, 1)]
        .iter()
        .flat_map(|&(t, id)| weights.embedding(t, id))
        .collect();
    let expected = [
        0.71159667,
        1.25759256,
        0.38135549,
        1.2753371,
        -0.54417324,
        1.27773464,
    ];
    for (a, b) in e.iter().zip(expected) {
        assert!((f64::from(*a) - b).abs() < 1e-6, "{a} vs {b}");
    }
    // Its widths also fit a dot interaction (2 + 4 * 3 / 2 = 8): a different model, another logit.
    let dot = dlrm::import_pytorch(&path, Interaction::Dot).unwrap();
    let other = dot
        .forward(&[0.1753, -0.9315, -1.5055, -0.6610], &[3, 0, 1])
        .unwrap();
    assert!((other - logit).abs() > 1e-3);
}

#[test]
fn the_toy_survives_a_save_load_round_trip() {
    let Some(path) = datasets::shared::shared_file("models/helrm_toy/dlrm.safetensors") else {
        return;
    };
    let weights = dlrm::import_pytorch(&path, Interaction::Concat).unwrap();
    let dir = tempfile::tempdir().unwrap();
    dlrm::save_model(dir.path(), &weights, None).unwrap();
    let loaded = dlrm::load_model(dir.path()).unwrap();
    assert_eq!(loaded.weights, weights);
}

#[test]
fn malformed_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.safetensors");
    for bytes in [
        &b""[..],
        b"\x08\0\0\0\0\0\0\0{}",
        b"\xff\xff\xff\xff\xff\xff\xff\x7fgarbage",
        b"\x02\0\0\0\0\0\0\0{}",
    ] {
        std::fs::write(&path, bytes).unwrap();
        assert!(dlrm::import_pytorch(&path, Interaction::Concat).is_err());
    }
    assert!(dlrm::import_pytorch(&dir.path().join("missing"), Interaction::Concat).is_err());
}

// ---------------------------------------------------------------------------------------------
// TorchRec layout and untrusted-file checks, on small models written here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dlrm::{ImportOptions, PytorchLayout};
use safetensors::tensor::{Dtype, TensorView};

/// Tensors by name: shape and `f32` values, written in a chosen dtype.
type Model = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

const DENSE: &str = "dense_arch.model._mlp";
const OVER: &str = "over_arch.model.0._mlp";
const FINAL: &str = "over_arch.model.1";
const BAGS: &str = "sparse_arch.embedding_bag_collection.embedding_bags";

/// Deterministic values in `[-1, 1)` (a 64-bit LCG).
struct Lcg(u64);

impl Lcg {
    fn values(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.0 = self
                    .0
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }
}

/// A TorchRec `DLRM` state dict: dense arch 2-4-3 (d = 3), the given tables (name, rows),
/// `features` sparse features, over arch [8, 4, 1] (an MLP of 8 and 4, then the final Linear).
fn torchrec_model(seed: u64, tables: &[(&str, usize)], features: usize) -> Model {
    let mut rng = Lcg(seed);
    let mut model = Model::new();
    let mut linear = |model: &mut Model, stem: String, rows: usize, cols: usize| {
        model.insert(
            format!("{stem}.weight"),
            (vec![rows, cols], rng.values(rows * cols)),
        );
        model.insert(format!("{stem}.bias"), (vec![rows], rng.values(rows)));
    };
    linear(&mut model, format!("{DENSE}.0._linear"), 4, 2);
    linear(&mut model, format!("{DENSE}.1._linear"), 3, 4);
    let over_in = 3 + features * (features + 1) / 2;
    linear(&mut model, format!("{OVER}.0._linear"), 8, over_in);
    linear(&mut model, format!("{OVER}.1._linear"), 4, 8);
    linear(&mut model, FINAL.to_string(), 1, 4);
    for &(name, rows) in tables {
        model.insert(
            format!("{BAGS}.{name}.weight"),
            (vec![rows, 3], rng.values(rows * 3)),
        );
    }
    model
}

fn linear(model: &Model, stem: &str, x: &[f32]) -> Vec<f32> {
    let (shape, w) = &model[&format!("{stem}.weight")];
    let (_, b) = &model[&format!("{stem}.bias")];
    assert_eq!(shape[1], x.len());
    (0..shape[0])
        .map(|r| {
            let row = &w[r * shape[1]..(r + 1) * shape[1]];
            row.iter().zip(x).map(|(w, x)| w * x).sum::<f32>() + b[r]
        })
        .collect()
}

fn relu(x: Vec<f32>) -> Vec<f32> {
    x.into_iter().map(|v| v.max(0.0)).collect()
}

/// TorchRec's forward written from its source: `DenseArch` (ReLU after every layer), the
/// pooled embedding of each feature (`features[f]` names its table), `InteractionArch` (dense
/// output, then the dot products of `[dense, e_1, ..., e_F]` at `triu_indices(F + 1, F + 1, 1)`),
/// `OverArch` (ReLU after every MLP layer, none after the final Linear).
fn torchrec_forward(model: &Model, features: &[&str], dense: &[f32], ids: &[usize]) -> f32 {
    let x = relu(linear(model, &format!("{DENSE}.0._linear"), dense));
    let x = relu(linear(model, &format!("{DENSE}.1._linear"), &x));
    let mut vectors = vec![x.clone()];
    for (table, &id) in features.iter().zip(ids) {
        let (shape, data) = &model[&format!("{BAGS}.{table}.weight")];
        vectors.push(data[id * shape[1]..(id + 1) * shape[1]].to_vec());
    }
    let mut z = x;
    for i in 0..vectors.len() {
        for j in i + 1..vectors.len() {
            z.push(vectors[i].iter().zip(&vectors[j]).map(|(a, b)| a * b).sum());
        }
    }
    let z = relu(linear(model, &format!("{OVER}.0._linear"), &z));
    let z = relu(linear(model, &format!("{OVER}.1._linear"), &z));
    linear(model, FINAL, &z)[0]
}

/// The same model under the reference DLRM's names (`nn.Sequential` indices skip the ReLUs),
/// with the first top layer's pair columns in the reference's lower-triangle order.
fn reference_names(model: &Model, tables: &[&str]) -> Model {
    let mut out = Model::new();
    let mut copy = |from: &str, to: &str| {
        for p in ["weight", "bias"] {
            out.insert(format!("{to}.{p}"), model[&format!("{from}.{p}")].clone());
        }
    };
    copy(&format!("{DENSE}.0._linear"), "bot_l.0");
    copy(&format!("{DENSE}.1._linear"), "bot_l.2");
    copy(&format!("{OVER}.0._linear"), "top_l.0");
    copy(&format!("{OVER}.1._linear"), "top_l.2");
    copy(FINAL, "top_l.4");
    for (k, t) in tables.iter().enumerate() {
        out.insert(
            format!("emb_l.{k}.weight"),
            model[&format!("{BAGS}.{t}.weight")].clone(),
        );
    }
    let n = tables.len() + 1;
    let upper: Vec<(usize, usize)> = (0..n)
        .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
        .collect();
    let lower: Vec<(usize, usize)> = (0..n).flat_map(|i| (0..i).map(move |j| (i, j))).collect();
    let (shape, w) = out["top_l.0.weight"].clone();
    let d = shape[1] - upper.len();
    let mut permuted = Vec::new();
    for r in 0..shape[0] {
        let row = &w[r * shape[1]..(r + 1) * shape[1]];
        permuted.extend_from_slice(&row[..d]);
        for &(i, j) in &lower {
            let k = upper.iter().position(|&p| p == (j, i)).unwrap();
            permuted.push(row[d + k]);
        }
    }
    out.insert("top_l.0.weight".into(), (shape, permuted));
    out
}

fn f16_bits(x: f32) -> u16 {
    let sign = ((x.to_bits() >> 16) & 0x8000) as u16;
    let a = x.abs();
    if a < 2f32.powi(-14) {
        return sign | (a * 2f32.powi(24)).round() as u16;
    }
    let bits = a.to_bits();
    let exponent = (bits >> 23) as i32 - 127 + 15;
    if exponent >= 31 {
        return sign | 0x7c00; // overflows to infinity, as PyTorch's conversion does
    }
    let mantissa = bits & 0x7f_ffff;
    let mut h = ((exponent as u32) << 10) | (mantissa >> 13);
    let rest = mantissa & 0x1fff;
    if rest > 0x1000 || (rest == 0x1000 && h & 1 == 1) {
        h += 1;
    }
    sign | h as u16
}

fn bf16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    ((bits + 0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

fn encode(dtype: Dtype, values: &[f32]) -> Vec<u8> {
    match dtype {
        Dtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        Dtype::F16 => values
            .iter()
            .flat_map(|&v| f16_bits(v).to_le_bytes())
            .collect(),
        Dtype::BF16 => values
            .iter()
            .flat_map(|&v| bf16_bits(v).to_le_bytes())
            .collect(),
        Dtype::F64 => values
            .iter()
            .flat_map(|&v| f64::from(v).to_le_bytes())
            .collect(),
        Dtype::I64 => values
            .iter()
            .flat_map(|&v| (v as i64).to_le_bytes())
            .collect(),
        other => panic!("no encoder for {other:?}"),
    }
}

/// Writes `model` with each tensor in `dtype_of(name)`.
fn write(path: &Path, model: &Model, dtype_of: impl Fn(&str) -> Dtype) {
    let bytes: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = model
        .iter()
        .map(|(name, (shape, values))| {
            let dtype = dtype_of(name);
            (name.clone(), dtype, shape.clone(), encode(dtype, values))
        })
        .collect();
    let views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(name, dtype, shape, data)| {
            (
                name.clone(),
                TensorView::new(*dtype, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

fn written(dir: &tempfile::TempDir, file: &str, model: &Model, dtype: Dtype) -> PathBuf {
    let path = dir.path().join(file);
    write(&path, model, |_| dtype);
    path
}

const ROWS: [([f32; 2], [usize; 3]); 5] = [
    ([0.5, -1.25], [0, 0, 0]),
    ([1.5, 0.75], [4, 3, 5]),
    ([-0.3, 2.0], [2, 1, 3]),
    ([0.0, 0.0], [1, 2, 4]),
    ([3.0, -2.0], [3, 0, 2]),
];

fn ids(row: &[usize]) -> Vec<u32> {
    row.iter().map(|&i| i as u32).collect()
}

const TABLES: [(&str, usize); 3] = [("t_cat_0", 5), ("t_cat_1", 4), ("t_cat_2", 6)];
const FEATURES: [&str; 3] = ["t_cat_0", "t_cat_1", "t_cat_2"];

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

/// Imports `model` written in F32 (or `dtype_of`) and returns the error message.
fn refusal(model: &Model, dtype_of: impl Fn(&str) -> Dtype) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.safetensors");
    write(&path, model, dtype_of);
    match dlrm::import_pytorch_with(&path, &ImportOptions::default()) {
        Ok(_) => panic!("accepted a bad file"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_tensors_are_refused_by_name() {
    let good = torchrec_model(31, &TABLES, 3);
    let layer1 = format!("{DENSE}.1._linear.weight");
    let table = format!("{BAGS}.t_cat_1.weight");
    let check = |model: &Model, needle: &str, also: &str| {
        let message = refusal(model, |_| Dtype::F32);
        assert!(
            message.contains(needle) && message.contains(also),
            "{message}"
        );
    };

    let mut m = good.clone();
    m.get_mut(&layer1).unwrap().1[5] = f32::NAN;
    check(&m, &layer1, "not finite");
    let mut m = good.clone();
    m.get_mut(&table).unwrap().1[0] = f32::NEG_INFINITY;
    check(&m, &table, "not finite");

    // Weight columns not matching the previous layer.
    let mut m = good.clone();
    m.insert(layer1.clone(), (vec![3, 5], vec![0.1; 15]));
    check(&m, &layer1, "previous layer");
    // A bias of the wrong length.
    let mut m = good.clone();
    let bias = format!("{OVER}.0._linear.bias");
    m.insert(bias.clone(), (vec![7], vec![0.1; 7]));
    check(&m, &bias, "7 values");
    // 1-D where 2-D is expected, and 2-D where 1-D is.
    let mut m = good.clone();
    m.insert(table.clone(), (vec![12], vec![0.1; 12]));
    check(&m, &table, "2-D");
    let mut m = good.clone();
    m.insert(bias.clone(), (vec![8, 1], vec![0.1; 8]));
    check(&m, &bias, "1-D");
    // Tables of different dimensions.
    let mut m = good.clone();
    m.insert(table.clone(), (vec![4, 2], vec![0.1; 8]));
    check(&m, &table, "columns");

    // Missing tensors: a bias, the final layer's bias, a whole first layer.
    let mut m = good.clone();
    m.remove(&format!("{OVER}.1._linear.bias"));
    check(&m, &format!("{OVER}.1._linear.bias"), "missing");
    let mut m = good.clone();
    m.remove(&format!("{FINAL}.bias"));
    check(&m, &format!("{FINAL}.bias"), "missing");
    let mut m = good.clone();
    m.remove(&format!("{DENSE}.0._linear.weight"));
    m.remove(&format!("{DENSE}.0._linear.bias"));
    check(&m, &format!("{DENSE}.0._linear.weight"), "missing");

    // Tensors of neither layout: optimizer state, a parametrization, another interaction.
    let mut m = good.clone();
    m.insert("optimizer.state.0.exp_avg".into(), (vec![2], vec![0.0; 2]));
    check(&m, "optimizer.state.0.exp_avg", "outside");
    let mut m = good.clone();
    m.insert(
        format!("{OVER}.0._linear.weight_orig"),
        (vec![2], vec![0.0; 2]),
    );
    check(&m, &format!("{OVER}.0._linear.weight_orig"), "outside");
    let mut m = good.clone();
    m.insert(
        "inter_arch.crossnet.V_kernels.0".into(),
        (vec![2, 2], vec![0.0; 4]),
    );
    check(&m, "inter_arch.crossnet.V_kernels.0", "DLRM_DCN");
    let mut m = good.clone();
    for k in 0..8 {
        m.insert(format!("optim.m{k}"), (vec![1], vec![0.0]));
    }
    check(&m, "optim.m0", "and 3 more");
    // Both layouts at once, or two prefixes.
    let mut m = good.clone();
    m.insert("bot_l.0.weight".into(), (vec![4, 2], vec![0.0; 8]));
    check(&m, "mixes", "bot_l.");
    let mut m = good.clone();
    let moved = format!("ema.{layer1}");
    let value = m.remove(&layer1).unwrap();
    m.insert(moved, value);
    check(&m, "\"ema.\"", "prefixes");

    // Unsupported dtypes.
    for dtype in [Dtype::I64, Dtype::F64] {
        let message = refusal(&good, |name| if name == table { dtype } else { Dtype::F32 });
        assert!(
            message.contains(&table) && message.contains(&format!("{dtype:?}")),
            "{message}"
        );
    }
    // An infinity written as F16.
    let mut m = good.clone();
    m.get_mut(&table).unwrap().1[3] = 1e6;
    let message = refusal(&m, |_| Dtype::F16);
    assert!(
        message.contains(&table) && message.contains("not finite"),
        "{message}"
    );
}

#[test]
fn reference_files_keep_skipped_indices_and_are_checked_too() {
    let dir = tempfile::tempdir().unwrap();
    let reference = reference_names(&torchrec_model(41, &TABLES, 3), &FEATURES);
    // Indices 0, 2, 4 (the ReLUs in between have no parameters) are accepted.
    let path = written(&dir, "ref.safetensors", &reference, Dtype::BF16);
    let w = dlrm::import_pytorch(&path, Interaction::Dot).unwrap();
    assert_eq!(w.config.top, vec![8, 4, 1]);

    let mut m = reference.clone();
    m.remove("bot_l.2.bias");
    let message = refusal(&m, |_| Dtype::F32);
    assert!(message.contains("bot_l.2.bias"), "{message}");
    let mut m = reference.clone();
    m.remove("top_l.2.weight");
    let message = refusal(&m, |_| Dtype::F32);
    assert!(message.contains("top_l.2.weight"), "{message}");
    let mut m = reference.clone();
    m.insert("emb_l.1.weight_q".into(), (vec![2, 3], vec![0.0; 6]));
    let message = refusal(&m, |_| Dtype::F32);
    assert!(message.contains("emb_l.1.weight_q"), "{message}");
    let mut m = reference.clone();
    m.get_mut("top_l.4.weight").unwrap().1[0] = f32::NAN;
    let message = refusal(&m, |_| Dtype::F32);
    assert!(message.contains("top_l.4.weight"), "{message}");
    // A table order is for TorchRec files.
    let options = ImportOptions {
        table_order: Some(vec!["a".into()]),
        ..Default::default()
    };
    assert!(dlrm::import_pytorch_with(&path, &options).is_err());
}
