//! A blocking HTTP client of `dlrm-he serve` (the `/v1` API): registers the server key, fetches
//! a model's interface and sends encrypted requests. It sends only public material. `https://`
//! URLs use rustls, trusting Mozilla's roots or only a CA certificate the caller gives.

use std::time::Duration;

use fhe::{CompressedServerKey, ParameterSetId};
use infer::{ModelInterface, StageTimings};
use serde::Deserialize;

use crate::error::{ClientError, Result};

/// The header naming the registered key (the service's `serve::KEY_HEADER`).
const KEY_HEADER: &str = "x-key-id";
/// Largest JSON or ciphertext answer read from a service.
const MAX_ANSWER_BYTES: u64 = 64 << 20;
/// Largest answer to a ranked request read from a service: one 16 KiB ciphertext per
/// candidate, up to the 65,536 candidates a service may be configured to take
/// (`serve::MAX_CANDIDATES`), and the frame.
const MAX_RANK_ANSWER_BYTES: u64 = (1 << 30) + (1 << 20);

/// A connection to one service.
pub struct ServiceClient {
    base: String,
    timeout: Duration,
    agent: ureq::Agent,
    /// `Authorization` header value of every `/v1` call, for a service with tenants.
    authorization: Option<String>,
}

/// The answer to one inference call.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// The encrypted response (an [`infer::Response`]).
    pub bytes: Vec<u8>,
    /// The server's time per stage, from its `server-timing` header.
    pub stages: Option<StageTimings>,
}

/// Reads `decode;dur=1.2, bottom;dur=3.4, ...` (milliseconds) into stage timings.
fn parse_server_timing(text: &str) -> Option<StageTimings> {
    let mut timings = StageTimings::default();
    for entry in text.split(',') {
        let (name, duration) = entry.trim().split_once(";dur=")?;
        let duration = Duration::from_secs_f64(duration.parse::<f64>().ok()?.max(0.0) / 1e3);
        // Stages this build does not know are skipped.
        timings.set(name.trim(), duration);
    }
    Some(timings)
}

/// An agent bounding each call by `timeout`, answering every status (errors are read as JSON).
fn agent(timeout: Duration, tls: ureq::tls::TlsConfig) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .tls_config(tls)
        .build()
        .new_agent()
}

/// A call that got no answer: a TLS failure (an untrusted certificate above all) says so, since
/// it is fixed on the client's side, unlike a service that is down.
fn unanswered(url: &str, error: ureq::Error) -> ClientError {
    let tls = match &error {
        ureq::Error::Rustls(tls) => Some(tls),
        ureq::Error::Io(io) => io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()),
        _ => None,
    };
    let (code, message) = match tls {
        Some(rustls::Error::InvalidCertificate(reason)) => (
            "untrusted_certificate",
            format!(
                "{url}: the service's TLS certificate is not trusted ({reason:?}): give the \
                 client the CA certificate that signed it (the command line's `--ca CA.pem`)"
            ),
        ),
        Some(tls) => (
            "tls",
            format!("{url}: TLS handshake failed: {tls} (is the service serving https?)"),
        ),
        None => ("unreachable", format!("{url}: {error}")),
    };
    ClientError::Service {
        status: 0,
        code: code.into(),
        message,
    }
}

/// A key the service registered.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct RegisteredKey {
    /// The id the service gave the key (a hash of its parameter set and bytes), used in requests.
    pub key_id: String,
    /// The parameter set the key was made for.
    pub parameter_set: ParameterSetId,
    /// Size of the compressed key as uploaded.
    pub bytes: u64,
    /// False when the service already had it.
    pub created: bool,
}

