//! Encrypted lookups against the plaintext tables: exact for every mode, layout and id.

use std::sync::OnceLock;

use embed::{
    EmbedError, EmbeddingTable, LookupPlan, OutputOrder, OutputRef, PackedTables, PackingOptions,
    TableShape,
};
use fhe::{ClientKey, KeySeed, ParameterSetId};

fn client() -> &'static ClientKey {
    static KEY: OnceLock<ClientKey> = OnceLock::new();
    KEY.get_or_init(|| ClientKey::from_seed(ParameterSetId::default(), KeySeed(42)))
}

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 11
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

fn random_table(shape: TableShape, rng: &mut Lcg) -> EmbeddingTable {
    let bound = shape.max_abs_value;
    let entries = shape.input_len() * shape.dim;
    let values = (0..entries)
        .map(|_| rng.below(2 * bound as u64 + 1) as i64 - bound)
        .collect();
    EmbeddingTable::new(shape, values).unwrap()
}

/// Ids 0, V-1 and random ones, one per lookup, for `rounds` queries.
fn id_sets(plan: &LookupPlan, slot_tables: &[usize], rng: &mut Lcg) -> Vec<Vec<u64>> {
    let rows = |slot: usize| plan.shapes()[slot_tables[slot]].rows;
    let count = slot_tables.len();
    vec![
        vec![0; count],
        (0..count).map(|s| rows(s) - 1).collect(),
        (0..count).map(|s| rng.below(rows(s))).collect(),
    ]
}

fn expected_outputs(
    tables: &[EmbeddingTable],
    slot_tables: &[usize],
    ids: &[u64],
    order: &[OutputRef],
) -> Vec<i64> {
    order
        .iter()
        .map(|r| tables[slot_tables[r.slot]].row(ids[r.slot])[r.component])
        .collect()
}

/// Builds plan and tables, runs every id set through an encrypted lookup in `order`, and
/// compares with the plaintext rows.
fn check_lookups(
    shapes: Vec<TableShape>,
    slot_tables: Vec<usize>,
    options: PackingOptions,
    order: OutputOrder,
    seed: u64,
) -> LookupPlan {
    let key = client();
    let mut rng = Lcg(seed);
    let tables: Vec<EmbeddingTable> = shapes.iter().map(|&s| random_table(s, &mut rng)).collect();
    let plan = LookupPlan::new(&key.parameters(), shapes, slot_tables.clone(), options).unwrap();
    let packed = PackedTables::new(plan.clone(), tables.clone()).unwrap();
    let refs = order.resolve(&plan).unwrap();
    for ids in id_sets(&plan, &slot_tables, &mut rng) {
        let query = plan.encrypt_query(key, &ids).unwrap();
        let outputs = packed.lookup(&query, &order).unwrap();
        assert_eq!(outputs.len(), refs.len());
        let decrypted = plan.decrypt_outputs(key, &outputs).unwrap();
        assert_eq!(
            decrypted,
            expected_outputs(&tables, &slot_tables, &ids, &refs),
            "ids {ids:?}"
        );
    }
    plan
}

#[test]
fn one_hot_tables_of_awkward_sizes_are_exact_table_major() {
    // Sizes that are multiples of nothing in particular; 2500 rows span two ciphertexts.
    let shapes = vec![
        TableShape::one_hot(1, 3, 127).unwrap(),
        TableShape::one_hot(7, 1, 127).unwrap(),
        TableShape::one_hot(131, 5, 127).unwrap(),
        TableShape::one_hot(2500, 16, 127).unwrap(),
    ];
    let plan = check_lookups(
        shapes,
        vec![0, 1, 2, 3],
        PackingOptions::default(),
        OutputOrder::SlotMajor,
        1,
    );
    assert_eq!(plan.output_count(), 3 + 1 + 5 + 16);
}

#[test]
fn criteo_shaped_digit_tables_are_exact_in_one_ciphertext() {
    let cardinalities = [
        1460u64, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194, 27,
        14992, 5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105, 142572,
    ];
    let shapes: Vec<TableShape> = cardinalities
        .iter()
        .map(|&rows| TableShape::digits(rows, 16, 8, 127).unwrap())
        .collect();
    let plan = check_lookups(
        shapes,
        (0..26).collect(),
        PackingOptions::default(),
        OutputOrder::SlotMajor,
        2,
    );
    assert_eq!(plan.query_glwe_count(), 1);
}

