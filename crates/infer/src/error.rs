//! The one error type of the crate.

/// Everything that can go wrong compiling a plan or running a request. Bad requests (other
/// model, other parameter set, malformed bytes, wrong counts) are reported here, never by a
/// panic.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// From the FHE kernels (keys, ciphertexts, parameter sets, encodings).
    #[error(transparent)]
    Fhe(#[from] fhe::FheError),
    /// From the embedding lookup (ids, table shapes, packing).
    #[error(transparent)]
    Embed(#[from] embed::EmbedError),
    /// From the quantized model (validation, reference runs).
    #[error(transparent)]
    Model(#[from] dlrm::DlrmError),
    /// The model has a feature the encrypted executor cannot run.
    #[error("the model cannot run encrypted: {0}")]
    Unsupported(String),
    /// Bytes or a description that do not decode.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// The kind of object.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An object made for another model.
    #[error("{what} is for model {found}, expected model {expected}")]
    ModelMismatch {
        /// The kind of object.
        what: &'static str,
        /// The model it should be for.
        expected: String,
        /// The model it says it is for.
        found: String,
    },
    /// A ranked request with more candidates than the reader takes.
    #[error("{count} candidates, at most {max} are taken (a ranked request carries 1 to {max})")]
    TooManyCandidates {
        /// The candidates the request carries.
        count: usize,
        /// The most the reader takes.
        max: usize,
    },
    /// The caller gave up (a client that disconnected); the request stopped at a layer
    /// boundary, `stage` the one it would have started.
    #[error("abandoned by its caller before the {stage} stage")]
    Abandoned {
        /// The stage that did not run.
        stage: &'static str,
    },
}

/// Why a batch of requests given as bytes was not answered: one request does not decode (the
/// sender's fault, with its index), or running the decoded requests failed.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// Request `index` of the batch does not decode for the model.
    #[error("request {index}: {source}")]
    Request {
        /// Its position in the batch.
        index: usize,
        /// Why it does not decode.
        source: InferError,
    },
    /// Running a decoded request or encoding its response.
    #[error(transparent)]
    Execution(InferError),
}

impl BatchError {
    /// The underlying error, without the request's index.
    pub fn into_inner(self) -> InferError {
        match self {
            BatchError::Request { source, .. } | BatchError::Execution(source) => source,
        }
    }
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, InferError>;

pub(crate) fn malformed(what: &'static str, reason: impl Into<String>) -> InferError {
    InferError::Malformed {
        what,
        reason: reason.into(),
    }
}