#[derive(Deserialize)]
struct Description {
    interface: serde_json::Value,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

impl ServiceClient {
    /// A client of the service at `base` (e.g. `http://127.0.0.1:8080`, or `https://` with a
    /// certificate signed by one of Mozilla's roots; see [`Self::with_ca`] otherwise); `timeout`
    /// bounds each call.
    ///
    /// ```
    /// let service = client::ServiceClient::new("http://127.0.0.1:8080", std::time::Duration::from_secs(60));
    /// assert!(client::ServiceClient::new("127.0.0.1:8080", std::time::Duration::from_secs(1)).is_err());
    /// ```
    pub fn new(base: &str, timeout: Duration) -> Result<Self> {
        let base = base.trim_end_matches('/');
        if !base.starts_with("http://") && !base.starts_with("https://") {
            return Err(ClientError::Service {
                status: 0,
                code: "bad_url".into(),
                message: format!("`{base}`: the service URL must start with http:// or https://"),
            });
        }
        Ok(ServiceClient {
            base: base.to_owned(),
            timeout,
            agent: agent(timeout, ureq::tls::TlsConfig::default()),
            authorization: None,
        })
    }

    /// Trusts only the CA certificates in `ca_pem` (PEM, one or more `BEGIN CERTIFICATE`
    /// sections) for the service's certificate, instead of Mozilla's roots: a private CA, or a
    /// self-signed server certificate itself. Only for an `https://` URL.
    pub fn with_ca(mut self, ca_pem: &[u8]) -> Result<Self> {
        if !self.base.starts_with("https://") {
            return Err(ClientError::Service {
                status: 0,
                code: "bad_url".into(),
                message: format!(
                    "`{}`: a CA certificate is only used with an https:// URL",
                    self.base
                ),
            });
        }
        let mut certificates = Vec::new();
        for item in ureq::tls::parse_pem(ca_pem) {
            // A key or anything else in the file is not a trust anchor.
            if let ureq::tls::PemItem::Certificate(certificate) =
                item.map_err(|e| ClientError::BadCa(e.to_string()))?
            {
                certificates.push(certificate);
            }
        }
        if certificates.is_empty() {
            return Err(ClientError::BadCa(
                "no certificate (expected a PEM `BEGIN CERTIFICATE` section)".into(),
            ));
        }
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::new_with_certs(&certificates))
            .build();
        self.agent = agent(self.timeout, tls);
        Ok(self)
    }

    /// Sends `token` (from `dlrm-he token add`) as the bearer token of every call, for a
    /// service started with tenants.
    pub fn with_token(mut self, token: &str) -> Self {
        self.authorization = Some(format!("Bearer {}", token.trim()));
        self
    }

