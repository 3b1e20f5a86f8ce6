//! Registered server keys: content-addressed ids and the store that keeps them across restarts.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use fhe::ParameterSetId;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Result, ServeError};

/// Identifier of a registered server key: the first 128 bits of the SHA-256 of its parameter
/// set's name and its bytes, in hex. Uploading the same key twice gives the same id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct KeyId(String);

impl KeyId {
    const HEX_DIGITS: usize = 32;

    /// The id of `bytes` registered for `parameter_set`.
    ///
    /// ```
    /// use serve::KeyId;
    /// let set = fhe::ParameterSetId::default();
    /// let id = KeyId::of(set, b"key bytes");
    /// assert_eq!(id, KeyId::of(set, b"key bytes"));
    /// assert_ne!(id, KeyId::of(set, b"other bytes"));
    /// assert_eq!(id.as_str().parse::<KeyId>().unwrap(), id);
    /// ```
    pub fn of(parameter_set: ParameterSetId, bytes: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(parameter_set.name().as_bytes());
        hasher.update([0]);
        hasher.update(bytes);
        let digest = hasher.finalize();
        KeyId(
            digest[..Self::HEX_DIGITS / 2]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        )
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for KeyId {
    type Err = ServeError;

    /// Accepts exactly 32 lowercase hex digits, so an id can never name a path outside the store.
    fn from_str(text: &str) -> Result<Self> {
        let valid = text.len() == Self::HEX_DIGITS
            && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if valid {
            Ok(KeyId(text.to_owned()))
        } else {
            Err(ServeError::BadKeyId(text.chars().take(64).collect()))
        }
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the store knows about a registered key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyEntry {
    /// The key's id.
    pub key_id: KeyId,
    /// The parameter set the key was made for.
    pub parameter_set: ParameterSetId,
    /// Size of the compressed key.
    pub bytes: u64,
}

/// Where registered server keys live. The directory store serves one process; a shared store
/// (object storage, a database) for several replicas implements the same four calls.
pub trait KeyStore: Send + Sync {
    /// Stores `bytes` (already validated) under `id`. Returns false when the key was already
    /// there. A key must never be visible half-written, even if the process dies mid-call.
    fn put(&self, id: &KeyId, parameter_set: ParameterSetId, bytes: &[u8]) -> Result<bool>;
    /// The entry of `id`, if registered.
    fn entry(&self, id: &KeyId) -> Result<Option<KeyEntry>>;
    /// The compressed bytes of `id`, if registered.
    fn load(&self, id: &KeyId) -> Result<Option<(ParameterSetId, Vec<u8>)>>;
    /// Removes `id`; false when it was not registered.
    fn delete(&self, id: &KeyId) -> Result<bool>;
    /// Every registered key.
    fn list(&self) -> Result<Vec<KeyEntry>>;
}

/// A [`KeyStore`] in a directory: `<parameter set>/<key id>.key`, written under `.staging/`,
/// synced, then renamed into place (atomic on one file system); every directory a call creates,
/// renames into or removes from is synced before the call returns, so an acknowledged upload or
/// delete survives a crash. Opening the store deletes whatever a killed process left in
/// `.staging/`; loading checks the bytes against the id they are stored under.
pub struct DirectoryKeyStore {
    root: PathBuf,
    /// Names staged files uniquely within the process.
    staged: AtomicU64,
}

const STAGING: &str = ".staging";

impl DirectoryKeyStore {
    /// Opens (creating if needed) the store at `root`.
    ///
    /// ```
    /// use serve::{DirectoryKeyStore, KeyId, KeyStore};
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = DirectoryKeyStore::open(dir.path()).unwrap();
    /// let set = fhe::ParameterSetId::default();
    /// let id = KeyId::of(set, b"bytes");
    /// assert!(store.put(&id, set, b"bytes").unwrap());
    /// assert!(!store.put(&id, set, b"bytes").unwrap());
    /// let reopened = DirectoryKeyStore::open(dir.path()).unwrap();
    /// assert_eq!(reopened.load(&id).unwrap(), Some((set, b"bytes".to_vec())));
    /// assert!(reopened.delete(&id).unwrap());
    /// assert!(reopened.list().unwrap().is_empty());
    /// ```
    pub fn open(root: &Path) -> Result<Self> {
        create_dir_durably(root)?;
        let staging = root.join(STAGING);
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(|e| ServeError::io(&staging, e))?;
        }
        create_dir_durably(&staging)?;
        Ok(DirectoryKeyStore {
            root: root.to_path_buf(),
            staged: AtomicU64::new(0),
        })
    }

    fn path(&self, id: &KeyId, parameter_set: ParameterSetId) -> PathBuf {
        self.root
            .join(parameter_set.name())
            .join(format!("{id}.key"))
    }

    fn find(&self, id: &KeyId) -> Option<(ParameterSetId, PathBuf)> {
        ParameterSetId::ALL
            .into_iter()
            .map(|set| (set, self.path(id, set)))
            .find(|(_, path)| path.is_file())
    }
}

/// Creates `dir` (and missing parents) and syncs it and its parent, so the new entry survives a
/// crash.
fn create_dir_durably(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| ServeError::io(dir, e))?;
    sync_dir(dir)?;
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => Ok(()),
    }
}

/// Makes the entries of `dir` (files created, renamed into or removed from it) durable.
fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|e| ServeError::io(dir, e))
}

