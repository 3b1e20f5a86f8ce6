//! Encrypted embedding lookups: Criteo-shaped digit tables, the one-hot baseline at a reduced
//! scale side by side, a HE-LRM-style micro-benchmark and a MiniLM-shaped token table.
//! Run with `cargo bench -p embed --bench embed_lookup`.

use std::time::Instant;

use embed::{EmbeddingTable, LookupPlan, OutputOrder, PackedTables, PackingOptions, TableShape};
use fhe::{ClientKey, ParameterSetId};

/// Criteo Kaggle cardinalities of C1..C26 (facebookresearch/dlrm, `ln_emb`).
const CRITEO: [u64; 26] = [
    1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194, 27, 14992,
    5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105, 142572,
];

/// Rows per table in the one-hot comparison (the full tables do not fit in memory one-hot).
const ONE_HOT_CAP: u64 = 20_000;

struct Measured {
    server_ms: f64,
    query_bytes: usize,
    query_glwes: usize,
    products: usize,
}

fn random_tables(shapes: &[TableShape], seed: u64) -> Vec<EmbeddingTable> {
    let mut state = seed;
    shapes
        .iter()
        .map(|&shape| {
            let bound = shape.max_abs_value as u64;
            let values = (0..shape.input_len() * shape.dim)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((state >> 33) % (2 * bound + 1)) as i64 - bound as i64
                })
                .collect();
            EmbeddingTable::new(shape, values).unwrap()
        })
        .collect()
}

