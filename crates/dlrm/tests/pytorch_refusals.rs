//! Untrusted PyTorch files written here: bad tensors are refused by name, and reference-layout
//! files are checked as TorchRec ones are.

mod state_dicts;

use dlrm::{ImportOptions, Interaction};
use safetensors::tensor::Dtype;
use state_dicts::*;

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
