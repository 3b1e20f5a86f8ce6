//! Digit decomposition: every id of a table round-trips, including 0 and V-1, and the stored
//! rows a lookup reads are the codebook rows of its digits.

use dlrm::{DigitCode, EmbeddingKind, EmbeddingPolicy, TableConfig};

#[test]
fn every_id_round_trips_through_its_digits() {
    for (rows, base, digits) in [
        (1, 2, 1),
        (2, 2, 1),
        (1000, 10, 3),
        (1001, 10, 4),
        (10_131, 101, 2),
        (4096, 2, 12),
        (100, 5, 3),
    ] {
        let code = DigitCode::new(base, digits, rows).unwrap();
        let mut out = vec![0; digits as usize];
        for id in 0..rows as u32 {
            code.decompose(id, &mut out);
            assert!(out.iter().all(|&d| d < base), "id {id}: digits {out:?}");
            assert_eq!(
                code.compose(&out),
                u64::from(id),
                "base {base} digits {digits}"
            );
        }
        code.decompose(0, &mut out);
        assert!(out.iter().all(|&d| d == 0));
        code.decompose(rows as u32 - 1, &mut out);
        assert_eq!(code.compose(&out), rows as u64 - 1);
    }
}

#[test]
fn stored_rows_are_the_digits_codebook_rows() {
    let code = DigitCode { base: 7, digits: 3 };
    let table = TableConfig {
        rows: 343,
        kind: EmbeddingKind::Digits(code),
    };
    let mut digits = [0; 3];
    for id in [0u32, 1, 6, 7, 48, 49, 342] {
        code.decompose(id, &mut digits);
        for (part, &d) in digits.iter().enumerate() {
            assert_eq!(table.stored_row(id, part), part * 7 + d as usize);
        }
    }
}

#[test]
fn codes_that_cannot_address_the_table_are_rejected() {
    assert!(DigitCode::new(10, 2, 101).is_err());
    assert!(DigitCode::new(1, 5, 1).is_err());
    assert!(DigitCode::new(2, 0, 1).is_err());
    for rows in [2, 3, 255, 256, 257, 10_131, 2_202_608] {
        for digits in 1..6 {
            let code = DigitCode::smallest(rows, digits);
            assert!(code.check(rows).is_ok());
            let smaller = DigitCode {
                base: code.base - 1,
                digits,
            };
            assert!(
                code.base == 2 || smaller.check(rows).is_err(),
                "{code:?} not smallest"
            );
        }
    }
}

#[test]
fn policy_keeps_small_tables_full_and_respects_the_input_budget() {
    let policy = EmbeddingPolicy::Digits { max_inputs: 64 };
    assert_eq!(policy.kind_for(64), EmbeddingKind::Full);
    for rows in [65, 1000, 100_000, 10_000_000] {
        let EmbeddingKind::Digits(code) = policy.kind_for(rows) else {
            panic!("{rows} stays full")
        };
        assert!(code.check(rows).is_ok());
        assert!(code.codebook_rows() <= 64, "{rows}: {code:?}");
    }
}