    /// `request` with the bearer token, if the client has one.
    fn authorized<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.authorization {
            Some(value) => request.header("authorization", value),
            None => request,
        }
    }

    /// Registers a compressed server key; the id names it in inference calls.
    pub fn register_key(&self, key: &CompressedServerKey) -> Result<RegisteredKey> {
        let url = format!(
            "{}/v1/keys?parameter_set={}",
            self.base,
            key.parameter_set().name()
        );
        let bytes = key.to_bytes()?;
        let response = self
            .authorized(self.agent.post(&url))
            .content_type("application/octet-stream")
            .send(&bytes[..]);
        let body = self.answer(&url, response)?;
        serde_json::from_slice(&body).map_err(|e| self.bad_answer(&url, e))
    }

    /// The interface of the model `name` (validated), to build requests with.
    pub fn model_interface(&self, name: &str) -> Result<ModelInterface> {
        let url = format!("{}/v1/models/{name}", self.base);
        let response = self.authorized(self.agent.get(&url)).call();
        let body = self.answer(&url, response)?;
        let description: Description =
            serde_json::from_slice(&body).map_err(|e| self.bad_answer(&url, e))?;
        let interface =
            serde_json::to_vec(&description.interface).map_err(|e| self.bad_answer(&url, e))?;
        Ok(ModelInterface::from_json(&interface)?)
    }

    /// Runs one encrypted request (the bytes of an [`infer::Request`]) with the key `key_id`;
    /// returns the encrypted response's bytes and the server's stage timings.
    pub fn infer(&self, model: &str, key_id: &str, request: &[u8]) -> Result<Answer> {
        let url = format!("{}/v1/models/{model}/infer", self.base);
        self.timed_answer(&url, key_id, request, MAX_ANSWER_BYTES)
    }

    /// Runs one ranked request (the bytes of an [`infer::RankRequest`]: the user's encrypted
    /// private inputs and the candidates' public ids) with the key `key_id`; returns the
    /// encrypted answer's bytes (one numerator per candidate, for
    /// [`Client::decrypt_rank_bytes`](crate::Client::decrypt_rank_bytes)) and the server's
    /// stage timings. A service refuses more candidates than its `max_candidates` with 413
    /// `too_many_candidates`, and a model without public tables with 400 `no_public_tables`.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), client::ClientError> {
    /// let keys = client::KeyDirectory::open("my-keys".as_ref())?;
    /// let http = client::ServiceClient::new("http://127.0.0.1:8080", std::time::Duration::from_secs(600))?;
    /// let key_id = http.register_key(&keys.load_server_key()?)?.key_id;
    /// // A model whose table 0 is private and table 1 public.
    /// let client = client::Client::new(keys.load_client_key()?, http.model_interface("shop")?)?;
    /// let candidates = vec![vec![1], vec![7], vec![4]];
    /// let request = client.encrypt_rank(&[0.5, -1.0], &[3], &candidates)?;
    /// let answer = http.rank("shop", &key_id, &request.to_bytes()?)?;
    /// let predictions = client.decrypt_rank_bytes(&answer.bytes, candidates.len())?;
    /// println!("best: {:?}", candidates[client::ranking(&predictions)[0]]);
    /// # Ok(()) }
    /// ```
    pub fn rank(&self, model: &str, key_id: &str, request: &[u8]) -> Result<Answer> {
        let url = format!("{}/v1/models/{model}/rank", self.base);
        self.timed_answer(&url, key_id, request, MAX_RANK_ANSWER_BYTES)
    }

    /// Posts `request` with the key `key_id` and reads the answer (at most `limit` bytes) with
    /// the stages of its `server-timing` header.
    fn timed_answer(&self, url: &str, key_id: &str, request: &[u8], limit: u64) -> Result<Answer> {
        let response = self.post_binary(url, key_id, request);
        let stages = response
            .as_ref()
            .ok()
            .and_then(|r| r.headers().get("server-timing"))
            .and_then(|v| v.to_str().ok())
            .and_then(parse_server_timing);
        let bytes = self.answer_within(url, response, limit)?;
        Ok(Answer { bytes, stages })
    }

    /// Runs several requests in one call; the responses come back in order.
    pub fn infer_batch(
        &self,
        model: &str,
        key_id: &str,
        requests: &[Vec<u8>],
    ) -> Result<Vec<Vec<u8>>> {
        let url = format!("{}/v1/models/{model}/infer-batch", self.base);
        let response = self.post_binary(&url, key_id, &infer::encode_batch(requests));
        let body = self.answer(&url, response)?;
        let items = infer::decode_batch(&body, requests.len())?;
        if items.len() != requests.len() {
            return Err(self.bad_answer(
                &url,
                format!("{} responses to {} requests", items.len(), requests.len()),
            ));
        }
        Ok(items.into_iter().map(<[u8]>::to_vec).collect())
    }

    fn post_binary(
        &self,
        url: &str,
        key_id: &str,
        body: &[u8],
    ) -> std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        self.authorized(self.agent.post(url))
            .header(KEY_HEADER, key_id)
            .content_type("application/octet-stream")
            .send(body)
    }

    /// The body of a successful answer, or the service's JSON error as a [`ClientError`].
    fn answer(
        &self,
        url: &str,
        response: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Vec<u8>> {
        self.answer_within(url, response, MAX_ANSWER_BYTES)
    }

    /// [`Self::answer`], reading at most `limit` bytes.
    fn answer_within(
        &self,
        url: &str,
        response: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        limit: u64,
    ) -> Result<Vec<u8>> {
        let mut response = response.map_err(|e| unanswered(url, e))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| self.bad_answer(url, e))?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let (code, message) = match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(ErrorBody { error }) => (error.code, error.message),
            Err(_) => (
                "http".to_owned(),
                String::from_utf8_lossy(&body).chars().take(200).collect(),
            ),
        };
        Err(ClientError::Service {
            status,
            code,
            message: format!("{url}: {message}"),
        })
    }

    fn bad_answer(&self, url: &str, reason: impl std::fmt::Display) -> ClientError {
        ClientError::Service {
            status: 0,
            code: "bad_answer".into(),
            message: format!("{url}: {reason}"),
        }
    }
}
