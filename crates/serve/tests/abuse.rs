//! Abuse tests: calls without a valid token are refused, a tenant cannot see, use or delete
//! another tenant's keys (they answer 404 as if absent), quotas answer their codes, one tenant
//! cannot hold more calls than its quota, open access is refused on a reachable address unless
//! asked for, connections beyond the cap wait, a panic inside an FHE job answers 500 while the
//! service goes on, and a killed upload leaves no key behind. Made-up methods and paths have
//! their own file (`metric_series.rs`), which measures the process's memory.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use fhe::{ClientKey, KeySeed, ParameterSetId};
use serve::{Access, DirectoryKeyStore, Limits, Quotas, RunningService, ServiceConfig, Tenants};

/// Two distinct compressed server keys (key generation is the slow part).
fn server_keys() -> &'static [Vec<u8>; 2] {
    static KEYS: OnceLock<[Vec<u8>; 2]> = OnceLock::new();
    KEYS.get_or_init(|| {
        [41u128, 43].map(|seed| {
            let client = ClientKey::from_seed(ParameterSetId::default(), KeySeed(seed));
            client
                .compressed_server_key(KeySeed(seed + 1))
                .to_bytes()
                .unwrap()
        })
    })
}

fn start(store: &std::path::Path, access: Access, limits: Limits) -> serve::Result<RunningService> {
    common::start_tiny(store, access, limits)
}

/// A call with `token` as its bearer token, if any: status and body.
fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let bearer = token.map(|token| format!("Bearer {token}"));
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    if let Some(bearer) = &bearer {
        all.push(("authorization", bearer));
    }
    common::call(addr, method, path, &all, body)
}

/// Status and error code.
fn code((status, body): (u16, String)) -> (u16, String) {
    (status, common::error_code(&body))
}

fn key_id(answer: &(u16, String)) -> String {
    let value: serde_json::Value = serde_json::from_str(&answer.1).unwrap();
    value["key_id"].as_str().unwrap().to_owned()
}

#[test]
fn tokens_are_required_and_tenants_never_see_each_others_keys() {
    let store = tempfile::tempdir().unwrap();
    let mut tenants = Tenants::default();
    let acme = tenants.add("acme", Quotas::default()).unwrap();
    let globex = tenants.add("globex", Quotas::default()).unwrap();
    let (acme, globex) = (acme.reveal().to_owned(), globex.reveal().to_owned());
    let service = start(store.path(), Access::Tenants(tenants), Limits::default()).unwrap();
    let addr = service.addr();
    let keys = server_keys();

    // Anonymous and wrongly authenticated calls: 401 on every /v1 route, probes stay open.
    let unauthenticated = (401, "unauthenticated".to_owned());
    for token in [None, Some("dlrmhe_0000"), Some("")] {
        assert_eq!(
            code(call(addr, "GET", "/v1/keys", token, &[], b"")),
            unauthenticated
        );
        assert_eq!(
            code(call(addr, "POST", "/v1/keys", token, &[], &keys[0])),
            unauthenticated
        );
        assert_eq!(
            code(call(addr, "GET", "/v1/models/tiny", token, &[], b"")),
            unauthenticated
        );
    }
    assert_eq!(call(addr, "GET", "/healthz", None, &[], b"").0, 200);

    // acme registers a key; globex cannot list, fetch, use or delete it.
    let registered = call(addr, "POST", "/v1/keys", Some(&acme), &[], &keys[0]);
    assert_eq!(registered.0, 201, "{}", registered.1);
    let id = key_id(&registered);
    let listed = call(addr, "GET", "/v1/keys", Some(&globex), &[], b"");
    assert_eq!(listed, (200, "[]".to_owned()));
    let unknown = (404, "unknown_key".to_owned());
    let path = format!("/v1/keys/{id}");
    assert_eq!(
        code(call(addr, "GET", &path, Some(&globex), &[], b"")),
        unknown
    );
    assert_eq!(
        code(call(addr, "DELETE", &path, Some(&globex), &[], b"")),
        unknown
    );
    let infer = "/v1/models/tiny/infer";
    let headers = [("x-key-id", id.as_str())];
    assert_eq!(
        code(call(addr, "POST", infer, Some(&globex), &headers, b"x")),
        unknown
    );
    // The same bytes registered by globex are globex's own key, apart from acme's.
    assert_eq!(
        call(addr, "POST", "/v1/keys", Some(&globex), &[], &keys[0]).0,
        201
    );
    assert_eq!(call(addr, "DELETE", &path, Some(&globex), &[], b"").0, 204);
    // acme's key is untouched.
    assert_eq!(call(addr, "GET", &path, Some(&acme), &[], b"").0, 200);
    let listed = call(addr, "GET", "/v1/keys", Some(&acme), &[], b"");
    assert!(listed.0 == 200 && listed.1.contains(&id), "{listed:?}");
    service.shutdown().unwrap();
}

