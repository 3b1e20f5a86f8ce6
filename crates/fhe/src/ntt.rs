//! Exact negacyclic products modulo `2^64` in the number-theoretic-transform domain.
//!
//! `tfhe_ntt::native64::Plan32` works modulo five 30-bit primes whose product `P` is about
//! `2^149.9`, and its inverse returns the representative of the CRT value in `(-P/2, P/2)`,
//! reduced modulo `2^64`. A sum of products is therefore exact modulo `2^64` as long as the
//! *integer* sum stays inside `(-P/2, P/2)`. Ciphertext words are fed as unsigned integers below
//! `2^64` and weights as signed integers, so every output coefficient is bounded by
//! `2^64 * (sum of the L1 norms of the weight polynomials accumulated)`. Keeping that sum at most
//! [`MAX_ACCUMULATED_L1_NORM`] `= 2^84` bounds the integer by `2^148 < P/2`, which is what makes
//! accumulation in the transform domain (one inverse transform per output, however many
//! products are summed) exact.

use std::sync::{Arc, Mutex, OnceLock};

use tfhe_ntt::native64::Plan32;

use crate::error::{FheError, Result};

/// Number of 30-bit primes of the CRT representation.
const PRIME_COUNT: usize = 5;

/// Largest sum of weight-polynomial L1 norms that may be accumulated into one output.
pub(crate) const MAX_ACCUMULATED_L1_NORM: u128 = 1 << 84;

/// The shared transform plan for one polynomial size (its twiddle tables are built once per
/// process).
pub(crate) fn plan(polynomial_size: usize) -> Result<Arc<Plan32>> {
    type PlanCache = Mutex<Vec<(usize, Arc<Plan32>)>>;
    static PLANS: OnceLock<PlanCache> = OnceLock::new();
    let plans = PLANS.get_or_init(|| Mutex::new(Vec::new()));
    let mut plans = plans
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, plan)) = plans.iter().find(|(size, _)| *size == polynomial_size) {
        return Ok(Arc::clone(plan));
    }
    let plan = Arc::new(Plan32::try_new(polynomial_size).ok_or_else(|| {
        FheError::InvalidArgument(format!("no NTT plan for polynomial size {polynomial_size}"))
    })?);
    plans.push((polynomial_size, Arc::clone(&plan)));
    Ok(plan)
}

fn prime_plans(plan: &Plan32) -> [&tfhe_ntt::prime32::Plan; PRIME_COUNT] {
    [
        plan.ntt_0(),
        plan.ntt_1(),
        plan.ntt_2(),
        plan.ntt_3(),
        plan.ntt_4(),
    ]
}

/// A plaintext polynomial with signed integer coefficients, transformed and pre-multiplied by
/// `1/N` so that products accumulate without a further normalisation.
#[derive(Clone)]
pub(crate) struct NttPolynomial {
    residues: Vec<u32>,
    l1_norm: u128,
}

impl NttPolynomial {
    pub(crate) fn new(plan: &Plan32, coefficients: &[i64]) -> Self {
        let n = plan.ntt_size();
        debug_assert_eq!(coefficients.len(), n);
        let mut residues = vec![0u32; PRIME_COUNT * n];
        for (prime_plan, residues) in prime_plans(plan)
            .into_iter()
            .zip(residues.chunks_exact_mut(n))
        {
            let modulus = i64::from(prime_plan.modulus());
            for (residue, &coefficient) in residues.iter_mut().zip(coefficients) {
                *residue = coefficient.rem_euclid(modulus) as u32;
            }
            prime_plan.fwd(residues);
            prime_plan.normalize(residues);
        }
        let l1_norm = coefficients
            .iter()
            .map(|c| u128::from(c.unsigned_abs()))
            .sum();
        NttPolynomial { residues, l1_norm }
    }

    pub(crate) fn l1_norm(&self) -> u128 {
        self.l1_norm
    }
}

/// One GLWE ciphertext (`k + 1` polynomials) in the transform domain.
#[derive(Clone)]
pub(crate) struct NttGlwe {
    residues: Vec<u32>,
}

impl NttGlwe {
    /// Transforms the `k + 1` polynomials of a ciphertext, given as its raw words.
    pub(crate) fn new(plan: &Plan32, words: &[u64]) -> Self {
        let n = plan.ntt_size();
        let mut residues = vec![0u32; PRIME_COUNT * words.len()];
        for (polynomial, residues) in words
            .chunks_exact(n)
            .zip(residues.chunks_exact_mut(PRIME_COUNT * n))
        {
            let [r0, r1, r2, r3, r4] = split_residues(residues, n);
            plan.fwd(polynomial, r0, r1, r2, r3, r4);
        }
        NttGlwe { residues }
    }
}

fn split_residues(residues: &mut [u32], n: usize) -> [&mut [u32]; PRIME_COUNT] {
    let (r0, rest) = residues.split_at_mut(n);
    let (r1, rest) = rest.split_at_mut(n);
    let (r2, rest) = rest.split_at_mut(n);
    let (r3, r4) = rest.split_at_mut(n);
    [r0, r1, r2, r3, r4]
}

/// A sum of GLWE x plaintext products kept in the transform domain.
pub(crate) struct NttAccumulator {
    residues: Vec<u32>,
}

impl NttAccumulator {
    pub(crate) fn new(plan: &Plan32, glwe_polynomial_count: usize) -> Self {
        NttAccumulator {
            residues: vec![0; glwe_polynomial_count * PRIME_COUNT * plan.ntt_size()],
        }
    }

