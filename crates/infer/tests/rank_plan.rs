//! Ranked requests on the tiny models: the bootstrap counts against a hand count and against
//! the single-row plan, the integer reference against `forward` on merged rows, and the model
//! interface's roles (absent and version 1 when all private, version 2 with a public table).

use dlrm::{FeatureRoles, QuantizedModel, Role};
use fhe::ParameterSetId;
use infer::testing::{tiny_dot_model, tiny_model, tiny_sanitised_model};
use infer::{ModelInterface, RankPlan, ServerModel};

/// Table 0 (the full table of 5 rows) private, table 1 (the digit table) public.
fn ranked(model: QuantizedModel) -> QuantizedModel {
    model
        .with_roles(FeatureRoles {
            dense: vec![],
            tables: vec![Role::Private, Role::Public],
        })
        .unwrap()
}

fn single_row_bootstraps(model: &QuantizedModel) -> usize {
    ServerModel::new(model, ParameterSetId::default())
        .unwrap()
        .plan()
        .bootstraps()
}

#[test]
fn bootstrap_counts_match_a_hand_count() {
    // Concat: bottom 3 + 2 activations and the first top layer's 3 blind rotations once
    // (every candidate reads them at its own offset); nothing per candidate.
    let plan = RankPlan::for_model(&ranked(tiny_model()), 10).unwrap();
    assert_eq!((plan.once, plan.per_candidate, plan.single_row), (8, 0, 8));
    assert_eq!(plan.total(), 8);
    // The sanitised variant: the output's bootstrap per candidate.
    let plan = RankPlan::for_model(&ranked(tiny_sanitised_model()), 4).unwrap();
    assert_eq!((plan.once, plan.per_candidate, plan.single_row), (8, 1, 9));
    // A one-layer top MLP: nothing to read once or per candidate without a sanitiser; with
    // one, its blind rotation once.
    let mut one_layer = ranked(tiny_model()).config;
    one_layer.top = vec![1];
    let plan = RankPlan::for_config(&one_layer, false, 3).unwrap();
    assert_eq!((plan.once, plan.per_candidate), (5, 0));
    let plan = RankPlan::for_config(&one_layer, true, 3).unwrap();
    assert_eq!((plan.once, plan.per_candidate), (6, 0));
    // Dot, d = 2, vectors v0 (bottom, squared), v1 (table 0: returns its norm, private),
    // v2 (table 1: squared, public). Once: bottom 5, the bottom's 2 copies, one rotation of
    // the square table per private entry (v0 and v1: 4; read at offset 0 for v0's entry
    // squares and at v2's entries for pairs (2, 0) and (2, 1)), pair (1, 0)'s 2 squares = 13.
    // Per candidate: the top layer's 3 activations; v2's entries are squared in the clear.
    // Single row: bottom 5 + copies 2 + 3 pairs x 2 + 2 squared vectors x 2 + top 3 = 20.
    let plan = RankPlan::for_model(&ranked(tiny_dot_model()), 100).unwrap();
    assert_eq!(
        (plan.once, plan.per_candidate, plan.single_row),
        (13, 3, 20)
    );
    assert_eq!(plan.total(), 13 + 300);
    // Table 0 public, table 1 private: rotations of v0 and v2 (4), pair (2, 0) (2).
    let swapped = tiny_dot_model()
        .with_roles(FeatureRoles {
            dense: vec![],
            tables: vec![Role::Public, Role::Private],
        })
        .unwrap();
    let plan = RankPlan::for_model(&swapped, 1).unwrap();
    assert_eq!((plan.once, plan.per_candidate), (13, 3));
    // Both tables public: rotations of v0 only, no private pair.
    let public = tiny_dot_model()
        .with_roles(FeatureRoles {
            dense: vec![],
            tables: vec![Role::Public, Role::Public],
        })
        .unwrap();
    let plan = RankPlan::for_model(&public, 1).unwrap();
    assert_eq!((plan.once, plan.per_candidate), (5 + 2 + 2, 3));
    for model in [tiny_model(), tiny_dot_model(), tiny_sanitised_model()] {
        let plan = RankPlan::for_model(&model, 1).unwrap();
        assert_eq!(plan.single_row, single_row_bootstraps(&model));
        // All private, one candidate: exactly today's request.
        assert_eq!(plan.total(), plan.single_row);
        let ranked_plan = RankPlan::for_model(&ranked(model.clone()), 1).unwrap();
        assert_eq!(ranked_plan.single_row, single_row_bootstraps(&model));
    }
    assert!(RankPlan::for_model(&tiny_model(), 0).is_err());
}

#[test]
fn the_ranked_reference_equals_forward_on_merged_rows() {
    for model in [tiny_model(), tiny_dot_model(), tiny_sanitised_model()] {
        let model = ranked(model);
        let candidates: Vec<Vec<u32>> = (0..10).map(|id| vec![id]).collect();
        for (dense, private) in [([3, -2], 0), ([-1, 3], 3), ([-4, 3], 4)] {
            let ranked = model.rank(&dense, &[private], &candidates).unwrap();
            for (public, &numerator) in candidates.iter().zip(&ranked) {
                let row = model.forward(&dense, &[private, public[0]]).unwrap();
                assert_eq!(numerator, row);
            }
        }
        assert!(model.rank(&[0, 0], &[0], &[vec![10]]).is_err());
    }
}

#[test]
fn the_interface_carries_roles_only_when_some_are_public() {
    let plain = ModelInterface::for_model(&tiny_model(), ParameterSetId::default()).unwrap();
    let json = serde_json::to_string(&plain).unwrap();
    assert_eq!(plain.format_version, 1);
    assert!(!json.contains("roles"), "{json}");
    let model = ranked(tiny_model());
    let interface = ModelInterface::for_model(&model, ParameterSetId::default()).unwrap();
    assert_eq!(interface.format_version, infer::INTERFACE_FORMAT_VERSION);
    assert_eq!(interface.roles.table_role(1), Role::Public);
    assert_ne!(interface.model_id, plain.model_id);
    let json = serde_json::to_vec(&interface).unwrap();
    assert_eq!(ModelInterface::from_json(&json).unwrap(), interface);
    // Roles in a version-1 description, or roles of the wrong length, are refused.
    let mut old = interface.clone();
    old.format_version = 1;
    assert!(ModelInterface::from_json(&serde_json::to_vec(&old).unwrap()).is_err());
    let mut wrong = interface;
    wrong.roles.tables.push(Role::Public);
    assert!(ModelInterface::from_json(&serde_json::to_vec(&wrong).unwrap()).is_err());
}
