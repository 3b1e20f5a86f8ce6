//! The compressor recovers a table that truly is a digit sum, whatever the id frequencies.

use dlrm::{DigitCode, FitOptions, Matrix};

fn pseudo_random(seed: u64) -> impl FnMut() -> f32 {
    let mut state = seed;
    move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// A `rows x d` table `E[i] = sum_j C_j[d_j(i)]` from random codebooks.
fn digit_sum_table(code: DigitCode, rows: usize, d: usize, seed: u64) -> Matrix {
    let mut next = pseudo_random(seed);
    let codebooks: Vec<f32> = (0..code.codebook_rows() * d).map(|_| next()).collect();
    let mut digits = vec![0; code.digits as usize];
    let mut data = Vec::with_capacity(rows * d);
    for id in 0..rows as u32 {
        code.decompose(id, &mut digits);
        for k in 0..d {
            data.push(
                digits
                    .iter()
                    .enumerate()
                    .map(|(j, &c)| codebooks[code.stacked_row(j, c) * d + k])
                    .sum(),
            );
        }
    }
    Matrix::new(rows, d, data).unwrap()
}

fn reconstruct(codebooks: &Matrix, code: DigitCode, rows: usize) -> Vec<f32> {
    let d = codebooks.cols;
    let mut digits = vec![0; code.digits as usize];
    let mut out = Vec::new();
    for id in 0..rows as u32 {
        code.decompose(id, &mut digits);
        for k in 0..d {
            out.push(
                digits
                    .iter()
                    .enumerate()
                    .map(|(j, &c)| codebooks.row(code.stacked_row(j, c))[k])
                    .sum(),
            );
        }
    }
    out
}

#[test]
fn exact_digit_sums_are_recovered() {
    // A full grid (V = p^l) and an incomplete one (V < p^l), uniform and skewed frequencies.
    for (code, rows) in [
        (DigitCode { base: 8, digits: 3 }, 512),
        (
            DigitCode {
                base: 10,
                digits: 3,
            },
            737,
        ),
    ] {
        for skewed in [false, true] {
            let table = digit_sum_table(code, rows, 4, rows as u64);
            let frequencies: Vec<f64> = (0..rows)
                .map(|i| {
                    if skewed {
                        1000.0 / (1.0 + i as f64)
                    } else {
                        1.0
                    }
                })
                .collect();
            let options = FitOptions {
                max_sweeps: 500,
                tolerance: 1e-15,
            };
            let (codebooks, error, _) =
                dlrm::fit_codebooks(&table, &frequencies, code, &options).unwrap();
            assert!(
                error < 1e-9,
                "{code:?} rows {rows} skewed {skewed}: relative error {error}"
            );
            for (a, b) in reconstruct(&codebooks, code, rows).iter().zip(&table.data) {
                assert!((a - b).abs() < 1e-4, "{a} vs {b}");
            }
        }
    }
}

#[test]
fn a_generic_table_is_approximated_not_matched() {
    let code = DigitCode { base: 4, digits: 2 };
    let mut next = pseudo_random(3);
    let table = Matrix::new(16, 2, (0..32).map(|_| next()).collect()).unwrap();
    let (_, error, _) =
        dlrm::fit_codebooks(&table, &[1.0; 16], code, &FitOptions::default()).unwrap();
    assert!(error > 0.01 && error < 1.0, "relative error {error}");
}

#[test]
fn bad_frequencies_are_rejected() {
    let code = DigitCode { base: 2, digits: 2 };
    let table = Matrix::zeros(4, 1);
    assert!(dlrm::fit_codebooks(&table, &[1.0; 3], code, &FitOptions::default()).is_err());
    assert!(
        dlrm::fit_codebooks(
            &table,
            &[1.0, f64::NAN, 1.0, 1.0],
            code,
            &FitOptions::default()
        )
        .is_err()
    );
    assert!(
        dlrm::fit_codebooks(
            &Matrix::zeros(5, 1),
            &[1.0; 5],
            code,
            &FitOptions::default()
        )
        .is_err()
    );
}
