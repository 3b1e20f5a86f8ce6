//! Ranked requests on the tiny hand-made models, encrypted: every candidate's decrypted
//! numerator equals the integer reference of the ranked request (`QuantizedModel::rank`, itself
//! `forward` on each merged row), for every role pattern of the two tables, concat and dot, with
//! and without the output sanitiser; the byte formats and the executor refuse what they must.

use std::sync::OnceLock;

use dlrm::{FeatureRoles, QuantizedModel, Role};
use fhe::{ClientKey, KeySeed, ParameterSetId, ServerKey};
use infer::{
    InferError, RankLogits, RankRequest, RankResponse, ServerModel, decrypt_rank_response,
    encrypt_rank_request,
};

const MAX: usize = 64;

/// The client key, a server key with the packing key (packed answers) and one without (one
/// LWE ciphertext per candidate), generated once.
fn keys() -> &'static (ClientKey, ServerKey, ServerKey) {
    static KEYS: OnceLock<(ClientKey, ServerKey, ServerKey)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let client = ClientKey::from_seed(ParameterSetId::default(), KeySeed(31));
        let packing = client.compressed_server_key_with_packing(KeySeed(32));
        let plain = client.compressed_server_key(KeySeed(33)).decompress();
        (client, packing.unwrap().decompress(), plain)
    })
}

fn with_roles(model: QuantizedModel, tables: [Role; 2]) -> QuantizedModel {
    let roles = FeatureRoles {
        dense: vec![],
        tables: tables.to_vec(),
    };
    model.with_roles(roles).unwrap()
}

/// Every id combination of the public tables (the tiny model's tables have 5 and 10 rows),
/// then the first one again (a duplicated candidate).
fn all_candidates(public: &[usize]) -> Vec<Vec<u32>> {
    let rows = [5u32, 10];
    let mut candidates: Vec<Vec<u32>> = vec![vec![]];
    for &t in public {
        candidates = (candidates.iter())
            .flat_map(|prefix| {
                (0..rows[t]).map(move |id| prefix.iter().copied().chain([id]).collect())
            })
            .collect();
    }
    candidates.push(candidates[0].clone());
    candidates
}

/// The two users (dense features on a grid, private ids) whose candidates get the most
/// distinct reference numerators: the tiny model's clamped activations score every candidate
/// alike for most users (and never tell more than two groups apart), which would check
/// nothing.
fn varied_users(model: &QuantizedModel, candidates: &[Vec<u32>]) -> Vec<(Vec<f32>, Vec<u32>)> {
    let c = &model.config;
    let private = c.roles.private_tables(c.tables.len());
    let grid: Vec<f32> = (-8..=8).map(|k| k as f32 * 0.5).collect();
    let mut users: Vec<(usize, Vec<f32>, Vec<u32>)> = Vec::new();
    for &a in &grid {
        for &b in &grid {
            for id in 0..5u32 {
                let private_ids: Vec<u32> = private.iter().map(|&t| id * (t as u32 + 1)).collect();
                let dense = vec![a, b];
                let exact = model
                    .rank(&model.quantize_input(&dense), &private_ids, candidates)
                    .unwrap();
                let mut distinct = exact.clone();
                distinct.sort();
                distinct.dedup();
                users.push((distinct.len(), dense, private_ids));
            }
        }
    }
    users.sort_by_key(|user| std::cmp::Reverse(user.0));
    assert!(users[1].0 >= 2, "no two users tell the candidates apart");
    users.into_iter().take(2).map(|(_, d, p)| (d, p)).collect()
}

/// Runs ranked requests of `model` encrypted (through the byte formats) and checks every
/// candidate against the reference: the first user's answer comes back packed, the second's
/// one ciphertext per candidate (its server key has no packing key).
fn check_ranked(model: &QuantizedModel) {
    let server = ServerModel::new(model, ParameterSetId::default()).unwrap();
    let interface = server.interface();
    let (client_key, packing_key, plain_key) = keys();
    let c = &model.config;
    let candidates = all_candidates(&c.roles.public_tables(c.tables.len()));
    let users = varied_users(model, &candidates);
    for ((dense, private_ids), server_key) in users.into_iter().zip([packing_key, plain_key]) {
        let request = encrypt_rank_request(
            client_key,
            interface,
            &dense,
            &private_ids,
            &candidates,
            MAX,
        )
        .unwrap();
        let bytes = request.to_bytes().unwrap();
        let (answer, timings) = server
            .rank_bytes_until(server_key, &bytes, MAX, &|| false)
            .unwrap();
        assert!(timings.total() > std::time::Duration::ZERO);
        let response = RankResponse::from_bytes(&answer, interface, candidates.len()).unwrap();
        match &response.logits {
            RankLogits::Packed(_) => assert!(server_key.has_packing_key()),
            RankLogits::Separate(_) => assert!(!server_key.has_packing_key()),
        }
        let numerators = decrypt_rank_response(client_key, interface, &response).unwrap();
        let input = model.quantize_input(&dense);
        let exact = model.rank(&input, &private_ids, &candidates).unwrap();
        assert_eq!(numerators, exact, "roles {:?}", c.roles.tables);
        for (k, candidate) in candidates.iter().enumerate() {
            let merged = c.merged_ids(&private_ids, candidate).unwrap();
            assert_eq!(numerators[k], model.forward(&input, &merged).unwrap());
        }
    }
}

#[test]
fn every_candidate_matches_the_reference_for_every_role_pattern() {
    use Role::{Private, Public};
    for tables in [[Private, Public], [Public, Private], [Public, Public]] {
        check_ranked(&with_roles(infer::testing::tiny_model(), tables));
    }
}

