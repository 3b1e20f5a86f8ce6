//! Packed answers across the wire: key versions, the packed format's limits and refusals.

use fhe::{
    ClientKey, CompressedServerKey, Encoding, FheError, KeySeed, PackedLwes, ParameterSetId,
    ScaleLog,
};

/// A client key written by the first version of the format (no packing key), from the demo.
const CLIENT_KEY_V0: &[u8] = include_bytes!("fixtures/client_key_v0.bin");

#[test]
fn a_first_version_client_key_still_reads_and_says_it_cannot_unpack() {
    let key = ClientKey::from_bytes(CLIENT_KEY_V0, ParameterSetId::default()).unwrap();
    assert!(!key.can_unpack());
    let encoding = Encoding::new(ScaleLog(40)).unwrap();
    let lwes = key.encrypt_lwe_batch(&[3, -9], encoding).unwrap();
    assert_eq!(key.decrypt_lwe_batch(&lwes, encoding).unwrap(), vec![3, -9]);
    let err = key
        .compressed_server_key_with_packing(KeySeed(1))
        .err()
        .unwrap();
    assert!(matches!(err, FheError::InvalidArgument(_)), "{err}");
    // Written again, it is a second-version key that still cannot unpack.
    let again = ClientKey::from_bytes(&key.to_bytes().unwrap(), ParameterSetId::default()).unwrap();
    assert!(!again.can_unpack());
}

#[test]
fn packed_answers_round_trip_and_refuse_wrong_counts_and_truncation() {
    let client = ClientKey::from_seed(ParameterSetId::default(), KeySeed(5));
    let compressed = client
        .compressed_server_key_with_packing(KeySeed(6))
        .unwrap();
    let bytes = compressed.to_bytes().unwrap();
    assert!(bytes.len() as u64 <= CompressedServerKey::max_bytes(ParameterSetId::default()));
    let compressed = CompressedServerKey::from_bytes(&bytes, ParameterSetId::default()).unwrap();
    assert!(compressed.has_packing_key());
    let server = compressed.decompress();
    assert!(server.has_packing_key());

    let encoding = Encoding::new(ScaleLog(57)).unwrap();
    let values: Vec<i64> = (0..10).map(|v| v - 5).collect();
    let packed = server
        .pack(&client.encrypt_lwe_batch(&values, encoding).unwrap())
        .unwrap();
    let wire = packed.to_bytes().unwrap();
    let packing = ParameterSetId::default().parameters().packing().unwrap();
    assert!(
        wire.len() < packing.glwe_bytes() + 1024,
        "{} bytes",
        wire.len()
    );
    let back = PackedLwes::from_bytes(&wire, ParameterSetId::default(), 10).unwrap();
    assert_eq!(back.len(), 10);
    assert_eq!(client.decrypt_packed(&back, encoding).unwrap(), values);

    // More values than the reader expects, a cut message, another parameter set.
    assert!(PackedLwes::from_bytes(&wire, ParameterSetId::default(), 9).is_err());
    assert!(
        PackedLwes::from_bytes(&wire[..wire.len() - 8], ParameterSetId::default(), 10).is_err()
    );
    let other = ParameterSetId::ALL[1];
    assert!(PackedLwes::from_bytes(&wire, other, 10).is_err());

    // Nothing to pack is refused, not packed into an empty list.
    let empty = client.encrypt_lwe_batch(&[], encoding).unwrap();
    assert!(matches!(
        server.pack(&empty),
        Err(FheError::InvalidArgument(_))
    ));

    // A key without packing key cannot pack.
    let plain = client.compressed_server_key(KeySeed(7)).decompress();
    assert!(!plain.has_packing_key());
    let lwes = client.encrypt_lwe_batch(&values, encoding).unwrap();
    assert!(matches!(
        plain.pack(&lwes),
        Err(FheError::InvalidArgument(_))
    ));
}
