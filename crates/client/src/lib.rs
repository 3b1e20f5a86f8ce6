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
use infer::{ModelInterface, Request, Response};

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
        let logit = logit_numerator as f64 * self.interface.logit_scale;
        Ok(Prediction {
            logit_numerator,
            logit,
            probability: 1.0 / (1.0 + (-logit).exp()),
        })
    }

    /// Reads a response's bytes and decrypts it.
    pub fn decrypt_bytes(&self, bytes: &[u8]) -> Result<Prediction> {
        self.decrypt(&Response::from_bytes(bytes, &self.interface)?)
    }
}
