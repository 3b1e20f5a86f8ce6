//! Ranked requests over HTTP (`POST /v1/models/{name}/rank`) on the tiny models: the decrypted
//! numerators equal the integer reference of the ranked request; the candidate count and the
//! body are bounded; malformed bodies, models that take no ranked request, unknown models and
//! keys, other tenants' keys and departing clients answer their stable codes.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use client::{Client, ClientError, ServiceClient};
use common::{call, error_code, eventually, keys, metric, stalled_call};
use dlrm::{FeatureRoles, QuantizedModel, Role};
use fhe::ParameterSetId;
use infer::{ModelInterface, RankRequest, ServerModel};
use serve::{Access, Limits, MAX_CANDIDATES, NamedModel, Quotas, RunningService, Tenants};

/// The ranked model's name in the service.
const RANKED: &str = "tiny-rank";

fn with_public_second_table(model: QuantizedModel) -> QuantizedModel {
    let roles = FeatureRoles {
        dense: vec![],
        tables: vec![Role::Private, Role::Public],
    };
    model.with_roles(roles).unwrap()
}

/// The tiny model with table 0 private (the user's) and table 1 public (the candidates').
fn ranked_model() -> QuantizedModel {
    with_public_second_table(infer::testing::tiny_model())
}

fn named(name: &str, model: &QuantizedModel) -> NamedModel {
    NamedModel {
        name: name.into(),
        model: ServerModel::new(model, ParameterSetId::default()).unwrap(),
    }
}

/// The ranked model, the all-private tiny model and the dot model with a public table.
fn start(store: &Path, access: Access, limits: Limits) -> serve::Result<RunningService> {
    let models = vec![
        named(RANKED, &ranked_model()),
        named("tiny", &infer::testing::tiny_model()),
        named(
            "tiny-dot-rank",
            &with_public_second_table(infer::testing::tiny_dot_model()),
        ),
    ];
    common::start_models(store, access, limits, models)
}

fn open() -> Access {
    Access::Open {
        insecure_remote: false,
    }
}

fn http(service: &RunningService) -> ServiceClient {
    ServiceClient::new(&service.url(), Duration::from_secs(300)).unwrap()
}

/// An open service with the file's key registered; returns the key's id.
fn start_with_key(store: &Path, limits: Limits) -> (RunningService, String) {
    let service = start(store, open(), limits).unwrap();
    let key_id = http(&service).register_key(&keys().server).unwrap().key_id;
    (service, key_id)
}

fn ranked_client(service: &RunningService) -> Client {
    let interface = http(service).model_interface(RANKED).unwrap();
    Client::new(keys().client.clone(), interface).unwrap()
}

/// Every id of the public table (10 rows), then the first again (a duplicated candidate).
fn all_candidates() -> Vec<Vec<u32>> {
    let mut candidates: Vec<Vec<u32>> = (0..10).map(|id| vec![id]).collect();
    candidates.push(vec![0]);
    candidates
}

/// `n` (at least 2) of [`all_candidates`], two of which some user's reference tells apart.
fn varied_candidates(n: usize) -> Vec<Vec<u32>> {
    let model = ranked_model();
    let all = all_candidates();
    let (dense, private_ids) = varied_user(&model, &all);
    let exact = model
        .rank(&model.quantize_input(&dense), &private_ids, &all)
        .unwrap();
    let other = (1..all.len()).find(|&k| exact[k] != exact[0]).unwrap();
    let rest = (1..all.len()).filter(|&k| k != other);
    [0, other]
        .into_iter()
        .chain(rest)
        .take(n)
        .map(|k| all[k].clone())
        .collect()
}

/// The user (dense features on a grid, a private id) whose candidates get the most distinct
/// reference numerators: the tiny model scores every candidate alike for most users, which
/// would check nothing.
fn varied_user(model: &QuantizedModel, candidates: &[Vec<u32>]) -> (Vec<f32>, Vec<u32>) {
    let grid: Vec<f32> = (-8..=8).map(|k| k as f32 * 0.5).collect();
    let mut best: Option<(usize, Vec<f32>, Vec<u32>)> = None;
    for &a in &grid {
        for &b in &grid {
            for id in 0..5u32 {
                let dense = vec![a, b];
                let exact = model
                    .rank(&model.quantize_input(&dense), &[id], candidates)
                    .unwrap();
                let mut distinct = exact;
                distinct.sort();
                distinct.dedup();
                if best.as_ref().is_none_or(|b| distinct.len() > b.0) {
                    best = Some((distinct.len(), dense, vec![id]));
                }
            }
        }
    }
    let (distinct, dense, private_ids) = best.unwrap();
    assert!(distinct >= 2, "no user tells the candidates apart");
    (dense, private_ids)
}

