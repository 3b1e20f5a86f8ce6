//! Deterministic train/validation/test assignment of rows.

use serde::{Deserialize, Serialize};

/// How rows are assigned to splits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SplitMethod {
    /// Each row independently, by a seeded hash of its position: reproducible and streamable.
    #[default]
    Random,
    /// In file order: the last rows are validation then test, like holding out the last day.
    Sequential,
}

pub(crate) const TRAIN: usize = 0;
pub(crate) const VALIDATION: usize = 1;
pub(crate) const TEST: usize = 2;
pub(crate) const SPLIT_NAMES: [&str; 3] = ["train", "val", "test"];

/// Assigns the `row`-th data row (0-based, counting kept rows only) to a split.
pub(crate) struct SplitPlan {
    method: SplitMethod,
    seed: u64,
    val_fraction: f64,
    test_fraction: f64,
    train_end: u64,
    val_end: u64,
}

impl SplitPlan {
    pub(crate) fn new(
        method: SplitMethod,
        seed: u64,
        val_fraction: f64,
        test_fraction: f64,
        total_rows: u64,
    ) -> Self {
        let held_out = |fraction: f64| (total_rows as f64 * fraction).round() as u64;
        let val_end = total_rows - held_out(test_fraction);
        let train_end = val_end.saturating_sub(held_out(val_fraction));
        Self {
            method,
            seed,
            val_fraction,
            test_fraction,
            train_end,
            val_end,
        }
    }

    pub(crate) fn assign(&self, row: u64) -> usize {
        match self.method {
            SplitMethod::Sequential if row < self.train_end => TRAIN,
            SplitMethod::Sequential if row < self.val_end => VALIDATION,
            SplitMethod::Sequential => TEST,
            SplitMethod::Random => {
                let u = unit_interval(mix64(self.seed ^ mix64(row)));
                if u < self.test_fraction {
                    TEST
                } else if u < self.test_fraction + self.val_fraction {
                    VALIDATION
                } else {
                    TRAIN
                }
            }
        }
    }
}

/// SplitMix64's finaliser: a bijective, well-mixing hash of a 64-bit value.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniform value in `[0, 1)` from 53 random bits.
pub(crate) fn unit_interval(bits: u64) -> f64 {
    (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Checks split fractions given on the command line.
pub(crate) fn check_fractions(val: f64, test: f64) -> Result<(), crate::DatasetError> {
    let ok = |f: f64| (0.0..1.0).contains(&f);
    if ok(val) && ok(test) && val + test < 1.0 {
        Ok(())
    } else {
        Err(crate::DatasetError::InvalidOption(format!(
            "split fractions must be in [0, 1) with val + test < 1 (got val {val}, test {test})"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_split_holds_out_the_tail() {
        let plan = SplitPlan::new(SplitMethod::Sequential, 0, 0.1, 0.2, 100);
        let counts = (0..100).fold([0; 3], |mut c, r| {
            c[plan.assign(r)] += 1;
            c
        });
        assert_eq!(counts, [70, 10, 20]);
        assert_eq!(plan.assign(69), TRAIN);
        assert_eq!(plan.assign(70), VALIDATION);
        assert_eq!(plan.assign(80), TEST);
    }

    #[test]
    fn random_split_is_seeded_and_near_its_fractions() {
        let plan = SplitPlan::new(SplitMethod::Random, 7, 0.1, 0.2, 0);
        let counts = (0..100_000).fold([0u32; 3], |mut c, r| {
            c[plan.assign(r)] += 1;
            c
        });
        assert!(
            (counts[VALIDATION] as f64 - 10_000.0).abs() < 500.0,
            "{counts:?}"
        );
        assert!((counts[TEST] as f64 - 20_000.0).abs() < 600.0, "{counts:?}");
        let other = SplitPlan::new(SplitMethod::Random, 8, 0.1, 0.2, 0);
        assert!((0..1000).any(|r| plan.assign(r) != other.assign(r)));
    }
}
