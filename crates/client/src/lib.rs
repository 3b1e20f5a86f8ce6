//! The client side of the protocol: key generation and key files, request encryption from raw
//! rows (vocabulary and digit mapping on the client) and response decryption to a probability.
//! It must never hold server-only state (weights, tables) or send a secret key.
//! [`ServiceClient`] talks to `dlrm-he serve` over HTTP or HTTPS.
//!
//! ```no_run
//! # fn main() -> Result<(), client::ClientError> {
//! use std::path::Path;
//! let keys = client::KeyDirectory::generate(Path::new("keys"), fhe::ParameterSetId::default())?;
//! let model = infer::testing::tiny_model();
//! let interface = infer::ModelInterface::for_model(&model, keys.parameter_set)?;
//! let client = client::Client::new(keys.load_client_key()?, interface)?;
//! let request = client.encrypt(&[0.5, -1.0], &[3, 7])?;
//! # Ok(()) }
//! ```

mod error;
mod http;
mod keys;

use datasets::{MappedRow, RowMapper};
use fhe::ClientKey;
use infer::{ModelInterface, RankRequest, RankResponse, Request, Response};

pub use error::{ClientError, Result};
pub use http::{Answer, RegisteredKey, ServiceClient};
pub use keys::{CLIENT_KEY_FILE, KEYS_FILE, KeyDirectory, SERVER_KEY_FILE};

/// A decrypted answer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prediction {
    /// The output layer's accumulator, rounded to its integer grid (never the raw phase:
    /// [`infer::decrypt_response`]).
    pub logit_numerator: i64,
    /// `logit_numerator` times the model's logit scale.
    pub logit: f64,
    /// The sigmoid of `logit`.
    pub probability: f64,
}

/// A client of one model: its secret key and the model's public interface.
pub struct Client {
    key: ClientKey,
    interface: ModelInterface,
}

impl Client {
    /// A client for `interface`, refusing a key of another parameter set.
    pub fn new(key: ClientKey, interface: ModelInterface) -> Result<Self> {
        interface.validate()?;
        if key.parameters().id() != interface.parameter_set {
            return Err(fhe::FheError::ParameterSetMismatch {
                expected: interface.parameter_set,
                found: key.parameters().id(),
            }
            .into());
        }
        Ok(Client { key, interface })
    }

    /// The model interface the client encrypts for.
    pub fn interface(&self) -> &ModelInterface {
        &self.interface
    }

    /// Encrypts one row of dense features and categorical ids.
    pub fn encrypt(&self, dense: &[f32], ids: &[u32]) -> Result<Request> {
        Ok(infer::encrypt_request(
            &self.key,
            &self.interface,
            dense,
            ids,
        )?)
    }

    /// Maps one raw line (the dataset's own format) with the dataset's vocabularies and
    /// transforms, then encrypts it. Unknown categorical values become the reserved id 0.
    pub fn encrypt_line(&self, mapper: &RowMapper, line: &[u8]) -> Result<(Request, MappedRow)> {
        let row = mapper.map_line(line).map_err(ClientError::Row)?;
        let request = self.encrypt(&row.dense, &row.ids)?;
        Ok((request, row))
    }

    /// Decrypts a response into a probability.
    pub fn decrypt(&self, response: &Response) -> Result<Prediction> {
        let logit_numerator = infer::decrypt_response(&self.key, &self.interface, response)?;
        Ok(self.prediction(logit_numerator))
    }

    /// Reads a response's bytes and decrypts it.
    pub fn decrypt_bytes(&self, bytes: &[u8]) -> Result<Prediction> {
        self.decrypt(&Response::from_bytes(bytes, &self.interface)?)
    }

