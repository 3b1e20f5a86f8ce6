//! Ranked requests on the integer reference: one user's private inputs, K candidates' public
//! ids. Exact results equal `forward` on every merged row (concat and dot, several role
//! patterns); in `simulate` mode the private part's noise is drawn once and shared by every
//! candidate; bad requests and bad roles are refused with errors; roles change the written
//! formats only when some feature is public.

use datasets::SplitData;
use dlrm::{
    Dlrm, Execution, FeatureRoles, Interaction, ModelPreset, NoiseModel, QuantizeConfig,
    QuantizedModel, Role,
};

const TABLES: [usize; 4] = [5, 3, 7, 300];

/// Deterministic values from a seed (an LCG).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
}

fn generated(rows: usize, dense: usize, table_rows: &[usize]) -> SplitData {
    let mut rng = Lcg(12345);
    SplitData {
        labels: (0..rows).map(|r| (r % 2) as u8).collect(),
        dense: (0..rows * dense)
            .map(|_| rng.next() as f32 / u32::MAX as f32 * 4.0 - 1.0)
            .collect(),
        categorical: (0..rows * table_rows.len())
            .map(|i| rng.next() % table_rows[i % table_rows.len()] as u32)
            .collect(),
        dense_names: (0..dense).map(|j| format!("d{j}")).collect(),
        categorical_names: (0..table_rows.len()).map(|t| format!("c{t}")).collect(),
    }
}

/// An untrained model of the `uci` preset's sizes (or with a one-layer top MLP), quantized.
fn model(interaction: Interaction, top: Option<Vec<usize>>, roles: &[Role]) -> QuantizedModel {
    let mut config = ModelPreset::Uci.config(3, &TABLES);
    config.interaction = interaction;
    if let Some(top) = top {
        config.top = top;
    }
    config.roles = FeatureRoles {
        dense: vec![],
        tables: roles.to_vec(),
    };
    let weights = Dlrm::new(&config, 5).unwrap().to_weights().unwrap();
    let data = generated(300, 3, &TABLES);
    let (model, _) = dlrm::quantize(&weights, &data, &QuantizeConfig::default()).unwrap();
    model
}

use Role::{Private as S, Public as P};
const PATTERNS: [[Role; 4]; 4] = [[P, S, P, S], [S, P, S, P], [P, P, P, P], [S, S, S, S]];

/// A user's private inputs and `k` candidates' public ids, from `rng`.
fn request(model: &QuantizedModel, rng: &mut Lcg, k: usize) -> (Vec<i64>, Vec<u32>, Vec<Vec<u32>>) {
    let c = &model.config;
    let dense: Vec<f32> = (0..c.dense_features)
        .map(|_| rng.next() as f32 / u32::MAX as f32 * 6.0 - 3.0)
        .collect();
    let mut ids = |tables: Vec<usize>| -> Vec<u32> {
        tables
            .iter()
            .map(|&t| rng.next() % c.tables[t].rows as u32)
            .collect()
    };
    let private = ids(c.roles.private_tables(TABLES.len()));
    let candidates = (0..k)
        .map(|_| ids(c.roles.public_tables(TABLES.len())))
        .collect();
    (model.quantize_input(&dense), private, candidates)
}

#[test]
fn rank_equals_forward_on_every_merged_row() {
    for interaction in [Interaction::Concat, Interaction::Dot] {
        for top in [None, Some(vec![1])] {
            for roles in PATTERNS {
                let model = model(interaction, top.clone(), &roles);
                let mut rng = Lcg(99);
                let mut distinct = std::collections::BTreeSet::new();
                for _ in 0..15 {
                    let (dense, private, candidates) = request(&model, &mut rng, 20);
                    let ranked = model.rank(&dense, &private, &candidates).unwrap();
                    assert_eq!(ranked.len(), candidates.len());
                    for (public, &numerator) in candidates.iter().zip(&ranked) {
                        let ids = model.config.merged_ids(&private, public).unwrap();
                        let expected = model.forward(&dense, &ids).unwrap();
                        assert_eq!(numerator, expected, "{interaction:?} {roles:?} {ids:?}");
                        distinct.insert(numerator);
                    }
                }
                // The check is not vacuous: the numerators vary.
                assert!(
                    distinct.len() > 2,
                    "{interaction:?} {roles:?}: {distinct:?}"
                );
            }
        }
    }
}