/// Sends `candidates` for the varied user through the service and checks every decrypted
/// numerator against the integer reference (exact on the tiny model).
fn check_ranked(service: &RunningService, key_id: &str, candidates: &[Vec<u32>]) {
    let model = ranked_model();
    let client = ranked_client(service);
    let (dense, private_ids) = varied_user(&model, candidates);
    let request = client
        .encrypt_rank(&dense, &private_ids, candidates)
        .unwrap();
    let answer = http(service)
        .rank(RANKED, key_id, &request.to_bytes().unwrap())
        .unwrap();
    assert!(answer.stages.unwrap().top > Duration::ZERO);
    let predictions = client
        .decrypt_rank_bytes(&answer.bytes, candidates.len())
        .unwrap();
    let numerators: Vec<i64> = predictions.iter().map(|p| p.logit_numerator).collect();
    let input = model.quantize_input(&dense);
    let reference = model.rank(&input, &private_ids, candidates).unwrap();
    assert_eq!(numerators, reference);
    for (k, candidate) in candidates.iter().enumerate() {
        let merged = model.config.merged_ids(&private_ids, candidate).unwrap();
        assert_eq!(numerators[k], model.forward(&input, &merged).unwrap());
    }
    // The candidates' order is the reference's (ties in request order).
    let mut order: Vec<usize> = (0..reference.len()).collect();
    order.sort_by_key(|&k| std::cmp::Reverse(reference[k]));
    assert_eq!(client::ranking(&predictions), order);
}

/// Status and error code of a raw ranked call to `model`.
fn rank_call(addr: SocketAddr, model: &str, key_id: &str, body: &[u8]) -> (u16, String) {
    let path = format!("/v1/models/{model}/rank");
    let (status, body) = call(addr, "POST", &path, &[("x-key-id", key_id)], body);
    (status, error_code(&body))
}

fn expect(answer: (u16, String), status: u16, code: &str) {
    assert_eq!((answer.0, answer.1.as_str()), (status, code));
}

