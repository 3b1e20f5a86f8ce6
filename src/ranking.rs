//! Ranked requests of the encrypted commands (`infer --candidates`, `bench rank`): one user's
//! private inputs and K candidates' public ids encrypted, run, decrypted and checked against
//! the integer reference of the ranked request and its `simulate` prediction.

use std::time::{Duration, Instant};

use anyhow::bail;
use datasets::MappedRow;
use dlrm::{Execution, QuantizedModel};
use infer::StageTimings;

use crate::session::Session;

/// Everything measured for one ranked request.
pub(crate) struct RankOutcome {
    /// The integer reference's numerator per candidate.
    pub reference: Vec<i64>,
    /// The decrypted numerator per candidate.
    pub encrypted: Vec<i64>,
    /// Per candidate, how far a bootstrap error moves its numerator: the largest deviation
    /// over the `simulate` passes, at least six output noise deviations.
    pub reach: Vec<f64>,
    /// Mean fraction of candidates whose class `simulate` keeps, over the passes.
    pub predicted_class_kept: f64,
    pub encrypt: Duration,
    pub decrypt: Duration,
    pub upload_bytes: usize,
    pub download_bytes: usize,
    pub server: StageTimings,
}

/// How the encrypted scores order the candidates, pair by pair, against the reference.
#[derive(Debug, PartialEq)]
pub(crate) struct RankingAgreement {
    /// Pairs the reference orders (unequal numerators).
    pub pairs: usize,
    /// Of those, pairs whose numerators are within the two candidates' bootstrap reach.
    pub close: usize,
    /// Close pairs the encrypted scores order otherwise (or tie).
    pub misordered_close: usize,
    /// Pairs farther apart than a bootstrap error that the encrypted scores order otherwise.
    pub misordered_apart: usize,
    /// Of those, pairs farther apart than twice that (the reach is the largest deviation a
    /// few `simulate` passes drew, so rarer, larger misreads can pass it).
    pub misordered_far: usize,
}

impl RankOutcome {
    pub(crate) fn agreement(&self) -> RankingAgreement {
        ranking_agreement(&self.reference, &self.encrypted, &self.reach)
    }

    pub(crate) fn class_agreement(&self) -> f64 {
        let as_f64 = |v: &[i64]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
        dlrm::class_agreement(&as_f64(&self.encrypted), &as_f64(&self.reference))
    }
}

/// Compares the order of `encrypted` with the order of `reference`, pair by pair.
pub(crate) fn ranking_agreement(
    reference: &[i64],
    encrypted: &[i64],
    reach: &[f64],
) -> RankingAgreement {
    let mut agreement = RankingAgreement {
        pairs: 0,
        close: 0,
        misordered_close: 0,
        misordered_apart: 0,
        misordered_far: 0,
    };
    for i in 0..reference.len() {
        for j in 0..i {
            let order = reference[i].cmp(&reference[j]);
            if order.is_eq() {
                continue;
            }
            agreement.pairs += 1;
            let distance = (reference[i] - reference[j]).abs() as f64;
            let close = distance <= reach[i] + reach[j];
            let misordered = encrypted[i].cmp(&encrypted[j]) != order;
            agreement.close += usize::from(close);
            match (close, misordered) {
                (true, true) => agreement.misordered_close += 1,
                (false, true) => {
                    agreement.misordered_apart += 1;
                    let far = distance > 2.0 * (reach[i] + reach[j]);
                    agreement.misordered_far += usize::from(far);
                }
                _ => {}
            }
        }
    }
    agreement
}

/// The ids of `row` split by role: the private tables' (the user's), the public tables' (a
/// candidate's).
pub(crate) fn split_ids(model: &QuantizedModel, row: &MappedRow) -> (Vec<u32>, Vec<u32>) {
    let c = &model.config;
    let pick = |tables: Vec<usize>| tables.iter().map(|&t| row.ids[t]).collect();
    (
        pick(c.roles.private_tables(c.tables.len())),
        pick(c.roles.public_tables(c.tables.len())),
    )
}