#[test]
fn exact_rank_traces_have_the_merged_rows_top_inputs() {
    for interaction in [Interaction::Concat, Interaction::Dot] {
        let model = model(interaction, None, &PATTERNS[0]);
        let (dense, private, candidates) = request(&model, &mut Lcg(7), 30);
        let trace = model
            .rank_trace(&dense, &private, &candidates, Execution::Exact, 0)
            .unwrap();
        for (public, candidate) in candidates.iter().zip(&trace.candidates) {
            let ids = model.config.merged_ids(&private, public).unwrap();
            let row = model.trace(&dense, &ids, Execution::Exact, 0).unwrap();
            assert_eq!(candidate.top_input, row.top_input);
            assert_eq!(candidate.layers, row.layers[model.bottom.len()..]);
            assert_eq!(trace.bottom, row.layers[..model.bottom.len()]);
        }
    }
}

/// `model` with bootstrap noise large enough that most bootstraps misread.
fn noisy(mut model: QuantizedModel) -> QuantizedModel {
    model.noise = NoiseModel {
        polynomial_size: 2048,
        bootstrap_output_sd: 40.0,
        modulus_switch_sd: 300.0,
        packed_answer_sd: 0.0,
    };
    model
}

#[test]
fn simulated_noise_of_the_private_part_is_shared_by_all_candidates() {
    for interaction in [Interaction::Concat, Interaction::Dot] {
        let model = noisy(model(interaction, None, &PATTERNS[0]));
        let (dense, private, mut candidates) = request(&model, &mut Lcg(3), 12);
        candidates.extend(candidates.clone());
        let exact = model
            .rank_trace(&dense, &private, &candidates, Execution::Exact, 0)
            .unwrap();
        // Columns of the first top layer computed once: the bottom output, and the private
        // embeddings (concat) or the pairs of two private vectors (dot).
        let c = &model.config;
        let (b, d) = (c.bottom_output(), c.embedding_dim);
        let is_private = |v: usize| c.roles.vector_is_private(v);
        let mut once: Vec<usize> = (0..b).collect();
        match interaction {
            Interaction::Concat => once.extend(
                (1..=TABLES.len())
                    .filter(|&v| is_private(v))
                    .flat_map(|v| b + (v - 1) * d..b + v * d),
            ),
            Interaction::Dot => {
                let pairs = (0..=TABLES.len()).flat_map(|i| (0..i).map(move |j| (i, j)));
                once.extend(
                    pairs
                        .enumerate()
                        .filter(|(_, (i, j))| is_private(*i) && is_private(*j))
                        .map(|(p, _)| b + p),
                );
            }
        }
        let shared_values = |seed| {
            let trace = model
                .rank_trace(
                    &dense,
                    &private,
                    &candidates,
                    Execution::Simulate { seed },
                    4,
                )
                .unwrap();
            let first: Vec<i64> = once
                .iter()
                .map(|&c| trace.candidates[0].top_input[c])
                .collect();
            for candidate in &trace.candidates {
                let values: Vec<i64> = once.iter().map(|&c| candidate.top_input[c]).collect();
                assert_eq!(values, first, "{interaction:?}: the private part is shared");
            }
            (first, trace)
        };
        let exact_once: Vec<i64> = once
            .iter()
            .map(|&c| exact.candidates[0].top_input[c])
            .collect();
        let (one, trace) = shared_values(1);
        let (two, _) = shared_values(2);
        assert_ne!(one, exact_once, "{interaction:?}: the noise misreads");
        assert_ne!(one, two, "{interaction:?}: seeds differ");
        // Per-candidate bootstraps draw per candidate: duplicated candidates differ somewhere.
        let half = candidates.len() / 2;
        let logits: Vec<f64> = trace.candidates.iter().map(|c| c.logit_numerator).collect();
        assert_ne!(logits[..half], logits[half..], "{interaction:?}");
        // Reproducible.
        assert_eq!(shared_values(1).1, trace);
    }
}