#[test]
fn dot_models_rank_every_candidate_as_the_reference() {
    // Pairs of a private and a public vector read the square table rotated by each private
    // entry at the candidate's public entry; the top MLP runs per candidate.
    use Role::{Private, Public};
    for tables in [[Private, Public], [Public, Private], [Public, Public]] {
        check_ranked(&with_roles(infer::testing::tiny_dot_model(), tables));
    }
    // With the tiny sanitiser (the dot model's numerators span the concat model's).
    let mut sanitised = infer::testing::tiny_dot_model();
    let concat = infer::testing::tiny_sanitised_model();
    (sanitised.output_acc_bits, sanitised.output_sanitiser) =
        (concat.output_acc_bits, concat.output_sanitiser);
    check_ranked(&with_roles(sanitised, [Private, Public]));
}

#[test]
fn a_sanitised_output_is_bootstrapped_per_candidate() {
    let model = with_roles(
        infer::testing::tiny_sanitised_model(),
        [Role::Private, Role::Public],
    );
    check_ranked(&model);
}

#[test]
fn candidates_are_checked_before_any_work() {
    let model = with_roles(infer::testing::tiny_model(), [Role::Private, Role::Public]);
    let server = ServerModel::new(&model, ParameterSetId::default()).unwrap();
    let interface = server.interface();
    let (client_key, _, _) = keys();
    let encrypt = |candidates: &[Vec<u32>], max: usize| {
        encrypt_rank_request(client_key, interface, &[0.5, 1.0], &[3], candidates, max)
    };
    for (candidates, max, reason) in [
        (vec![], MAX, "at least one candidate"),
        (vec![vec![1]; 5], 4, "1 to 4"),
        (vec![vec![10]], MAX, "10 rows"),
        (vec![vec![1, 2]], MAX, "1 public tables"),
    ] {
        let Err(error) = encrypt(&candidates, max) else {
            panic!("{candidates:?} accepted");
        };
        assert!(error.to_string().contains(reason), "{error}");
    }
    let Err(error) =
        encrypt_rank_request(client_key, interface, &[0.5, 1.0], &[5], &[vec![1]], MAX)
    else {
        panic!("a private id outside its table was accepted");
    };
    assert!(error.to_string().contains("5 rows"), "{error}");

    // The reader applies the same limits to bytes from the network.
    let bytes = encrypt(&vec![vec![1]; 5], MAX).unwrap().to_bytes().unwrap();
    let Err(error) = RankRequest::from_bytes(&bytes, interface, 4) else {
        panic!("5 candidates read under a limit of 4");
    };
    assert!(error.to_string().contains("at most 4"), "{error}");
    assert!(RankRequest::from_bytes(&bytes, interface, 5).is_ok());
    let mut out_of_range = bytes.clone();
    let last = out_of_range.len() - 4;
    out_of_range[last..].copy_from_slice(&10u32.to_le_bytes());
    let error = RankRequest::from_bytes(&out_of_range, interface, MAX)
        .err()
        .expect("id 10 of a 10-row table read");
    assert!(error.to_string().contains("10 rows"), "{error}");
    for cut in [1, 3, 4, bytes.len() / 2] {
        assert!(RankRequest::from_bytes(&bytes[..bytes.len() - cut], interface, MAX).is_err());
    }
    // A single-row request is not a ranked one.
    let single = infer::encrypt_request(client_key, interface, &[0.5, 1.0], &[3, 1])
        .unwrap()
        .to_bytes()
        .unwrap();
    assert!(RankRequest::from_bytes(&single, interface, MAX).is_err());
}

#[test]
fn models_that_do_not_rank_say_why() {
    let (client_key, _, _) = keys();
    // No public table: the interface takes no ranked request.
    let model = infer::testing::tiny_model();
    let server = ServerModel::new(&model, ParameterSetId::default()).unwrap();
    assert!(!server.interface().ranks());
    let Err(error) = encrypt_rank_request(
        client_key,
        server.interface(),
        &[0.5, 1.0],
        &[3, 1],
        &[],
        MAX,
    ) else {
        panic!("a ranked request for a model without public tables");
    };
    assert!(error.to_string().contains("no public table"), "{error}");
}

#[test]
fn a_caller_that_left_stops_the_ranked_request() {
    let model = with_roles(infer::testing::tiny_model(), [Role::Private, Role::Public]);
    let server = ServerModel::new(&model, ParameterSetId::default()).unwrap();
    let (client_key, server_key, _) = keys();
    let bytes = encrypt_rank_request(
        client_key,
        server.interface(),
        &[0.5, 1.0],
        &[3],
        &[vec![1], vec![2]],
        MAX,
    )
    .unwrap()
    .to_bytes()
    .unwrap();
    let Err(InferError::Abandoned { stage }) =
        server.rank_bytes_until(server_key, &bytes, MAX, &|| true)
    else {
        panic!("an abandoned ranked request ran");
    };
    assert_eq!(stage, "bottom");
}

/// `simulate` adds to each ranked logit the noise a full packed ciphertext carries: the figure
/// `dlrm` keeps (it does not depend on `fhe`) is the one `fhe` derives from the key.
#[test]
fn simulate_adds_the_packing_noise_fhe_predicts() {
    let params = ParameterSetId::default().parameters();
    let packing = params.packing().unwrap();
    let units =
        packing.added_noise_sd(packing.scores_per_glwe()) * 2.0 * params.polynomial_size().0 as f64;
    let kept = dlrm::NoiseModel::TFHE_2_2.packed_answer_sd;
    assert!((units / kept - 1.0).abs() < 0.01, "{units} against {kept}");
}
