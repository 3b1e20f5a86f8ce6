//! Error-compensating rounding of a layer's weights (GPTQ: Frantar et al., "GPTQ: Accurate
//! Post-Training Quantization for Generative Pre-trained Transformers", 2022, section 3).
//!
//! Rounding every weight to its nearest integer leaves each row's accumulator off by
//! `sum_j (w_j - q_j) x_j`. When a layer's noise budget leaves its weights only a few integer
//! levels, as on the hundreds of pair features of a dot model's first top layer, those errors
//! are as large as the weights themselves. Rounding the columns one by one and moving each
//! column's error onto the columns not yet rounded, in proportion to how the calibration inputs
//! correlate (the inverse of `H = X^T X`), minimises the accumulator's error on the calibration
//! rows instead of each weight's. The bias is the last column: it is not clamped, so it takes
//! whatever mean error is left.
//!
//! Larger weights amplify the bootstrap noise of the inputs they read, so the rounding weighs
//! that noise too: with `D` the noise variance each input carries per squared weight, the
//! expected error `(w - q)^T H (w - q) + q^T D q` is `(w' - q)^T (H + D) (w' - q)` plus a
//! constant, with `w' = (H + D)^-1 H w`, and the same column-by-column rounding on `H + D`
//! from `w'` minimises it.

/// Relative damping added to `H`'s diagonal (GPTQ's 1%): keeps `H` invertible when inputs are
/// constant or collinear on the calibration rows.
const DAMPING: f64 = 0.01;

/// The calibration inputs' second moments, `H = X^T X / n` over the columns plus a constant 1
/// (the bias), as the upper Cholesky factor of `H^-1` that the rounding walks: row `j` says how
/// column `j`'s rounding error moves onto the later columns. `None` when the factorisation
/// fails (it does not for a damped `H`, but a typed fallback beats a panic).
pub(super) struct Compensation {
    /// `H`, damped, `size x size` row-major.
    h: Vec<f64>,
    size: usize,
}

/// The rounding for one noise level: the upper Cholesky factor `U` of `(H + D)^-1` (row `j`
/// says how column `j`'s rounding error moves onto the later columns) and, with noise, the
/// targets' shrinkage `(H + D)^-1 H`.
pub(super) struct Rounder {
    factor: Vec<f64>,
    shrink: Option<Vec<f64>>,
    size: usize,
}

impl Compensation {
    /// From the layer's integer inputs on the calibration rows.
    pub(super) fn of(x: &[Vec<i64>]) -> Option<Self> {
        let cols = x.first()?.len();
        let size = cols + 1;
        let mut h = vec![0f64; size * size];
        for row in x {
            let v: Vec<f64> = row.iter().map(|&a| a as f64).chain([1.0]).collect();
            for i in 0..size {
                if v[i] == 0.0 {
                    continue;
                }
                let (vi, hi) = (v[i], &mut h[i * size..(i + 1) * size]);
                for (hij, &vj) in hi[i..].iter_mut().zip(&v[i..]) {
                    *hij += vi * vj;
                }
            }
        }
        let n = x.len() as f64;
        for i in 0..size {
            for j in i..size {
                h[i * size + j] /= n;
                h[j * size + i] = h[i * size + j];
            }
        }
        let mean_diag = (0..size).map(|i| h[i * size + i]).sum::<f64>() / size as f64;
        let damp = DAMPING * mean_diag.max(1e-12);
        for i in 0..size {
            h[i * size + i] += damp;
        }
        Some(Self { h, size })
    }

    /// The rounding when input `j` carries noise of variance `noise[j]` (per squared weight
    /// unit, in accumulator units; empty for none).
    pub(super) fn rounder(&self, noise: &[f64]) -> Option<Rounder> {
        let size = self.size;
        let mut hd = self.h.clone();
        for (j, v) in noise.iter().enumerate() {
            hd[j * size + j] += v;
        }
        let inverse = invert_spd(&hd, size)?;
        // Upper factor U of H^-1 = U^T U: the transpose of the lower Cholesky factor.
        let lower = cholesky(&inverse, size)?;
        let mut factor = vec![0f64; size * size];
        for i in 0..size {
            for j in 0..=i {
                factor[j * size + i] = lower[i * size + j];
            }
        }
        let shrink = noise.iter().any(|&v| v > 0.0).then(|| {
            let mut m = vec![0f64; size * size];
            for i in 0..size {
                for k in 0..size {
                    let a = inverse[i * size + k];
                    for j in 0..size {
                        m[i * size + j] += a * self.h[k * size + j];
                    }
                }
            }
            m
        });
        Some(Rounder {
            factor,
            shrink,
            size,
        })
    }
}