impl Session {
    /// Ranks `candidates` (public ids each) for `user`'s private inputs: encrypts, runs (in
    /// this process, or on the session's service), decrypts, and computes the reference and a
    /// `simulate` pass per seed.
    pub(crate) fn run_ranked(
        &self,
        user: &MappedRow,
        candidates: &[Vec<u32>],
        seeds: std::ops::Range<u64>,
    ) -> anyhow::Result<RankOutcome> {
        if !self.server.interface().ranks() {
            bail!(
                "the model has no public table: give it roles (`--roles criteo-13-13` or a roles file, see docs/rank.md)"
            );
        }
        let (private_ids, _) = split_ids(&self.model, user);
        let started = Instant::now();
        let request = self
            .client
            .encrypt_rank(&user.dense, &private_ids, candidates)?
            .to_bytes()?;
        let encrypt = started.elapsed();
        let (response, server) = match &self.remote {
            None => self.server.rank_bytes_until(
                &self.server_key,
                &request,
                candidates.len(),
                &|| false,
            )?,
            Some(remote) => {
                let answer = remote.http.rank(&remote.model, &remote.key_id, &request)?;
                (answer.bytes, answer.stages.unwrap_or_default())
            }
        };
        let started = Instant::now();
        let predictions = self
            .client
            .decrypt_rank_bytes(&response, candidates.len())?;
        let encrypted = predictions.iter().map(|p| p.logit_numerator).collect();
        let decrypt = started.elapsed();

        let model = &self.model;
        let input = model.quantize_input(&user.dense);
        let reference = model.rank(&input, &private_ids, candidates)?;
        let floor = 6.0 * model.output_noise_sd();
        let mut reach = vec![floor; candidates.len()];
        let mut kept = 0.0;
        let passes = seeds.end.saturating_sub(seeds.start);
        for seed in seeds {
            let trace = model.rank_trace(
                &input,
                &private_ids,
                candidates,
                Execution::Simulate { seed },
                0,
            )?;
            let simulated: Vec<f64> = trace.candidates.iter().map(|c| c.logit_numerator).collect();
            for (k, s) in simulated.iter().enumerate() {
                reach[k] = reach[k].max((s - reference[k] as f64).abs());
            }
            let exact: Vec<f64> = reference.iter().map(|&r| r as f64).collect();
            kept += dlrm::class_agreement(&simulated, &exact);
        }
        Ok(RankOutcome {
            reference,
            encrypted,
            reach,
            predicted_class_kept: kept / passes.max(1) as f64,
            encrypt,
            decrypt,
            upload_bytes: request.len(),
            download_bytes: response.len(),
            server,
        })
    }
}

/// The candidates of `rows`: each row's public ids, cycling through the rows until `count`.
pub(crate) fn candidates_of(
    model: &QuantizedModel,
    rows: &[MappedRow],
    count: usize,
) -> Vec<Vec<u32>> {
    rows.iter()
        .cycle()
        .take(count)
        .map(|row| split_ids(model, row).1)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::ranking_agreement;

    #[test]
    fn pairs_are_counted_by_order_and_distance() {
        // Reference 0 < 10 < 20 and a tie; reach 2 each: 0/10 and 10/20 are apart, 20/21 close.
        let reference = [0, 10, 20, 21, 20];
        let reach = [2.0; 5];
        let same = ranking_agreement(&reference, &[1, 9, 21, 22, 19], &reach);
        assert_eq!(same.pairs, 9);
        assert_eq!(same.close, 2);
        assert_eq!(same.misordered_close + same.misordered_apart, 0);
        let swapped = ranking_agreement(&reference, &[1, 9, 22, 21, 19], &reach);
        assert_eq!((swapped.misordered_close, swapped.misordered_apart), (1, 0));
        let wrong = ranking_agreement(&reference, &[30, 9, 22, 23, 19], &reach);
        assert_eq!(wrong.misordered_apart, 4);
        assert_eq!(wrong.misordered_far, 4);
        // 6 apart with reaches of 2: beyond a bootstrap error (4), not beyond twice it (8).
        let near = ranking_agreement(&[0, 6], &[7, 1], &[2.0, 2.0]);
        assert_eq!((near.misordered_apart, near.misordered_far), (1, 0));
    }
}
