//! Small PyTorch state dicts written in the tests: a TorchRec `DLRM`, its reference-DLRM
//! renaming, a forward pass to compare with, and safetensors files in any dtype.

// Each test file uses a part of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dlrm::ImportOptions;
use safetensors::tensor::{Dtype, TensorView};

/// Tensors by name: shape and `f32` values, written in a chosen dtype.
pub(crate) type Model = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

pub(crate) const DENSE: &str = "dense_arch.model._mlp";
pub(crate) const OVER: &str = "over_arch.model.0._mlp";
pub(crate) const FINAL: &str = "over_arch.model.1";
pub(crate) const BAGS: &str = "sparse_arch.embedding_bag_collection.embedding_bags";

/// Deterministic values in `[-1, 1)` (a 64-bit LCG).
pub(crate) struct Lcg(u64);

impl Lcg {
    pub(crate) fn values(&mut self, n: usize) -> Vec<f32> {
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
pub(crate) fn torchrec_model(seed: u64, tables: &[(&str, usize)], features: usize) -> Model {
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

pub(crate) fn linear(model: &Model, stem: &str, x: &[f32]) -> Vec<f32> {
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

pub(crate) fn relu(x: Vec<f32>) -> Vec<f32> {
    x.into_iter().map(|v| v.max(0.0)).collect()
}

/// TorchRec's forward written from its source: `DenseArch` (ReLU after every layer), the
/// pooled embedding of each feature (`features[f]` names its table), `InteractionArch` (dense
/// output, then the dot products of `[dense, e_1, ..., e_F]` at `triu_indices(F + 1, F + 1, 1)`),
/// `OverArch` (ReLU after every MLP layer, none after the final Linear).
pub(crate) fn torchrec_forward(
    model: &Model,
    features: &[&str],
    dense: &[f32],
    ids: &[usize],
) -> f32 {
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
pub(crate) fn reference_names(model: &Model, tables: &[&str]) -> Model {
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

pub(crate) fn f16_bits(x: f32) -> u16 {
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

pub(crate) fn bf16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    ((bits + 0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

pub(crate) fn encode(dtype: Dtype, values: &[f32]) -> Vec<u8> {
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
pub(crate) fn write(path: &Path, model: &Model, dtype_of: impl Fn(&str) -> Dtype) {
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

pub(crate) fn written(dir: &tempfile::TempDir, file: &str, model: &Model, dtype: Dtype) -> PathBuf {
    let path = dir.path().join(file);
    write(&path, model, |_| dtype);
    path
}

pub(crate) const ROWS: [([f32; 2], [usize; 3]); 5] = [
    ([0.5, -1.25], [0, 0, 0]),
    ([1.5, 0.75], [4, 3, 5]),
    ([-0.3, 2.0], [2, 1, 3]),
    ([0.0, 0.0], [1, 2, 4]),
    ([3.0, -2.0], [3, 0, 2]),
];

pub(crate) fn ids(row: &[usize]) -> Vec<u32> {
    row.iter().map(|&i| i as u32).collect()
}

pub(crate) const TABLES: [(&str, usize); 3] = [("t_cat_0", 5), ("t_cat_1", 4), ("t_cat_2", 6)];
pub(crate) const FEATURES: [&str; 3] = ["t_cat_0", "t_cat_1", "t_cat_2"];

/// Imports `model` written in F32 (or `dtype_of`) and returns the error message.
pub(crate) fn refusal(model: &Model, dtype_of: impl Fn(&str) -> Dtype) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.safetensors");
    write(&path, model, dtype_of);
    match dlrm::import_pytorch_with(&path, &ImportOptions::default()) {
        Ok(_) => panic!("accepted a bad file"),
        Err(e) => e.to_string(),
    }
}
