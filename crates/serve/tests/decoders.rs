//! Property tests of the decoders the service runs on untrusted bytes: requests, request
//! batches and compressed server keys. Random bytes, truncations and corruptions of valid
//! inputs must be refused with an error, never a panic; valid inputs must round-trip.

use std::sync::OnceLock;

use fhe::{ClientKey, CompressedServerKey, KeySeed, ParameterSetId};
use infer::{ModelInterface, Request, decode_batch, encode_batch, encrypt_request};
use proptest::prelude::*;

struct Fixture {
    interface: ModelInterface,
    request: Vec<u8>,
    key: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let set = ParameterSetId::default();
        let interface = ModelInterface::for_model(&infer::testing::tiny_model(), set).unwrap();
        let client = ClientKey::from_seed(set, KeySeed(41));
        let request = encrypt_request(&client, &interface, &[0.5, -1.0], &[3, 7])
            .unwrap()
            .to_bytes()
            .unwrap();
        let key = client
            .compressed_server_key(KeySeed(42))
            .to_bytes()
            .unwrap();
        Fixture {
            interface,
            request,
            key,
        }
    })
}

#[test]
fn valid_inputs_decode() {
    let f = fixture();
    assert!(Request::from_bytes(&f.request, &f.interface).is_ok());
    assert!(CompressedServerKey::from_bytes(&f.key, ParameterSetId::default()).is_ok());
    let batch = encode_batch(&[f.request.clone(), f.request.clone()]);
    assert_eq!(decode_batch(&batch, 2).unwrap().len(), 2);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_are_not_a_request(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        prop_assert!(Request::from_bytes(&bytes, &fixture().interface).is_err());
    }

    #[test]
    fn a_truncated_request_is_refused(cut in 0usize..1 << 20) {
        let f = fixture();
        let cut = cut % f.request.len();
        prop_assert!(Request::from_bytes(&f.request[..cut], &f.interface).is_err());
    }

    #[test]
    fn a_corrupted_request_never_panics(position in 0usize..1 << 20, xor in 1u8..=255) {
        let f = fixture();
        let mut bytes = f.request.clone();
        let position = position % bytes.len();
        bytes[position] ^= xor;
        // Corrupting a ciphertext body may still decode (it is then just another ciphertext);
        // corrupting the framing must not panic.
        let _ = Request::from_bytes(&bytes, &f.interface);
    }

    #[test]
    fn batches_round_trip_and_refuse_damage(
        items in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..8),
        cut in 0usize..1 << 16,
        noise in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let bytes = encode_batch(&items);
        let decoded = decode_batch(&bytes, 8).unwrap();
        prop_assert_eq!(decoded, items.iter().map(Vec::as_slice).collect::<Vec<_>>());
        let cut = cut % bytes.len();
        prop_assert!(decode_batch(&bytes[..cut], 8).is_err());
        prop_assert!(decode_batch(&bytes, items.len() - 1).is_err());
        let _ = decode_batch(&noise, 8);
    }
}

proptest! {
    // Each case decodes up to a whole 29 MiB key.
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn random_bytes_are_not_a_key(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        prop_assert!(CompressedServerKey::from_bytes(&bytes, ParameterSetId::default()).is_err());
    }

    #[test]
    fn a_truncated_key_is_refused(cut in 0usize..1 << 30) {
        let key = &fixture().key;
        let cut = cut % key.len();
        prop_assert!(CompressedServerKey::from_bytes(&key[..cut], ParameterSetId::default()).is_err());
    }

    #[test]
    fn a_corrupted_key_header_never_panics(position in 0usize..512, xor in 1u8..=255) {
        let mut bytes = fixture().key.clone();
        bytes[position] ^= xor;
        let _ = CompressedServerKey::from_bytes(&bytes, ParameterSetId::default());
    }
}