impl Rounder {
    /// One row's integer weights and bias from its real values in accumulator units
    /// (`weights`, `bias`), each weight within its column's `limit`.
    pub(super) fn round_row(
        &self,
        weights: &[f64],
        bias: f64,
        limit: impl Fn(usize) -> f64,
    ) -> (Vec<i32>, i64) {
        let size = self.size;
        let target: Vec<f64> = weights.iter().copied().chain([bias]).collect();
        let mut w = match &self.shrink {
            None => target,
            Some(m) => (0..size)
                .map(|i| (0..size).map(|j| m[i * size + j] * target[j]).sum())
                .collect(),
        };
        let mut q = Vec::with_capacity(size - 1);
        for j in 0..size - 1 {
            let l = limit(j);
            let rounded = w[j].round().clamp(-l, l);
            let u = &self.factor[j * size..(j + 1) * size];
            let error = (w[j] - rounded) / u[j];
            for k in j + 1..size {
                w[k] -= error * u[k];
            }
            q.push(rounded as i32);
        }
        (q, w[size - 1].round() as i64)
    }
}

/// The lower Cholesky factor of the symmetric positive definite `a` (`n x n`), or `None`.
fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let dot: f64 = (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum();
            let value = a[i * n + j] - dot;
            if i == j {
                if !(value > 0.0 && value.is_finite()) {
                    return None;
                }
                l[i * n + i] = value.sqrt();
            } else {
                l[i * n + j] = value / l[j * n + j];
            }
        }
    }
    Some(l)
}

/// The inverse of the symmetric positive definite `a` (`n x n`), through its Cholesky factor.
fn invert_spd(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let l = cholesky(a, n)?;
    // L^-1, lower triangular, by forward substitution column by column.
    let mut inv_l = vec![0f64; n * n];
    for c in 0..n {
        for i in c..n {
            let rhs = if i == c { 1.0 } else { 0.0 };
            let sum: f64 = (c..i).map(|k| l[i * n + k] * inv_l[k * n + c]).sum();
            inv_l[i * n + c] = (rhs - sum) / l[i * n + i];
        }
    }
    // A^-1 = L^-T L^-1.
    let mut inverse = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let value: f64 = (i..n).map(|k| inv_l[k * n + i] * inv_l[k * n + j]).sum();
            inverse[i * n + j] = value;
            inverse[j * n + i] = value;
        }
    }
    Some(inverse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compensated_rounding_beats_nearest_on_correlated_inputs() {
        // Two nearly equal inputs: rounding 0.4 and 0.4 to 0 and 0 loses 0.8 of the sum,
        // compensation rounds one of them up.
        let x: Vec<Vec<i64>> = (0..200)
            .map(|r| {
                let a = (r % 17) as i64 - 8;
                vec![a, a + (r % 3) as i64 - 1]
            })
            .collect();
        let c = Compensation::of(&x).unwrap().rounder(&[]).unwrap();
        let (w, b) = ([0.4, 0.4], 0.0);
        let (q, qb) = c.round_row(&w, b, |_| 7.0);
        let error = |q: &[i32], qb: i64| -> f64 {
            x.iter()
                .map(|r| {
                    let exact = w[0] * r[0] as f64 + w[1] * r[1] as f64 + b;
                    let int = f64::from(q[0]) * r[0] as f64 + f64::from(q[1]) * r[1] as f64;
                    (exact - int - qb as f64).powi(2)
                })
                .sum()
        };
        assert!(error(&q, qb) < 0.5 * error(&[0, 0], 0), "{q:?}");
        assert!(q.iter().any(|&v| v != 0));
    }

    #[test]
    fn limits_hold() {
        let x: Vec<Vec<i64>> = (0..50).map(|r| vec![r % 5, r % 7]).collect();
        let c = Compensation::of(&x).unwrap().rounder(&[]).unwrap();
        let (q, _) = c.round_row(&[9.7, -12.2], 3.0, |_| 3.0);
        assert!(q.iter().all(|v| v.abs() <= 3), "{q:?}");
    }
}
