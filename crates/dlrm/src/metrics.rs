//! Evaluation metrics of click/disease probabilities against 0/1 labels.

use std::fmt;

use serde::{Deserialize, Serialize};

/// AUC, log loss and accuracy (threshold 0.5) of a set of predictions.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Area under the ROC curve.
    pub auc: f64,
    /// Mean binary cross-entropy.
    pub log_loss: f64,
    /// Fraction of rows whose probability is on the label's side of 0.5.
    pub accuracy: f64,
    /// Rows evaluated.
    pub rows: usize,
}

impl Metrics {
    /// Metrics of probabilities against labels (equal lengths).
    ///
    /// ```
    /// let m = dlrm::Metrics::from_probabilities(&[0.9, 0.2, 0.6, 0.4], &[1, 0, 0, 1]);
    /// assert_eq!(m.auc, 0.75);
    /// assert_eq!(m.accuracy, 0.5);
    /// ```
    pub fn from_probabilities(probabilities: &[f64], labels: &[u8]) -> Self {
        assert_eq!(
            probabilities.len(),
            labels.len(),
            "one prediction per label"
        );
        let rows = labels.len();
        let log_loss = probabilities
            .iter()
            .zip(labels)
            .map(|(&p, &y)| {
                let p = p.clamp(1e-12, 1.0 - 1e-12);
                if y == 1 { -p.ln() } else { -(1.0 - p).ln() }
            })
            .sum::<f64>()
            / rows.max(1) as f64;
        let correct = probabilities
            .iter()
            .zip(labels)
            .filter(|&(&p, &y)| (p >= 0.5) == (y == 1))
            .count();
        Self {
            auc: auc(probabilities, labels),
            log_loss,
            accuracy: correct as f64 / rows.max(1) as f64,
            rows,
        }
    }

    /// Metrics of logits (the sigmoid is applied here).
    ///
    /// ```
    /// let m = dlrm::Metrics::from_logits(&[2.0, -2.0], &[1, 0]);
    /// assert_eq!((m.auc, m.accuracy), (1.0, 1.0));
    /// ```
    pub fn from_logits(logits: &[f64], labels: &[u8]) -> Self {
        let p: Vec<f64> = logits.iter().map(|&l| sigmoid(l)).collect();
        Self::from_probabilities(&p, labels)
    }
}

impl fmt::Display for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AUC {:.4}  log loss {:.4}  accuracy {:.4}  ({} rows)",
            self.auc, self.log_loss, self.accuracy, self.rows
        )
    }
}

/// The logistic function.
///
/// ```
/// assert_eq!(dlrm::sigmoid(0.0), 0.5);
/// ```
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Area under the ROC curve: the probability that a random positive scores above a random
/// negative, ties counting one half (0.5 when a class is absent).
///
/// ```
/// assert_eq!(dlrm::auc(&[0.1, 0.4, 0.35, 0.8], &[0, 0, 1, 1]), 0.75);
/// assert_eq!(dlrm::auc(&[0.5, 0.5], &[0, 1]), 0.5);
/// ```
pub fn auc(scores: &[f64], labels: &[u8]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut negatives_below, mut pairs, mut positives) = (0u64, 0f64, 0u64);
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        let (mut tie_pos, mut tie_neg) = (0u64, 0u64);
        while j < order.len() && scores[order[j]] == scores[order[i]] {
            if labels[order[j]] == 1 {
                tie_pos += 1;
            } else {
                tie_neg += 1;
            }
            j += 1;
        }
        pairs += tie_pos as f64 * (negatives_below as f64 + tie_neg as f64 / 2.0);
        negatives_below += tie_neg;
        positives += tie_pos;
        i = j;
    }
    if positives == 0 || negatives_below == 0 {
        return 0.5;
    }
    pairs / (positives as f64 * negatives_below as f64)
}

/// Fraction of rows whose predicted class (`logit > 0`) is the same in `a` and `b` (equal,
/// non-empty lengths; logits or logit numerators, only the sign counts).
///
/// ```
/// assert_eq!(dlrm::class_agreement(&[1.5, -2.0, 0.0, 3.0], &[0.2, -0.1, 0.4, -1.0]), 0.5);
/// ```
pub fn class_agreement(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "class agreement of unequal lengths");
    let same = a
        .iter()
        .zip(b)
        .filter(|(x, y)| (**x > 0.0) == (**y > 0.0))
        .count();
    same as f64 / a.len() as f64
}