    /// Encrypts a ranked request for a model with public tables: the user's dense features and
    /// `private_ids` (one per private table, in table order) encrypted once, and `candidates`,
    /// each one id per public table in table order (`interface().roles`), in the clear. A
    /// service takes at most its `max_candidates` (`GET /v1/models/{name}`, `rank`).
    ///
    /// ```
    /// use dlrm::{FeatureRoles, Role};
    /// use fhe::{ClientKey, KeySeed, ParameterSetId};
    /// let roles = FeatureRoles { dense: vec![], tables: vec![Role::Private, Role::Public] };
    /// let model = infer::testing::tiny_model().with_roles(roles)?;
    /// let interface = infer::ModelInterface::for_model(&model, ParameterSetId::default())?;
    /// let key = ClientKey::from_seed(ParameterSetId::default(), KeySeed(1));
    /// let client = client::Client::new(key, interface)?;
    /// // Table 0 is private (the user's id 3), table 1 public: three candidates' ids.
    /// let candidates = [vec![1], vec![7], vec![4]];
    /// let request = client.encrypt_rank(&[0.5, -1.0], &[3], &candidates)?;
    /// assert_eq!(request.candidates.len(), 3);
    /// assert!(client.encrypt_rank(&[0.5, -1.0], &[3], &[]).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn encrypt_rank(
        &self,
        dense: &[f32],
        private_ids: &[u32],
        candidates: &[Vec<u32>],
    ) -> Result<RankRequest> {
        Ok(infer::encrypt_rank_request(
            &self.key,
            &self.interface,
            dense,
            private_ids,
            candidates,
            candidates.len(),
        )?)
    }

    /// Decrypts the answer to a ranked request: one prediction per candidate, in request order
    /// ([`ranking`] orders them).
    pub fn decrypt_rank(&self, response: &RankResponse) -> Result<Vec<Prediction>> {
        let numerators = infer::decrypt_rank_response(&self.key, &self.interface, response)?;
        Ok(numerators.into_iter().map(|n| self.prediction(n)).collect())
    }

    /// Reads the answer's bytes to a ranked request of `candidates` candidates (refusing any
    /// other count) and decrypts it: one prediction per candidate, in request order.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), client::ClientError> {
    /// use std::time::Duration;
    /// let keys = client::KeyDirectory::open("my-keys".as_ref())?;
    /// let http = client::ServiceClient::new("http://127.0.0.1:8080", Duration::from_secs(600))?;
    /// let key_id = http.register_key(&keys.load_server_key()?)?.key_id;
    /// let client = client::Client::new(keys.load_client_key()?, http.model_interface("shop")?)?;
    /// let candidates: Vec<Vec<u32>> = (1..=100).map(|item| vec![item]).collect();
    /// let request = client.encrypt_rank(&[0.5, -1.0], &[3], &candidates)?;
    /// let answer = http.rank("shop", &key_id, &request.to_bytes()?)?;
    /// let predictions = client.decrypt_rank_bytes(&answer.bytes, candidates.len())?;
    /// for k in client::ranking(&predictions).into_iter().take(10) {
    ///     println!("item {:?}: p = {:.3}", candidates[k], predictions[k].probability);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn decrypt_rank_bytes(&self, bytes: &[u8], candidates: usize) -> Result<Vec<Prediction>> {
        self.decrypt_rank(&RankResponse::from_bytes(
            bytes,
            &self.interface,
            candidates,
        )?)
    }

    fn prediction(&self, logit_numerator: i64) -> Prediction {
        let logit = logit_numerator as f64 * self.interface.logit_scale;
        Prediction {
            logit_numerator,
            logit,
            probability: 1.0 / (1.0 + (-logit).exp()),
        }
    }
}

/// The candidates' indices, best first: by decreasing logit numerator, ties in request order.
///
/// ```
/// let p = |n: i64| client::Prediction { logit_numerator: n, logit: n as f64, probability: 0.5 };
/// assert_eq!(client::ranking(&[p(1), p(5), p(-2), p(5)]), vec![1, 3, 0, 2]);
/// ```
pub fn ranking(predictions: &[Prediction]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..predictions.len()).collect();
    order.sort_by_key(|&k| std::cmp::Reverse(predictions[k].logit_numerator));
    order
}
