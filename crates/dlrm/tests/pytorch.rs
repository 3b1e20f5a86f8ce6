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
