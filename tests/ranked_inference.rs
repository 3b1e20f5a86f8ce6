//! Ranked requests of a trained model, encrypted: the UCI model served with half its tables
//! public ranks every test row's public features (the catalogue) for several users, and each
//! candidate's decrypted numerator is checked against the integer reference of the ranked
//! request (`QuantizedModel::rank`) and what `simulate` predicts for it: how far bootstrap
//! errors move a candidate, how often they keep its class, and that no two candidates farther
//! apart than a bootstrap error change order.

#[allow(dead_code)] // the serve helpers are for other test binaries
mod common;

use common::uci::Uci;
use dlrm::{Execution, FeatureRoles, Role};
use fhe::{ClientKey, KeySeed, ParameterSetId};
use infer::{RankResponse, ServerModel, decrypt_rank_response, encrypt_rank_request};

#[test]
fn uci_catalogue_ranked_encrypted_matches_the_reference() {
    let Some(uci) = Uci::train() else {
        return;
    };
    let tables = uci.model.config.tables.len();
    let roles = FeatureRoles {
        dense: vec![],
        tables: (0..tables)
            .map(|t| match t < tables / 2 {
                true => Role::Private,
                false => Role::Public,
            })
            .collect(),
    };
    let model = uci.model.clone().with_roles(roles).unwrap();
    let server = ServerModel::new(&model, ParameterSetId::default()).unwrap();
    let interface = server.interface();
    let client_key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(41));
    let server_key = client_key.compressed_server_key(KeySeed(42)).decompress();
    let c = &model.config;
    let (private, public) = (
        c.roles.private_tables(tables),
        c.roles.public_tables(tables),
    );
    let test = &uci.test;
    let candidates: Vec<Vec<u32>> = (0..test.rows())
        .map(|r| public.iter().map(|&t| test.categorical_row(r)[t]).collect())
        .collect();
    let passes = 64;
    let (mut kept, mut predicted_kept, mut kept_variance, mut count) = (0.0, 0.0, 0.0, 0.0);
    let (mut outside, mut misordered_apart, mut distinct) = (0, 0, 0);
    for user in [0, 7, 23] {
        let dense = test.dense_row(user);
        let private_ids: Vec<u32> = private
            .iter()
            .map(|&t| test.categorical_row(user)[t])
            .collect();
        let request = encrypt_rank_request(
            &client_key,
            interface,
            dense,
            &private_ids,
            &candidates,
            candidates.len(),
        )
        .unwrap();
        let (answer, _) = server
            .rank_bytes_until(
                &server_key,
                &request.to_bytes().unwrap(),
                candidates.len(),
                &|| false,
            )
            .unwrap();
        let response = RankResponse::from_bytes(&answer, interface, candidates.len()).unwrap();
        let encrypted = decrypt_rank_response(&client_key, interface, &response).unwrap();

        let input = model.quantize_input(dense);
        let exact = model.rank(&input, &private_ids, &candidates).unwrap();
        let mut sorted = exact.clone();
        sorted.sort();
        sorted.dedup();
        distinct += sorted.len();
        // Per candidate: the largest deviation and the share of passes keeping the class.
        let mut reach = vec![6.0 * model.output_noise_sd(); candidates.len()];
        let mut kept_by = vec![0.0; candidates.len()];
        for seed in 0..passes {
            let trace = model
                .rank_trace(
                    &input,
                    &private_ids,
                    &candidates,
                    Execution::Simulate { seed },
                    0,
                )
                .unwrap();
            for (k, candidate) in trace.candidates.iter().enumerate() {
                let error = candidate.logit_numerator - exact[k] as f64;
                reach[k] = reach[k].max(error.abs());
                kept_by[k] +=
                    f64::from((candidate.logit_numerator > 0.0) == (exact[k] > 0)) / passes as f64;
            }
        }
        for k in 0..candidates.len() {
            outside += usize::from((encrypted[k] - exact[k]).abs() as f64 > 2.0 * reach[k]);
            kept += f64::from((encrypted[k] > 0) == (exact[k] > 0));
            predicted_kept += kept_by[k];
            kept_variance += kept_by[k] * (1.0 - kept_by[k]);
            count += 1.0;
            for j in 0..k {
                let apart = (exact[k] - exact[j]).abs() as f64 > reach[k] + reach[j];
                let order = exact[k].cmp(&exact[j]);
                if apart && encrypted[k].cmp(&encrypted[j]) != order {
                    misordered_apart += 1;
                }
            }
        }
    }
    eprintln!(
        "{count} candidates: {distinct} distinct reference numerators, class kept {kept} (simulate predicts {predicted_kept:.1}), {outside} outside twice simulate's reach, {misordered_apart} pairs farther apart than a bootstrap error misordered"
    );
    // The catalogue tells candidates apart (a constant score would check nothing).
    assert!(
        distinct as f64 >= 0.25 * count,
        "{distinct} distinct scores"
    );
    assert_eq!(outside, 0);
    assert_eq!(misordered_apart, 0);
    // One encrypted run is one draw of what `simulate` predicts (five binomial deviations).
    assert!(kept >= predicted_kept - 5.0 * kept_variance.sqrt() - 1.0);
}