#[test]
fn dot_pairs_with_a_public_vector_read_rotations_drawn_once() {
    // Every square before the first top layer is read from a bootstrap or a blind rotation
    // done once per request, so duplicated candidates get the same first top layer input, noise
    // included; their top MLPs still draw their own noise.
    let model = noisy(model(Interaction::Dot, None, &PATTERNS[0]));
    let (dense, private, mut candidates) = request(&model, &mut Lcg(21), 12);
    candidates.extend(candidates.clone());
    let half = candidates.len() / 2;
    let exact = model
        .rank_trace(&dense, &private, &candidates, Execution::Exact, 0)
        .unwrap();
    let simulated = |seed| {
        model
            .rank_trace(
                &dense,
                &private,
                &candidates,
                Execution::Simulate { seed },
                0,
            )
            .unwrap()
    };
    let (one, two) = (simulated(1), simulated(2));
    for trace in [&one, &two] {
        for k in 0..half {
            let (a, b) = (&trace.candidates[k], &trace.candidates[k + half]);
            assert_eq!(a.top_input, b.top_input, "candidate {k}");
        }
    }
    // The noise reaches the pairs of a private and a public vector.
    let c = &model.config;
    let is_private = |v: usize| c.roles.vector_is_private(v);
    let pairs = (0..=TABLES.len()).flat_map(|i| (0..i).map(move |j| (i, j)));
    let mixed: Vec<usize> = pairs
        .enumerate()
        .filter(|(_, (i, j))| is_private(*i) != is_private(*j))
        .map(|(p, _)| c.bottom_output() + p)
        .collect();
    let columns = |trace: &dlrm::RankTrace| -> Vec<i64> {
        (trace.candidates.iter())
            .flat_map(|candidate| mixed.iter().map(|&col| candidate.top_input[col]))
            .collect()
    };
    assert_ne!(columns(&one), columns(&exact));
    assert_ne!(columns(&one), columns(&two));
    let logits: Vec<f64> = one.candidates.iter().map(|c| c.logit_numerator).collect();
    assert_ne!(logits[..half], logits[half..]);
}

#[test]
fn without_per_candidate_bootstraps_every_candidate_carries_the_same_noise() {
    // Concat with a one-layer top MLP: per candidate only public embeddings are added to the
    // accumulator computed once, so every candidate's numerator carries the same noise.
    let model = noisy(model(Interaction::Concat, Some(vec![1]), &PATTERNS[0]));
    let (dense, private, mut candidates) = request(&model, &mut Lcg(11), 10);
    candidates.extend(candidates.clone());
    let exact = model.rank(&dense, &private, &candidates).unwrap();
    let errors = |seed| -> Vec<f64> {
        let trace = model
            .rank_trace(
                &dense,
                &private,
                &candidates,
                Execution::Simulate { seed },
                0,
            )
            .unwrap();
        trace
            .candidates
            .iter()
            .zip(&exact)
            .map(|(c, &e)| c.logit_numerator - e as f64)
            .collect()
    };
    let (one, two) = (errors(1), errors(2));
    let same = |errors: &[f64]| errors.iter().all(|&e| (e - errors[0]).abs() < 1e-6);
    assert!(same(&one), "{one:?}");
    assert!(same(&two), "{two:?}");
    assert!(one[0] != 0.0 && one[0] != two[0], "{} {}", one[0], two[0]);
    // Separate single-row simulations draw separately: their errors differ.
    let separate: Vec<f64> = candidates
        .iter()
        .zip(&exact)
        .enumerate()
        .map(|(r, (public, &e))| {
            let ids = model.config.merged_ids(&private, public).unwrap();
            let trace = model
                .trace(&dense, &ids, Execution::Simulate { seed: 1 }, r as u64)
                .unwrap();
            trace.logit_numerator - e as f64
        })
        .collect();
    assert!(!same(&separate), "{separate:?}");
}