fn description(addr: SocketAddr, model: &str) -> serde_json::Value {
    let (status, body) = call(addr, "GET", &format!("/v1/models/{model}"), &[], b"");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn ranked_answers_over_http_match_the_reference() {
    let store = tempfile::tempdir().unwrap();
    let (service, key_id) = start_with_key(store.path(), Limits::default());
    let addr = service.addr();

    // The model's description says how to build ranked requests and how large they may be.
    let rank = &description(addr, RANKED)["rank"];
    let interface = ModelInterface::for_model(&ranked_model(), ParameterSetId::default()).unwrap();
    assert_eq!(rank["max_candidates"], 1_000);
    assert_eq!(rank["public_tables"], serde_json::json!([1]));
    assert_eq!(
        rank["max_request_bytes"],
        RankRequest::max_bytes(&interface, 1_000).unwrap()
    );
    let (_, list) = call(addr, "GET", "/v1/models", &[], b"");
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let ranks: Vec<(&str, bool)> = (list.as_array().unwrap().iter())
        .map(|m| (m["name"].as_str().unwrap(), m["ranks"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        ranks,
        [("tiny", false), ("tiny-dot-rank", true), (RANKED, true)]
    );

    let candidates = all_candidates();
    check_ranked(&service, &key_id, &candidates);

    let (_, metrics) = call(addr, "GET", "/metrics", &[], b"");
    for series in [
        "dlrmhe_http_requests_total{endpoint=\"POST /v1/models/{name}/rank\",status=\"200\"} 1",
        "dlrmhe_ranked_candidates_total{model=\"tiny-rank\"} 11",
        "dlrmhe_rank_stage_duration_seconds_count{model=\"tiny-rank\",stage=\"top\"} 1",
    ] {
        assert!(metrics.contains(series), "no `{series}` in {metrics}");
    }
    // Ranked calls are kept out of the single rows' stage series.
    assert!(!metrics.contains("dlrmhe_stage_duration_seconds_count{model=\"tiny-rank\""));
    assert_eq!(service.metrics().ranked_candidates(RANKED), 11);
    service.shutdown().unwrap();
}

#[test]
fn the_number_of_candidates_and_the_body_are_bounded() {
    let store = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_candidates: 4,
        ..Limits::default()
    };
    let (service, key_id) = start_with_key(store.path(), limits);
    let addr = service.addr();
    let limit = description(addr, RANKED)["rank"]["max_request_bytes"]
        .as_u64()
        .unwrap() as usize;
    let interface = ModelInterface::for_model(&ranked_model(), ParameterSetId::default()).unwrap();
    assert_eq!(limit, RankRequest::max_bytes(&interface, 4).unwrap());

    // As many candidates as the limit: answered.
    check_ranked(&service, &key_id, &varied_candidates(4));

    // One more: refused with its own code, before any FHE work, although the body fits.
    let client = ranked_client(&service);
    let five: Vec<Vec<u32>> = (0..5).map(|id| vec![id]).collect();
    let bytes = client
        .encrypt_rank(&[0.5, 1.0], &[3], &five)
        .unwrap()
        .to_bytes()
        .unwrap();
    assert!(bytes.len() <= limit, "{} > {limit}", bytes.len());
    let Err(ClientError::Service { status, code, .. }) =
        http(&service).rank(RANKED, &key_id, &bytes)
    else {
        panic!("5 candidates answered under a limit of 4");
    };
    assert_eq!((status, code.as_str()), (413, "too_many_candidates"));

    // Far more: the body is over the limit and is not read.
    let many: Vec<Vec<u32>> = (0..20_000).map(|k| vec![k % 10]).collect();
    let bytes = client
        .encrypt_rank(&[0.5, 1.0], &[3], &many)
        .unwrap()
        .to_bytes()
        .unwrap();
    assert!(bytes.len() > limit);
    expect(
        rank_call(addr, RANKED, &key_id, &bytes),
        413,
        "body_too_large",
    );
    expect(
        rank_call(addr, RANKED, &key_id, &vec![0; limit + 1]),
        413,
        "body_too_large",
    );
    // Nothing ran but the answered call.
    assert_eq!(service.metrics().ranked_candidates(RANKED), 4);
    service.shutdown().unwrap();

    // The limit itself is bounded: at least 1, at most MAX_CANDIDATES.
    for (max_candidates, starts) in [
        (0, false),
        (MAX_CANDIDATES, true),
        (MAX_CANDIDATES + 1, false),
    ] {
        let store = tempfile::tempdir().unwrap();
        let limits = Limits {
            max_candidates,
            ..Limits::default()
        };
        let started = start(store.path(), open(), limits);
        assert_eq!(started.is_ok(), starts, "max_candidates {max_candidates}");
        if let Err(error) = started {
            assert!(error.to_string().contains("max_candidates"), "{error}");
        }
    }
}

#[test]
fn malformed_ranked_requests_answer_bad_request() {
    let store = tempfile::tempdir().unwrap();
    let (service, key_id) = start_with_key(store.path(), Limits::default());
    let addr = service.addr();
    let client = ranked_client(&service);
    let candidates = [vec![1], vec![2]];
    let request = client.encrypt_rank(&[0.5, 1.0], &[3], &candidates).unwrap();
    let good = request.to_bytes().unwrap();
    let bad_request =
        |body: &[u8]| expect(rank_call(addr, RANKED, &key_id, body), 400, "bad_request");

    // No candidate.
    let mut empty = client.encrypt_rank(&[0.5, 1.0], &[3], &candidates).unwrap();
    empty.candidates.clear();
    bad_request(&empty.to_bytes().unwrap());
    // Truncated, cut inside the ids, and not a request at all.
    for cut in [1, 3, good.len() / 2] {
        bad_request(&good[..good.len() - cut]);
    }
    bad_request(b"");
    bad_request(&[7; 4096]);
    // An id outside its table (the public table has 10 rows).
    let mut out_of_range = good.clone();
    let last = out_of_range.len() - 4;
    out_of_range[last..].copy_from_slice(&10u32.to_le_bytes());
    bad_request(&out_of_range);
    // A single-row request sent to /rank, and a ranked request sent to /infer.
    let single = infer::encrypt_request(&keys().client, client.interface(), &[0.5, 1.0], &[3, 1])
        .unwrap()
        .to_bytes()
        .unwrap();
    bad_request(&single);
    let (status, body) = call(
        addr,
        "POST",
        &format!("/v1/models/{RANKED}/infer"),
        &[("x-key-id", &key_id)],
        &good,
    );
    assert_eq!((status, error_code(&body).as_str()), (400, "bad_request"));
    // A ranked request encrypted for another model with the same shapes.
    let mut other = ranked_model();
    other.top.last_mut().unwrap().bias[0] += 1;
    let other = ModelInterface::for_model(&other, ParameterSetId::default()).unwrap();
    let foreign =
        infer::encrypt_rank_request(&keys().client, &other, &[0.5, 1.0], &[3], &candidates, 2)
            .unwrap()
            .to_bytes()
            .unwrap();
    expect(
        rank_call(addr, RANKED, &key_id, &foreign),
        400,
        "wrong_model",
    );
    assert_eq!(service.metrics().ranked_candidates(RANKED), 0);
    service.shutdown().unwrap();
}

#[test]
fn models_that_do_not_rank_and_unknown_names_answer_their_codes() {
    let store = tempfile::tempdir().unwrap();
    let (service, key_id) = start_with_key(store.path(), Limits::default());
    let addr = service.addr();
    let body = ranked_client(&service)
        .encrypt_rank(&[0.5, 1.0], &[3], &[vec![1]])
        .unwrap()
        .to_bytes()
        .unwrap();

    // Every feature private: nothing to rank, said before the body is read.
    expect(
        rank_call(addr, "tiny", &key_id, &body),
        400,
        "no_public_tables",
    );
    assert!(description(addr, "tiny")["rank"].is_null());
    // The dot model ranks too: its description says how.
    assert!(!description(addr, "tiny-dot-rank")["rank"].is_null());

    expect(
        rank_call(addr, "nope", &key_id, &body),
        404,
        "unknown_model",
    );
    let unknown = "0123456789abcdef0123456789abcdef";
    expect(rank_call(addr, RANKED, unknown, &body), 404, "unknown_key");
    expect(
        rank_call(addr, RANKED, "not-a-key", &body),
        400,
        "bad_key_id",
    );
    let (status, answer) = call(addr, "POST", "/v1/models/tiny-rank/rank", &[], &body);
    assert_eq!(
        (status, error_code(&answer).as_str()),
        (400, "missing_key_id")
    );
    assert_eq!(service.metrics().ranked_candidates(RANKED), 0);
    service.shutdown().unwrap();
}

#[test]
fn tenants_rank_only_with_their_own_keys() {
    let store = tempfile::tempdir().unwrap();
    let mut tenants = Tenants::default();
    let acme = tenants.add("acme", Quotas::default()).unwrap();
    let globex = tenants.add("globex", Quotas::default()).unwrap();
    let (acme, globex) = (acme.reveal().to_owned(), globex.reveal().to_owned());
    let service = start(store.path(), Access::Tenants(tenants), Limits::default()).unwrap();
    let addr = service.addr();
    let acme_http = http(&service).with_token(&acme);
    let key_id = acme_http.register_key(&keys().server).unwrap().key_id;
    let interface = acme_http.model_interface(RANKED).unwrap();
    let client = Client::new(keys().client.clone(), interface).unwrap();
    let candidates = [vec![1], vec![2]];
    let body = client
        .encrypt_rank(&[0.5, 1.0], &[3], &candidates)
        .unwrap()
        .to_bytes()
        .unwrap();
    let path = format!("/v1/models/{RANKED}/rank");
    let as_tenant = |token: Option<&str>| {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("x-key-id", key_id.as_str())];
        if let Some(bearer) = &bearer {
            headers.push(("authorization", bearer));
        }
        let (status, body) = call(addr, "POST", &path, &headers, &body);
        (status, error_code(&body))
    };
    expect(as_tenant(None), 401, "unauthenticated");
    // Another tenant's key answers as a key that does not exist.
    expect(as_tenant(Some(&globex)), 404, "unknown_key");
    let answer = acme_http.rank(RANKED, &key_id, &body).unwrap();
    let predictions = client
        .decrypt_rank_bytes(&answer.bytes, candidates.len())
        .unwrap();
    let model = ranked_model();
    let reference = model
        .rank(&model.quantize_input(&[0.5, 1.0]), &[3], &candidates)
        .unwrap();
    let numerators: Vec<i64> = predictions.iter().map(|p| p.logit_numerator).collect();
    assert_eq!(numerators, reference);
    service.shutdown().unwrap();
}

#[test]
fn the_work_of_a_ranked_client_that_leaves_stops() {
    let store = tempfile::tempdir().unwrap();
    let (service, key_id) = start_with_key(store.path(), Limits::default());
    let addr = service.addr();
    // 600 candidates: one batch of 1,800 bootstraps in the first top layer, still running
    // when the client leaves; the next layer boundary sees it gone.
    let candidates: Vec<Vec<u32>> = (0..600).map(|k| vec![k % 10]).collect();
    let body = ranked_client(&service)
        .encrypt_rank(&[0.5, 1.0], &[3], &candidates)
        .unwrap()
        .to_bytes()
        .unwrap();
    let path = format!("/v1/models/{RANKED}/rank");
    let leaving = stalled_call(addr, &path, &key_id, body.len(), &body);
    assert!(
        eventually(Duration::from_secs(60), || metric(
            addr,
            "dlrmhe_inference_running"
        ) == 1.0),
        "the ranked request never started"
    );
    drop(leaving);
    assert!(
        eventually(Duration::from_secs(300), || service
            .metrics()
            .abandoned_calls()
            == 1),
        "the ranked request of a client that left was not stopped"
    );
    assert!(eventually(Duration::from_secs(60), || metric(
        addr,
        "dlrmhe_inference_running"
    ) == 0.0));
    // It scored nothing, and the service goes on answering.
    assert_eq!(service.metrics().ranked_candidates(RANKED), 0);
    check_ranked(&service, &key_id, &varied_candidates(3));
    assert_eq!(service.metrics().abandoned_calls(), 1);
    service.shutdown().unwrap();
}