#[test]
fn mixed_modes_in_component_major_and_custom_orders() {
    let shapes = vec![
        TableShape::digits(1000, 4, 10, 500).unwrap(),
        TableShape::one_hot(37, 3, 1000).unwrap(),
        TableShape::digits(50_000, 6, 37, 50).unwrap(),
    ];
    check_lookups(
        shapes.clone(),
        vec![0, 1, 2],
        PackingOptions::default(),
        OutputOrder::ComponentMajor,
        3,
    );
    let custom = OutputOrder::Custom(vec![
        OutputRef {
            slot: 2,
            component: 5,
        },
        OutputRef {
            slot: 0,
            component: 0,
        },
        OutputRef {
            slot: 2,
            component: 5,
        },
        OutputRef {
            slot: 1,
            component: 2,
        },
    ]);
    check_lookups(shapes, vec![0, 1, 2], PackingOptions::default(), custom, 4);
}

#[test]
fn repeated_lookups_in_small_groups_share_matrices() {
    // A "prompt" of 9 lookups into one table plus one into another, 3 lookups per group.
    let shapes = vec![
        TableShape::one_hot(300, 8, 127).unwrap(),
        TableShape::digits(90_000, 2, 30, 127).unwrap(),
    ];
    let mut slots = vec![0; 9];
    slots.push(1);
    let options = PackingOptions {
        max_inputs_per_group: Some(900),
        scale_log: None,
    };
    let plan = check_lookups(shapes, slots, options, OutputOrder::SlotMajor, 5);
    assert_eq!(plan.query_glwe_count(), 4);
}

#[test]
fn packed_outputs_hold_the_same_values_as_extracted_ones() {
    let key = client();
    let mut rng = Lcg(6);
    let shapes = vec![
        TableShape::one_hot(10, 3, 127).unwrap(),
        TableShape::digits(500, 2, 8, 127).unwrap(),
    ];
    let tables: Vec<EmbeddingTable> = shapes.iter().map(|&s| random_table(s, &mut rng)).collect();
    let plan =
        LookupPlan::one_lookup_per_table(&key.parameters(), shapes, PackingOptions::default())
            .unwrap();
    let packed = PackedTables::new(plan.clone(), tables.clone()).unwrap();
    let ids = [9, 321];
    let query = plan.encrypt_query(key, &ids).unwrap();
    let outputs = packed
        .lookup_packed(&query, &OutputOrder::SlotMajor)
        .unwrap();
    let coefficients = key
        .decrypt_glwe_batch(&outputs.glwes, plan.encoding())
        .unwrap();
    let n = key.parameters().polynomial_size().0;
    let values: Vec<i64> = outputs
        .slots
        .iter()
        .map(|s| coefficients[s.glwe * n + s.coefficient])
        .collect();
    let refs = OutputOrder::SlotMajor.resolve(&plan).unwrap();
    assert_eq!(values, expected_outputs(&tables, &[0, 1], &ids, &refs));
}

#[test]
fn bad_input_is_rejected_with_typed_errors() {
    let key = client();
    let shapes = vec![
        TableShape::one_hot(10, 2, 5).unwrap(),
        TableShape::one_hot(3000, 2, 5).unwrap(),
    ];
    let plan = LookupPlan::one_lookup_per_table(
        &key.parameters(),
        shapes.clone(),
        PackingOptions::default(),
    )
    .unwrap();
    assert!(matches!(
        plan.encode_query(&[10, 0]),
        Err(EmbedError::IdOutOfRange {
            slot: 0,
            id: 10,
            rows: 10
        })
    ));
    assert!(matches!(
        plan.encode_query(&[0]),
        Err(EmbedError::SizeMismatch { .. })
    ));
    let tables = vec![
        EmbeddingTable::new(shapes[0], vec![1; 20]).unwrap(),
        EmbeddingTable::new(shapes[1], vec![-5; 6000]).unwrap(),
    ];
    assert!(matches!(
        EmbeddingTable::new(shapes[0], vec![6; 20]),
        Err(EmbedError::ValueBeyondBound { .. })
    ));
    let packed = PackedTables::new(plan.clone(), tables).unwrap();
    // A query made for another plan has the wrong number of ciphertexts.
    let small_plan = LookupPlan::one_lookup_per_table(
        &key.parameters(),
        vec![shapes[0]],
        PackingOptions::default(),
    )
    .unwrap();
    let wrong_query = small_plan.encrypt_query(key, &[1]).unwrap();
    assert!(matches!(
        packed.lookup(&wrong_query, &OutputOrder::SlotMajor),
        Err(EmbedError::SizeMismatch { .. })
    ));
    let query = plan.encrypt_query(key, &[1, 2]).unwrap();
    let out_of_range = OutputOrder::Custom(vec![OutputRef {
        slot: 2,
        component: 0,
    }]);
    assert!(packed.lookup(&query, &out_of_range).is_err());
    // A scale too small for the worst-case noise is refused up front.
    let too_small = PackingOptions {
        max_inputs_per_group: None,
        scale_log: Some(20),
    };
    assert!(matches!(
        LookupPlan::one_lookup_per_table(&key.parameters(), shapes, too_small),
        Err(EmbedError::NoExactEncoding { .. })
    ));
}
