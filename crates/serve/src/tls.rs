//! TLS for the service (`dlrm-he serve --tls-cert --tls-key`): a certificate chain and its private
//! key read from PEM, checked against each other, as a rustls server configuration (ring provider,
//! TLS 1.2 and 1.3, HTTP/1.1 by ALPN). The handshake itself runs per connection in `service.rs`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::bounded_read::read_at_most;

/// Largest certificate or key file read, so a mistaken path cannot make the service read
/// gigabytes.
const MAX_PEM_BYTES: u64 = 1 << 20;

/// What is wrong with a certificate or key given for TLS. `file` names the file, or for PEM
/// given as bytes, `certificate PEM` or `private key PEM`.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read (missing, unreadable).
    #[error("{file}: {source}")]
    Read {
        /// The file.
        file: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A file larger than any certificate chain or key.
    #[error("{file}: larger than {MAX_PEM_BYTES} bytes: not a PEM certificate or key")]
    TooLarge {
        /// The file.
        file: PathBuf,
    },
    /// PEM that does not parse (a section without its end, bad base64).
    #[error("{file}: not valid PEM: {reason}")]
    BadPem {
        /// The file.
        file: PathBuf,
        /// The parser's explanation.
        reason: String,
    },
    /// No `-----BEGIN CERTIFICATE-----` section.
    #[error("{file}: no certificate (expected a PEM `BEGIN CERTIFICATE` section)")]
    NoCertificate {
        /// The file.
        file: PathBuf,
    },
    /// No private key section (PKCS#8 `BEGIN PRIVATE KEY`, PKCS#1 `BEGIN RSA PRIVATE KEY` or
    /// SEC1 `BEGIN EC PRIVATE KEY`).
    #[error(
        "{file}: no private key (expected a PEM `BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE KEY` \
         or `BEGIN EC PRIVATE KEY` section)"
    )]
    NoPrivateKey {
        /// The file.
        file: PathBuf,
    },
    /// The private key is not the key of the chain's first (end-entity) certificate.
    #[error("{key}: the private key does not belong to the first certificate of {cert}")]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the certificate or the key (an unsupported key type, a malformed
    /// certificate).
    #[error("{cert} and {key}: {reason}")]
    Rejected {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's explanation.
        reason: String,
    },
}

/// A server certificate chain and its private key, ready to accept TLS connections.
#[derive(Clone)]
pub struct TlsConfig {
    server: Arc<ServerConfig>,
}

impl std::fmt::Debug for TlsConfig {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig").finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// Reads a PEM certificate chain (the server's certificate first, then any intermediates)
    /// and the PEM private key of its first certificate.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let cert_pem = read_pem_file(cert)?;
        let key_pem = read_pem_file(key)?;
        build((cert, &cert_pem), (key, &key_pem))
    }

    /// Like [`TlsConfig::from_files`], from PEM text already in memory.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        build(
            (Path::new("certificate PEM"), cert_pem),
            (Path::new("private key PEM"), key_pem),
        )
    }

    /// An acceptor performing the server side of the handshake.
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.server.clone())
    }
}

fn read_pem_file(file: &Path) -> Result<Vec<u8>, TlsError> {
    read_at_most(file, MAX_PEM_BYTES)
        .map_err(|source| TlsError::Read {
            file: file.to_path_buf(),
            source,
        })?
        .ok_or_else(|| TlsError::TooLarge {
            file: file.to_path_buf(),
        })
}

fn bad_pem(file: &Path, error: pem::Error) -> TlsError {
    TlsError::BadPem {
        file: file.to_path_buf(),
        reason: error.to_string(),
    }
}

fn build(
    (cert_file, cert_pem): (&Path, &[u8]),
    (key_file, key_pem): (&Path, &[u8]),
) -> Result<TlsConfig, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_pem(cert_file, e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            file: cert_file.to_path_buf(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            file: key_file.to_path_buf(),
        },
        other => bad_pem(key_file, other),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let rejected = |reason: String| TlsError::Rejected {
        cert: cert_file.to_path_buf(),
        key: key_file.to_path_buf(),
        reason,
    };
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| rejected(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                TlsError::KeyMismatch {
                    cert: cert_file.to_path_buf(),
                    key: key_file.to_path_buf(),
                }
            }
            other => rejected(other.to_string()),
        })?;
    // The service speaks HTTP/1.1 only.
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConfig {
        server: Arc::new(server),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(name: &str) -> rcgen::CertifiedKey<rcgen::KeyPair> {
        rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap()
    }

    #[test]
    fn a_matching_certificate_and_key_are_accepted() {
        let made = certificate("localhost");
        let cert = made.cert.pem();
        let key = made.signing_key.serialize_pem();
        TlsConfig::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
    }

    #[test]
    fn every_wrong_input_names_what_is_wrong() {
        let made = certificate("localhost");
        let other = certificate("localhost");
        let (cert, key) = (made.cert.pem(), made.signing_key.serialize_pem());
        let error = |cert: &str, key: &str| {
            TlsConfig::from_pem(cert.as_bytes(), key.as_bytes())
                .unwrap_err()
                .to_string()
        };
        // The files swapped: no certificate in the key, no key in the certificate.
        assert!(
            error(&key, &key).contains("certificate PEM: no certificate"),
            "{}",
            error(&key, &key)
        );
        assert!(
            error(&cert, &cert).contains("private key PEM: no private key"),
            "{}",
            error(&cert, &cert)
        );
        assert!(error("", &key).contains("no certificate"));
        // Another certificate's key.
        let mismatch = TlsConfig::from_pem(
            cert.as_bytes(),
            other.signing_key.serialize_pem().as_bytes(),
        )
        .unwrap_err();
        assert!(
            matches!(mismatch, TlsError::KeyMismatch { .. }),
            "{mismatch}"
        );
        // A section without its end.
        let truncated = &cert[..cert.len() / 2];
        assert!(
            matches!(
                TlsConfig::from_pem(truncated.as_bytes(), key.as_bytes()),
                Err(TlsError::BadPem { .. })
            ),
            "{}",
            error(truncated, &key)
        );
    }

    #[test]
    fn files_are_named_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let error = TlsConfig::from_files(&missing, &missing).unwrap_err();
        assert!(matches!(error, TlsError::Read { .. }), "{error}");
        assert!(error.to_string().contains("missing.pem"), "{error}");

        let made = certificate("localhost");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
        TlsConfig::from_files(&cert, &key).unwrap();
        let error = TlsConfig::from_files(&key, &key).unwrap_err();
        assert!(
            error.to_string().starts_with(&key.display().to_string()),
            "{error}"
        );
        assert!(matches!(error, TlsError::NoCertificate { .. }), "{error}");
    }
}
