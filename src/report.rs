//! The printed report of encrypted rows: fidelity against the integer reference and the float
//! model, per-stage times, and the ratio to the bootstrap floor.

use std::time::Duration;

use dlrm::QuantizedModel;
use infer::{FhePlan, StageTimings};

/// `simulate` passes per row behind the predicted class agreement.
pub(crate) const CLASS_PASSES: u64 = 32;

/// Everything measured for one row.
pub(crate) struct RowOutcome {
    pub label: Option<u8>,
    pub float_logit: Option<f64>,
    pub reference_numerator: i64,
    pub simulated_numerator: f64,
    /// Fraction of [`CLASS_PASSES`] seeded `simulate` passes that keep the reference's class.
    pub class_kept: f64,
    pub encrypted_numerator: f64,
    pub encrypt: Duration,
    pub decrypt: Duration,
    pub upload_bytes: usize,
    pub download_bytes: usize,
    pub server: StageTimings,
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Fidelity and timing summary of a set of rows.
pub(crate) fn print_summary(
    model: &QuantizedModel,
    plan: &FhePlan,
    outcomes: &[RowOutcome],
    bootstrap: (Duration, Duration),
) {
    let scale = model.logit_scale;
    let (encrypted, reference): (Vec<f64>, Vec<f64>) = outcomes
        .iter()
        .map(|o| (o.encrypted_numerator, o.reference_numerator as f64))
        .unzip();
    let agreement = dlrm::class_agreement(&encrypted, &reference);
    let agree = (agreement * outcomes.len() as f64).round();
    let errors: Vec<f64> = outcomes
        .iter()
        .map(|o| (o.encrypted_numerator - o.reference_numerator as f64).abs())
        .collect();
    let predicted: f64 = outcomes.iter().map(|o| o.class_kept).sum();
    println!(
        "fidelity: predicted class equal to the integer reference on {agree}/{} rows ({:.1}%; simulate predicts {predicted:.1} rows, {:.1}%, over {CLASS_PASSES} passes: a row within a bootstrap error of zero can go either way); |encrypted - reference| numerator: median {:.2}, max {:.2} (logit units x {scale:.3e})",
        outcomes.len(),
        100.0 * agreement,
        100.0 * predicted / outcomes.len() as f64,
        median(errors.clone()),
        errors.iter().copied().fold(0.0, f64::max),
    );
    let labels: Option<Vec<u8>> = outcomes.iter().map(|o| o.label).collect();
    if let Some(labels) = labels.filter(|l| l.contains(&0) && l.contains(&1)) {
        let auc = |score: &dyn Fn(&RowOutcome) -> f64| {
            dlrm::auc(&outcomes.iter().map(score).collect::<Vec<_>>(), &labels)
        };
        let encrypted = auc(&|o| o.encrypted_numerator);
        let reference = auc(&|o| o.reference_numerator as f64);
        let simulated = auc(&|o| o.simulated_numerator);
        print!(
            "AUC on these {} rows: encrypted {encrypted:.4}, integer reference {reference:.4}, simulate {simulated:.4}",
            outcomes.len()
        );
        if outcomes.iter().all(|o| o.float_logit.is_some()) {
            let float = auc(&|o| o.float_logit.unwrap_or(0.0));
            print!(
                ", float {float:.4} (encrypted - float {:+.4})",
                encrypted - float
            );
        }
        println!();
    }
    let stage =
        |f: &dyn Fn(&RowOutcome) -> Duration| median(outcomes.iter().map(|o| ms(f(o))).collect());
    let server = stage(&|o| o.server.total());
    println!("per-stage time, median of {} rows (ms):", outcomes.len());
    println!(
        "  client encrypt {:.1} | upload {:.1} KiB | decode {:.1} | bottom MLP {:.1} | lookup {:.1} | interaction {:.1} | top MLP {:.1} | encode {:.2} | download {:.1} KiB | client decrypt {:.2}",
        stage(&|o| o.encrypt),
        median(
            outcomes
                .iter()
                .map(|o| o.upload_bytes as f64 / 1024.0)
                .collect()
        ),
        stage(&|o| o.server.decode),
        stage(&|o| o.server.bottom),
        stage(&|o| o.server.lookup),
        stage(&|o| o.server.interaction),
        stage(&|o| o.server.top),
        stage(&|o| o.server.encode),
        median(
            outcomes
                .iter()
                .map(|o| o.download_bytes as f64 / 1024.0)
                .collect()
        ),
        stage(&|o| o.decrypt),
    );
    let bootstraps = plan.bootstraps();
    let threads = rayon::current_num_threads();
    let (single, batched) = (ms(bootstrap.0), ms(bootstrap.1));
    let floor = bootstraps as f64 * single / threads as f64;
    println!(
        "server compute {server:.1} ms for {bootstraps} bootstraps; one keyswitch+bootstrap {single:.1} ms alone, {batched:.1} ms each in a batch on {threads} threads"
    );
    println!(
        "  floor bootstraps x one / threads = {floor:.1} ms: ratio {:.2}; vs the batched rate ({:.1} ms): ratio {:.2}",
        server / floor,
        bootstraps as f64 * batched,
        server / (bootstraps as f64 * batched)
    );
}