/// Packs the tables, runs `runs` lookups of `ids` and checks the last one exactly.
fn measure(
    client: &ClientKey,
    shapes: Vec<TableShape>,
    slot_tables: Vec<usize>,
    options: PackingOptions,
    ids: &[u64],
    runs: usize,
) -> Measured {
    let tables = random_tables(&shapes, 7);
    let plan = LookupPlan::new(&client.parameters(), shapes, slot_tables.clone(), options).unwrap();
    let packed = PackedTables::new(plan.clone(), tables.clone()).unwrap();
    let query = plan.encrypt_query(client, ids).unwrap();
    let query_bytes = query.to_bytes().unwrap().len();
    let mut times = Vec::new();
    let mut outputs = None;
    for _ in 0..runs {
        let start = Instant::now();
        outputs = Some(packed.lookup(&query, &OutputOrder::SlotMajor).unwrap());
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let decrypted = plan.decrypt_outputs(client, &outputs.unwrap()).unwrap();
    let expected: Vec<i64> = slot_tables
        .iter()
        .zip(ids)
        .flat_map(|(&t, &id)| tables[t].row(id))
        .collect();
    assert_eq!(
        decrypted, expected,
        "encrypted lookup differs from the table"
    );
    Measured {
        server_ms: times[times.len() / 2],
        query_bytes,
        query_glwes: plan.query_glwe_count(),
        products: packed.product_count(),
    }
}

fn report(name: &str, m: &Measured) {
    println!(
        "| {name} | {:.1} | {} | {:.1} | {} |",
        m.server_ms,
        m.query_glwes,
        m.query_bytes as f64 / 1024.0,
        m.products
    );
}

fn main() {
    let client = ClientKey::generate(ParameterSetId::default());
    println!(
        "parameter set {}, {} threads; server time = median of the runs, exact results checked",
        ParameterSetId::default(),
        rayon::current_num_threads()
    );
    println!("| lookup | server ms | query GLWEs | query KiB | GLWE x plaintext products |");
    println!("|---|---|---|---|---|");

    let ids: Vec<u64> = CRITEO.iter().map(|&v| v / 3).collect();
    let all: Vec<usize> = (0..26).collect();
    let digit_shapes: Vec<TableShape> = CRITEO
        .iter()
        .map(|&rows| TableShape::digits(rows, 16, 8, 127).unwrap())
        .collect();
    let digits = measure(
        &client,
        digit_shapes,
        all.clone(),
        PackingOptions::default(),
        &ids,
        9,
    );
    report("26 Criteo tables, digits p=8, d=16", &digits);
    let spread = PackingOptions {
        max_inputs_per_group: Some(256),
        scale_log: None,
    };
    let digit_shapes: Vec<TableShape> = CRITEO
        .iter()
        .map(|&rows| TableShape::digits(rows, 16, 8, 127).unwrap())
        .collect();
    let digits_spread = measure(&client, digit_shapes, all.clone(), spread, &ids, 9);
    report("same, groups of <= 256 inputs", &digits_spread);

    // Same tables capped at ONE_HOT_CAP rows, digits vs one-hot, side by side.
    let capped: Vec<u64> = CRITEO.iter().map(|&v| v.min(ONE_HOT_CAP)).collect();
    let capped_ids: Vec<u64> = capped.iter().map(|&v| v / 3).collect();
    let capped_digits: Vec<TableShape> = capped
        .iter()
        .map(|&rows| TableShape::digits(rows, 16, 8, 127).unwrap())
        .collect();
    let small_digits = measure(
        &client,
        capped_digits,
        all.clone(),
        PackingOptions::default(),
        &capped_ids,
        9,
    );
    report(
        &format!("26 tables capped at {ONE_HOT_CAP} rows, digits"),
        &small_digits,
    );
    let capped_one_hot: Vec<TableShape> = capped
        .iter()
        .map(|&rows| TableShape::one_hot(rows, 16, 127).unwrap())
        .collect();
    let one_hot = measure(
        &client,
        capped_one_hot,
        all,
        PackingOptions::default(),
        &capped_ids,
        3,
    );
    report(
        &format!("26 tables capped at {ONE_HOT_CAP} rows, one-hot"),
        &one_hot,
    );

    let capped_rows: u64 = capped.iter().sum();
    let full_rows: u64 = CRITEO.iter().sum();
    let per_row_ms = one_hot.server_ms / capped_rows as f64;
    println!();
    println!(
        "one-hot cost per table row: {:.4} us ({capped_rows} rows in {:.1} ms)",
        per_row_ms * 1e3,
        one_hot.server_ms
    );
    println!(
        "digits vs one-hot, measured at the reduced scale: {:.0}x",
        one_hot.server_ms / small_digits.server_ms
    );
    println!(
        "digits vs one-hot, full Criteo scale ({full_rows} rows, one-hot extrapolated to {:.1} s): {:.0}x",
        per_row_ms * full_rows as f64 / 1e3,
        per_row_ms * full_rows as f64 / digits.server_ms
    );
    println!();
    println!("| lookup | server ms | query GLWEs | query KiB | GLWE x plaintext products |");
    println!("|---|---|---|---|---|");
    let helrm = TableShape::digits(1 << 24, 50, 8, 127).unwrap();
    let helrm = measure(
        &client,
        vec![helrm],
        vec![0],
        PackingOptions::default(),
        &[12_345_678],
        9,
    );
    report("HE-LRM micro: p=8, l=8, d=50, 16.7M rows", &helrm);

    // MiniLM-shaped token table: 30522 x 384 one-hot (exact for any pretrained table).
    let minilm = TableShape::one_hot(30522, 384, 2047).unwrap();
    let token = measure(
        &client,
        vec![minilm],
        vec![0],
        PackingOptions::default(),
        &[2023],
        3,
    );
    report("MiniLM-shaped 30522 x 384, one token", &token);
    // A whole 128-token prompt (MiniLM's truncation length), distinct ids, one query.
    let prompt = 128;
    let ids: Vec<u64> = (0..prompt as u64)
        .map(|t| (2023 + 239 * t) % 30522)
        .collect();
    let tokens = measure(
        &client,
        vec![minilm],
        vec![0; prompt],
        PackingOptions::default(),
        &ids,
        1,
    );
    report(&format!("MiniLM-shaped, {prompt}-token prompt"), &tokens);
    println!(
        "MiniLM: {:.0} KiB upload per token; {prompt}-token prompt {:.2} s = {:.1} ms per token ({:.2}x the single-token lookup)",
        token.query_bytes as f64 / 1024.0,
        tokens.server_ms / 1e3,
        tokens.server_ms / prompt as f64,
        tokens.server_ms / prompt as f64 / token.server_ms
    );
}