#[test]
fn quotas_answer_their_codes() {
    let keys = server_keys();
    let key_bytes = keys[0].len() as u64;
    let store = tempfile::tempdir().unwrap();
    let mut tenants = Tenants::default();
    let one_key = Quotas {
        max_keys: 1,
        ..Quotas::default()
    };
    let small = Quotas {
        max_key_bytes: key_bytes - 1,
        ..Quotas::default()
    };
    let one_call = Quotas {
        max_concurrent_calls: 1,
        ..Quotas::default()
    };
    let one_key = tenants.add("one-key", one_key).unwrap();
    let small = tenants.add("small", small).unwrap();
    let one_call = tenants.add("one-call", one_call).unwrap();
    let limits = Limits {
        max_store_bytes: 3 * key_bytes,
        ..Limits::default()
    };
    let service = start(store.path(), Access::Tenants(tenants), limits).unwrap();
    let addr = service.addr();

    let post = |token: &str, key: &[u8]| call(addr, "POST", "/v1/keys", Some(token), &[], key);
    assert_eq!(post(one_key.reveal(), &keys[0]).0, 201);
    // The same key again is no new key.
    assert_eq!(post(one_key.reveal(), &keys[0]).0, 200);
    assert_eq!(
        code(post(one_key.reveal(), &keys[1])),
        (429, "key_quota".into())
    );
    assert_eq!(
        code(post(small.reveal(), &keys[0])),
        (413, "key_bytes_quota".into())
    );
    // The store-wide cap: three keys fit, a fourth does not, whoever sends it.
    assert_eq!(post(one_call.reveal(), &keys[0]).0, 201);
    assert_eq!(post(one_call.reveal(), &keys[1]).0, 201);
    let full = post(one_call.reveal(), &{
        let client = ClientKey::from_seed(ParameterSetId::default(), KeySeed(47));
        client
            .compressed_server_key(KeySeed(48))
            .to_bytes()
            .unwrap()
    });
    assert_eq!(code(full), (413, "store_full".into()));

    // One call of `one-call` uploading its body slowly: its second call is refused, another
    // tenant's call is not held back by it.
    let id = key_id(&post(one_call.reveal(), &keys[0]));
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(
        format!(
            "POST /v1/models/tiny/infer HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {}\r\nx-key-id: {id}\r\ncontent-length: 1000\r\n\r\n",
            one_call.reveal()
        )
        .as_bytes(),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let headers = [("x-key-id", id.as_str())];
    let busy = call(
        addr,
        "POST",
        "/v1/models/tiny/infer",
        Some(one_call.reveal()),
        &headers,
        b"x",
    );
    assert_eq!(code(busy), (429, "tenant_busy".into()));
    let other = call(addr, "GET", "/v1/keys", Some(one_key.reveal()), &[], b"");
    assert_eq!(other.0, 200);
    drop(slow);
    service.shutdown().unwrap();
}

#[test]
fn open_access_is_refused_on_a_reachable_address_unless_asked_for() {
    let store = tempfile::tempdir().unwrap();
    let config = |access| ServiceConfig {
        addr: "0.0.0.0:0".parse().unwrap(),
        limits: Limits::default(),
        access,
        tls: None,
        handle_signals: false,
    };
    let open = Arc::new(DirectoryKeyStore::open(store.path()).unwrap());
    let refused = RunningService::start(
        config(Access::Open {
            insecure_remote: false,
        }),
        open.clone(),
        vec![common::tiny()],
    );
    let error = refused
        .err()
        .expect("open access on 0.0.0.0 is refused")
        .to_string();
    assert!(error.contains("--tenants"), "{error}");
    let insecure = RunningService::start(
        config(Access::Open {
            insecure_remote: true,
        }),
        open.clone(),
        vec![common::tiny()],
    )
    .unwrap();
    insecure.shutdown().unwrap();
    let mut tenants = Tenants::default();
    tenants.add("acme", Quotas::default()).unwrap();
    let with_tenants =
        RunningService::start(config(Access::Tenants(tenants)), open, vec![common::tiny()])
            .unwrap();
    with_tenants.shutdown().unwrap();
}

#[test]
fn a_killed_upload_leaves_no_key_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = DirectoryKeyStore::open(dir.path()).unwrap();
    // What a process killed between writing and renaming leaves: a staged file.
    let staged = dir.path().join(".staging").join("0123.partial");
    std::fs::write(&staged, b"half a key").unwrap();
    drop(store);
    let store = DirectoryKeyStore::open(dir.path()).unwrap();
    assert!(!staged.exists());
    use serve::KeyStore;
    assert!(store.list(&serve::Owner::Open).unwrap().is_empty());
}