#[test]
fn bad_ranked_requests_are_refused() {
    let model = model(Interaction::Dot, None, &PATTERNS[0]);
    let (dense, private, candidates) = request(&model, &mut Lcg(5), 3);
    assert!(model.rank(&dense, &private, &candidates).is_ok());
    let refused = |dense: &[i64], private: &[u32], candidates: &[Vec<u32>], what: &str| {
        let e = model.rank(dense, private, candidates).unwrap_err();
        assert!(e.to_string().contains(what), "{e}");
    };
    refused(&dense, &private, &[], "at least one candidate");
    refused(&dense, &private[..1], &candidates, "private");
    refused(
        &dense,
        &private,
        &[candidates[0].clone(), vec![1]],
        "candidate 1",
    );
    refused(&dense, &private, &[vec![0, 7]], "outside table 2");
    refused(&dense[..2], &private, &candidates, "dense");
    refused(&[1 << 20, 0, 0], &private, &candidates, "signed bits");
}

#[test]
fn roles_are_checked() {
    let mut config = ModelPreset::Uci.config(3, &TABLES);
    config.roles.tables = vec![Role::Public; 3];
    assert!(
        config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("3 table roles")
    );
    config.roles.tables = vec![];
    config.roles.dense = vec![Role::Private, Role::Public, Role::Private];
    let e = config.validate().unwrap_err().to_string();
    assert!(e.contains("dense feature 1 is public"), "{e}");
    let roles: FeatureRoles =
        serde_json::from_str(r#"{"dense": [], "tables": ["private", "public"]}"#).unwrap();
    assert_eq!(roles.tables, vec![Role::Private, Role::Public]);
    assert!(serde_json::from_str::<FeatureRoles>(r#"{"tables": ["secret"]}"#).is_err());
    assert!(serde_json::from_str::<FeatureRoles>(r#"{"items": []}"#).is_err());
}

#[test]
fn formats_change_only_with_a_public_feature() {
    let private = model(Interaction::Concat, None, &PATTERNS[3]);
    let json = serde_json::to_string(&private).unwrap();
    assert!(
        !json.contains("roles"),
        "all-private models are written as before"
    );
    assert_eq!(private.format_version, 2);
    let public = model(Interaction::Concat, None, &PATTERNS[0]);
    assert_eq!(public.format_version, dlrm::QUANTIZED_FORMAT_VERSION);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.json");
    public.save(&path).unwrap();
    assert_eq!(QuantizedModel::load(&path).unwrap(), public);
    // An older version with public roles is refused (an older build would ignore them).
    let mut old = public.clone();
    old.format_version = 3;
    let e = old.validate().unwrap_err().to_string();
    assert!(e.contains("format version 4"), "{e}");
    // `with_roles` writes the oldest version that holds the roles.
    let back = public.with_roles(FeatureRoles::default()).unwrap();
    assert_eq!(back.format_version, 2);
    assert_eq!(
        serde_json::to_string(&back).unwrap(),
        serde_json::to_string(&model(Interaction::Concat, None, &PATTERNS[3])).unwrap()
    );

    // The float model directory: version 1 without public roles, 2 with.
    let mut config = ModelPreset::Uci.config(3, &TABLES);
    for (roles, version) in [(PATTERNS[3], 1), (PATTERNS[1], 2)] {
        config.roles.tables = roles.to_vec();
        let weights = Dlrm::new(&config, 1).unwrap().to_weights().unwrap();
        let dir = tempfile::tempdir().unwrap();
        dlrm::save_model(dir.path(), &weights, None).unwrap();
        let text = std::fs::read_to_string(dir.path().join("model.json")).unwrap();
        assert!(
            text.contains(&format!("\"format_version\": {version}")),
            "{text}"
        );
        assert_eq!(text.contains("roles"), version == 2);
        assert_eq!(dlrm::load_model(dir.path()).unwrap().weights, weights);
        if version == 2 {
            let older = text.replace("\"format_version\": 2", "\"format_version\": 1");
            std::fs::write(dir.path().join("model.json"), older).unwrap();
            assert!(dlrm::load_model(dir.path()).is_err());
        }
    }
}