    /// Adds `sum_i glwe_i * weights_i` (every polynomial of each ciphertext times its
    /// plaintext). The caller keeps the accumulated L1 norm within [`MAX_ACCUMULATED_L1_NORM`].
    /// (Each product streams whole polynomials: a coefficient-blocked order that keeps the
    /// accumulator in L1 was slower, docs/fhe.md.)
    pub(crate) fn add_products(&mut self, plan: &Plan32, products: &[(&NttGlwe, &NttPolynomial)]) {
        let n = plan.ntt_size();
        for (glwe, weights) in products {
            for (accumulator, input) in self
                .residues
                .chunks_exact_mut(PRIME_COUNT * n)
                .zip(glwe.residues.chunks_exact(PRIME_COUNT * n))
            {
                for (((prime_plan, accumulator), input), weights) in prime_plans(plan)
                    .into_iter()
                    .zip(accumulator.chunks_exact_mut(n))
                    .zip(input.chunks_exact(n))
                    .zip(weights.residues.chunks_exact(n))
                {
                    prime_plan.mul_accumulate(accumulator, input, weights);
                }
            }
        }
    }

    /// Adds another accumulator of the same shape (partial sums computed apart).
    pub(crate) fn merge(&mut self, plan: &Plan32, other: &NttAccumulator) {
        let n = plan.ntt_size();
        for (accumulator, other) in self
            .residues
            .chunks_exact_mut(PRIME_COUNT * n)
            .zip(other.residues.chunks_exact(PRIME_COUNT * n))
        {
            for ((prime_plan, accumulator), other) in prime_plans(plan)
                .into_iter()
                .zip(accumulator.chunks_exact_mut(n))
                .zip(other.chunks_exact(n))
            {
                let modulus = u64::from(prime_plan.modulus());
                for (a, &b) in accumulator.iter_mut().zip(other) {
                    let sum = u64::from(*a) + u64::from(b);
                    *a = (if sum >= modulus { sum - modulus } else { sum }) as u32;
                }
            }
        }
    }

    /// Inverse transform and CRT reconstruction: the raw words of the resulting GLWE.
    #[cfg(test)]
    pub(crate) fn finish(self, plan: &Plan32) -> Vec<u64> {
        let mut words = vec![0u64; self.residues.len() / PRIME_COUNT];
        self.finish_into(plan, &mut words);
        words
    }

    /// Like `finish`, writing the words into `words` (one GLWE's worth).
    pub(crate) fn finish_into(mut self, plan: &Plan32, words: &mut [u64]) {
        let n = plan.ntt_size();
        debug_assert_eq!(words.len(), self.residues.len() / PRIME_COUNT);
        for (polynomial, residues) in words
            .chunks_exact_mut(n)
            .zip(self.residues.chunks_exact_mut(PRIME_COUNT * n))
        {
            let [r0, r1, r2, r3, r4] = split_residues(residues, n);
            plan.inv(polynomial, r0, r1, r2, r3, r4);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Schoolbook negacyclic product modulo 2^64, the reference.
    fn negacyclic_reference(a: &[u64], w: &[i64]) -> Vec<u64> {
        let n = a.len();
        let mut out = vec![0u64; n];
        for (i, &ai) in a.iter().enumerate() {
            for (j, &wj) in w.iter().enumerate() {
                let term = ai.wrapping_mul(wj as u64);
                if i + j < n {
                    out[i + j] = out[i + j].wrapping_add(term);
                } else {
                    out[i + j - n] = out[i + j - n].wrapping_sub(term);
                }
            }
        }
        out
    }

    fn lcg(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *state ^ (*state >> 29)
    }

    #[test]
    fn accumulated_products_match_schoolbook_for_random_operands() {
        let n = 2048;
        let plan = plan(n).unwrap();
        let mut state = 11;
        let mut expected = vec![0u64; 2 * n];
        let mut accumulator = NttAccumulator::new(&plan, 2);
        for _ in 0..3 {
            let glwe: Vec<u64> = (0..2 * n).map(|_| lcg(&mut state)).collect();
            let weights: Vec<i64> = (0..n)
                .map(|_| (lcg(&mut state) % 201) as i64 - 100)
                .collect();
            for (polynomial, expected) in glwe.chunks_exact(n).zip(expected.chunks_exact_mut(n)) {
                let product = negacyclic_reference(polynomial, &weights);
                for (e, p) in expected.iter_mut().zip(product) {
                    *e = e.wrapping_add(p);
                }
            }
            accumulator.add_products(
                &plan,
                &[(
                    &NttGlwe::new(&plan, &glwe),
                    &NttPolynomial::new(&plan, &weights),
                )],
            );
        }
        assert_eq!(accumulator.finish(&plan), expected);
    }

    /// The worst case allowed by the bound: every ciphertext word is `2^64 - 1` and every weight
    /// `2^62`, so coefficient `N - 1` of each product is `N (2^64 - 1) 2^62`; accumulating
    /// `2^11` such products reaches the full `2^148` integer bound.
    #[test]
    fn accumulation_is_exact_at_the_largest_admissible_tile_count() {
        let n = 2048;
        let plan = plan(n).unwrap();
        let glwe = vec![u64::MAX; n];
        let weights = vec![1i64 << 62; n];
        let transformed_weights = NttPolynomial::new(&plan, &weights);
        let tiles = (MAX_ACCUMULATED_L1_NORM / transformed_weights.l1_norm()) as usize;
        assert_eq!(tiles, 2048);
        let transformed_glwe = NttGlwe::new(&plan, &glwe);
        let mut accumulator = NttAccumulator::new(&plan, 1);
        let products = vec![(&transformed_glwe, &transformed_weights); tiles];
        accumulator.add_products(&plan, &products);
        let single = negacyclic_reference(&glwe, &weights);
        let expected: Vec<u64> = single
            .iter()
            .map(|c| c.wrapping_mul(tiles as u64))
            .collect();
        assert_eq!(accumulator.finish(&plan), expected);
    }
}