#[test]
fn connections_beyond_the_cap_wait_until_one_closes() {
    let store = tempfile::tempdir().unwrap();
    let open = Access::Open {
        insecure_remote: false,
    };
    let limits = Limits {
        max_connections: 2,
        ..Limits::default()
    };
    let service = start(store.path(), open, limits).unwrap();
    let addr = service.addr();
    // Two clients hold every place with headers they never finish.
    let mut holders: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nhost: te")
                .unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // A third is connected by the operating system but not served while they stay.
    let mut waiting = TcpStream::connect(addr).unwrap();
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
        .unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(waiting.read(&mut byte).is_err(), "served beyond the cap");
    // One holder leaves: the waiting client is served.
    drop(holders.pop());
    waiting
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut answer = Vec::new();
    waiting.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(holders);
    service.shutdown().unwrap();
}

/// A directory store whose first key load panics: a bug inside an FHE job, injected through
/// the public store trait (loading the key is the job's first step).
struct PanicOnFirstLoad {
    inner: DirectoryKeyStore,
    panicked: std::sync::atomic::AtomicBool,
}

impl serve::KeyStore for PanicOnFirstLoad {
    fn put(
        &self,
        owner: &serve::Owner,
        id: &serve::KeyId,
        set: ParameterSetId,
        bytes: &[u8],
    ) -> serve::Result<bool> {
        self.inner.put(owner, id, set, bytes)
    }
    fn entry(
        &self,
        owner: &serve::Owner,
        id: &serve::KeyId,
    ) -> serve::Result<Option<serve::KeyEntry>> {
        self.inner.entry(owner, id)
    }
    fn load(
        &self,
        owner: &serve::Owner,
        id: &serve::KeyId,
    ) -> serve::Result<Option<(ParameterSetId, Vec<u8>)>> {
        if !self
            .panicked
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            panic!("injected: a bug in an FHE job");
        }
        self.inner.load(owner, id)
    }
    fn delete(&self, owner: &serve::Owner, id: &serve::KeyId) -> serve::Result<bool> {
        self.inner.delete(owner, id)
    }
    fn list(&self, owner: &serve::Owner) -> serve::Result<Vec<serve::KeyEntry>> {
        self.inner.list(owner)
    }
    fn totals(&self) -> serve::Result<(usize, u64)> {
        self.inner.totals()
    }
}

#[test]
fn an_injected_panic_answers_500_and_the_next_call_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(PanicOnFirstLoad {
        inner: DirectoryKeyStore::open(dir.path()).unwrap(),
        panicked: std::sync::atomic::AtomicBool::new(false),
    });
    let config = ServiceConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        limits: Limits {
            fhe_threads: 1,
            ..Limits::default()
        },
        access: Access::Open {
            insecure_remote: false,
        },
        tls: None,
        handle_signals: false,
    };
    let service = RunningService::start(config, store, vec![common::tiny()]).unwrap();
    let addr = service.addr();
    let keys = common::keys();
    let id = key_id(&call(
        addr,
        "POST",
        "/v1/keys",
        None,
        &[],
        &keys.server_bytes,
    ));
    let model = infer::testing::tiny_model();
    let interface = infer::ModelInterface::for_model(&model, ParameterSetId::default()).unwrap();
    let (dense, ids) = ([0.5f32, -1.0], [3u32, 7]);
    let request = infer::encrypt_request(&keys.client, &interface, &dense, &ids)
        .unwrap()
        .to_bytes()
        .unwrap();
    let headers = [("x-key-id", id.as_str())];
    let infer = "/v1/models/tiny/infer";
    assert_eq!(
        code(call(addr, "POST", infer, None, &headers, &request)),
        (500, "internal".into())
    );
    // The same call again, on the same single-thread pool: answered, and right.
    let client = client::Client::new(keys.client.clone(), interface).unwrap();
    let answer = client::ServiceClient::new(&service.url(), Duration::from_secs(120))
        .unwrap()
        .infer("tiny", &id, &request)
        .unwrap();
    let prediction = client.decrypt_bytes(&answer.bytes).unwrap();
    let reference = model.forward(&model.quantize_input(&dense), &ids).unwrap();
    assert_eq!(prediction.logit_numerator, reference);
    assert_eq!(call(addr, "GET", "/healthz", None, &[], b"").0, 200);
    service.shutdown().unwrap();
}
