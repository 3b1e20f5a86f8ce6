//! Key directories: `client.key` (secret, never leaves the client), `server.key` (the
//! compressed server key a service registers) and `keys.json` (parameter set and sizes).

use std::path::{Path, PathBuf};

use fhe::{ClientKey, CompressedServerKey, ParameterSetId};
use serde::{Deserialize, Serialize};

use crate::error::{ClientError, Result};

/// The secret key's file name.
pub const CLIENT_KEY_FILE: &str = "client.key";
/// The compressed server key's file name.
pub const SERVER_KEY_FILE: &str = "server.key";
/// The description's file name.
pub const KEYS_FILE: &str = "keys.json";

/// A key directory written by [`KeyDirectory::generate`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyDirectory {
    /// The directory (not stored in `keys.json`).
    #[serde(skip)]
    pub dir: PathBuf,
    /// The parameter set both keys were generated for.
    pub parameter_set: ParameterSetId,
    /// Size of `client.key`.
    pub client_key_bytes: u64,
    /// Size of `server.key` (the compressed server key).
    pub server_key_bytes: u64,
    /// Whether `server.key` carries the packing key (ranked answers come back packed).
    #[serde(default)]
    pub packing_key: bool,
}

impl KeyDirectory {
    /// Generates a fresh client key (from the system's entropy) and its compressed server key
    /// into `dir`, which must not exist yet (keys are never overwritten). The directory is
    /// written under a temporary name and renamed when complete.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let keys = client::KeyDirectory::generate(&dir.path().join("k"), fhe::ParameterSetId::default()).unwrap();
    /// assert!(keys.server_key_bytes > 20 << 20);
    /// let again = client::KeyDirectory::open(&dir.path().join("k")).unwrap();
    /// assert_eq!(again, keys);
    /// assert!(client::KeyDirectory::generate(&dir.path().join("k"), fhe::ParameterSetId::default()).is_err());
    /// ```
    pub fn generate(dir: &Path, parameter_set: ParameterSetId) -> Result<Self> {
        Self::write_new(dir, parameter_set, false)
    }

    /// [`KeyDirectory::generate`] with the packing key in `server.key` (32 MiB more with the
    /// default set): a service then answers ranked requests with up to 2,048 scores per 32 KiB
    /// instead of 16 KiB each (docs/rank.md).
    ///
    /// ```no_run
    /// let dir = tempfile::tempdir().unwrap();
    /// let set = fhe::ParameterSetId::default();
    /// let keys = client::KeyDirectory::generate_with_packing(&dir.path().join("k"), set).unwrap();
    /// assert!(keys.packing_key && keys.load_server_key().unwrap().has_packing_key());
    /// ```
    pub fn generate_with_packing(dir: &Path, parameter_set: ParameterSetId) -> Result<Self> {
        Self::write_new(dir, parameter_set, true)
    }

    fn write_new(dir: &Path, parameter_set: ParameterSetId, packing_key: bool) -> Result<Self> {
        if dir.exists() {
            return Err(ClientError::KeyFile {
                path: dir.to_path_buf(),
                reason: "already exists; keys are never overwritten".into(),
            });
        }
        let key = ClientKey::generate(parameter_set);
        let seed = fhe::KeySeed::from_entropy();
        let server = match packing_key {
            true => key.compressed_server_key_with_packing(seed)?,
            false => key.compressed_server_key(seed),
        };
        let client_bytes = key.to_bytes()?;
        let server_bytes = server.to_bytes()?;
        let file_name = dir.file_name().ok_or_else(|| ClientError::KeyFile {
            path: dir.to_path_buf(),
            reason: "not a directory name".into(),
        })?;
        let staging = dir.with_file_name(format!(".{}.partial", file_name.to_string_lossy()));
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ClientError::Io { path, source }
        };
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(io(&staging))?;
        }
        std::fs::create_dir_all(&staging).map_err(io(&staging))?;
        let description = KeyDirectory {
            dir: dir.to_path_buf(),
            parameter_set,
            client_key_bytes: client_bytes.len() as u64,
            server_key_bytes: server_bytes.len() as u64,
            packing_key,
        };
        write_private(&staging.join(CLIENT_KEY_FILE), &client_bytes)?;
        let server_path = staging.join(SERVER_KEY_FILE);
        std::fs::write(&server_path, &server_bytes).map_err(io(&server_path))?;
        let json = serde_json::to_string_pretty(&description).expect("always serialises");
        let json_path = staging.join(KEYS_FILE);
        std::fs::write(&json_path, json + "\n").map_err(io(&json_path))?;
        std::fs::rename(&staging, dir).map_err(io(dir))?;
        Ok(description)
    }

    /// Reads the description of a key directory.
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join(KEYS_FILE);
        let bytes = read_limited(&path, 1 << 16)?;
        let mut description: KeyDirectory =
            serde_json::from_slice(&bytes).map_err(|e| ClientError::KeyFile {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        description.dir = dir.to_path_buf();
        Ok(description)
    }

    /// Loads the secret key.
    pub fn load_client_key(&self) -> Result<ClientKey> {
        let path = self.dir.join(CLIENT_KEY_FILE);
        let bytes = read_limited(&path, 1 << 20)?;
        Ok(ClientKey::from_bytes(&bytes, self.parameter_set)?)
    }

    /// Loads the compressed server key (what a service registers).
    pub fn load_server_key(&self) -> Result<CompressedServerKey> {
        let path = self.dir.join(SERVER_KEY_FILE);
        let bytes = read_limited(&path, 1 << 30)?;
        Ok(CompressedServerKey::from_bytes(&bytes, self.parameter_set)?)
    }
}

fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let io = |source| ClientError::Io {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > limit {
        return Err(ClientError::KeyFile {
            path: path.to_path_buf(),
            reason: format!("{size} bytes, more than a key file can be ({limit})"),
        });
    }
    std::fs::read(path).map_err(io)
}

/// Writes the secret key readable by its owner only (on Unix).
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let io = |source| ClientError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}