impl KeyStore for DirectoryKeyStore {
    fn put(&self, id: &KeyId, parameter_set: ParameterSetId, bytes: &[u8]) -> Result<bool> {
        let target = self.path(id, parameter_set);
        if target.is_file() {
            return Ok(false);
        }
        let folder = target.parent().expect("a key path has a parent");
        create_dir_durably(folder)?;
        let staged = self.root.join(STAGING).join(format!(
            "{id}.{}.{}",
            std::process::id(),
            self.staged.fetch_add(1, Ordering::Relaxed)
        ));
        let io = |source| ServeError::io(&staged, source);
        let mut file = std::fs::File::create(&staged).map_err(io)?;
        file.write_all(bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&staged, &target).map_err(|e| ServeError::io(&target, e))?;
        // The rename is durable only once the directory entry is.
        sync_dir(folder)?;
        Ok(true)
    }

    fn entry(&self, id: &KeyId) -> Result<Option<KeyEntry>> {
        let Some((parameter_set, path)) = self.find(id) else {
            return Ok(None);
        };
        let bytes = std::fs::metadata(&path)
            .map_err(|e| ServeError::io(&path, e))?
            .len();
        Ok(Some(KeyEntry {
            key_id: id.clone(),
            parameter_set,
            bytes,
        }))
    }

    fn load(&self, id: &KeyId) -> Result<Option<(ParameterSetId, Vec<u8>)>> {
        let Some((parameter_set, path)) = self.find(id) else {
            return Ok(None);
        };
        let bytes = std::fs::read(&path).map_err(|e| ServeError::io(&path, e))?;
        if KeyId::of(parameter_set, &bytes) != *id {
            return Err(ServeError::CorruptKey { path });
        }
        Ok(Some((parameter_set, bytes)))
    }

    fn delete(&self, id: &KeyId) -> Result<bool> {
        let Some((_, path)) = self.find(id) else {
            return Ok(false);
        };
        std::fs::remove_file(&path).map_err(|e| ServeError::io(&path, e))?;
        sync_dir(path.parent().expect("a key path has a parent"))?;
        Ok(true)
    }

    fn list(&self) -> Result<Vec<KeyEntry>> {
        let mut entries = Vec::new();
        for parameter_set in ParameterSetId::ALL {
            let folder = self.root.join(parameter_set.name());
            let Ok(listing) = std::fs::read_dir(&folder) else {
                continue;
            };
            for item in listing {
                let item = item.map_err(|e| ServeError::io(&folder, e))?;
                let name = item.file_name();
                let Some(id) = name
                    .to_str()
                    .and_then(|n| n.strip_suffix(".key"))
                    .and_then(|n| n.parse::<KeyId>().ok())
                else {
                    continue;
                };
                let bytes = item
                    .metadata()
                    .map_err(|e| ServeError::io(&folder, e))?
                    .len();
                entries.push(KeyEntry {
                    key_id: id,
                    parameter_set,
                    bytes,
                });
            }
        }
        entries.sort_by(|a, b| a.key_id.cmp(&b.key_id));
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_key_whose_bytes_no_longer_match_its_id_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirectoryKeyStore::open(dir.path()).unwrap();
        let set = ParameterSetId::default();
        let id = KeyId::of(set, b"bytes");
        assert!(store.put(&id, set, b"bytes").unwrap());
        std::fs::write(store.path(&id, set), b"bytez").unwrap();
        let error = store.load(&id).unwrap_err();
        assert!(matches!(error, ServeError::CorruptKey { .. }), "{error}");
        assert!(store.delete(&id).unwrap());
        assert_eq!(store.load(&id).unwrap(), None);
    }
}
