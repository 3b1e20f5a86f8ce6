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
use crate::hex;
use crate::tenants::valid_name;

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
        KeyId(hex::encode(&digest[..Self::HEX_DIGITS / 2]))
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
        if hex::is_lowercase(text, Self::HEX_DIGITS) {
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

/// Whose keys a store call reads or writes. A key belongs to the tenant that registered it and
/// no call of another owner can see it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    /// The service without tenants (open access): one shared set of keys.
    Open,
    /// A tenant, by its (validated) name.
    Tenant(String),
}

/// Where registered server keys live. The directory store serves one process; a shared store
/// (object storage, a database) for several replicas implements the same calls.
pub trait KeyStore: Send + Sync {
    /// Stores `bytes` (already validated) under `id` for `owner`. Returns false when the key
    /// was already there. A key must never be visible half-written, even if the process dies
    /// mid-call.
    fn put(&self, owner: &Owner, id: &KeyId, set: ParameterSetId, bytes: &[u8]) -> Result<bool>;
    /// The entry of `owner`'s key `id`, if registered.
    fn entry(&self, owner: &Owner, id: &KeyId) -> Result<Option<KeyEntry>>;
    /// The compressed bytes of `owner`'s key `id`, if registered.
    fn load(&self, owner: &Owner, id: &KeyId) -> Result<Option<(ParameterSetId, Vec<u8>)>>;
    /// Removes `owner`'s key `id`; false when it was not registered.
    fn delete(&self, owner: &Owner, id: &KeyId) -> Result<bool>;
    /// Every key of `owner`.
    fn list(&self, owner: &Owner) -> Result<Vec<KeyEntry>>;
    /// Keys and their bytes, every owner's together (the store-wide cap, the metrics).
    fn totals(&self) -> Result<(usize, u64)>;
}

/// A [`KeyStore`] in a directory: `<parameter set>/<key id>.key` for [`Owner::Open`],
/// `tenants/<name>/<parameter set>/<key id>.key` for a tenant, written under `.staging/`,
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
const TENANTS: &str = "tenants";

impl DirectoryKeyStore {
    /// Opens (creating if needed) the store at `root`.
    ///
    /// ```
    /// use serve::{DirectoryKeyStore, KeyId, KeyStore};
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = DirectoryKeyStore::open(dir.path()).unwrap();
    /// let set = fhe::ParameterSetId::default();
    /// let id = KeyId::of(set, b"bytes");
    /// let owner = serve::Owner::Open;
    /// assert!(store.put(&owner, &id, set, b"bytes").unwrap());
    /// assert!(!store.put(&owner, &id, set, b"bytes").unwrap());
    /// let reopened = DirectoryKeyStore::open(dir.path()).unwrap();
    /// assert_eq!(reopened.load(&owner, &id).unwrap(), Some((set, b"bytes".to_vec())));
    /// let other = serve::Owner::Tenant("globex".into());
    /// assert_eq!(reopened.load(&other, &id).unwrap(), None);
    /// assert!(reopened.delete(&owner, &id).unwrap());
    /// assert!(reopened.list(&owner).unwrap().is_empty());
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

    /// The folder of `owner`'s keys.
    fn folder(&self, owner: &Owner) -> PathBuf {
        match owner {
            Owner::Open => self.root.clone(),
            Owner::Tenant(name) => self.root.join(TENANTS).join(name),
        }
    }

    fn path(&self, owner: &Owner, id: &KeyId, parameter_set: ParameterSetId) -> PathBuf {
        self.folder(owner)
            .join(parameter_set.name())
            .join(format!("{id}.key"))
    }

    fn find(&self, owner: &Owner, id: &KeyId) -> Option<(ParameterSetId, PathBuf)> {
        ParameterSetId::ALL
            .into_iter()
            .map(|set| (set, self.path(owner, id, set)))
            .find(|(_, path)| path.is_file())
    }

    /// Every owner with a folder: the open keys and each tenant's.
    fn owners(&self) -> Result<Vec<Owner>> {
        let mut owners = vec![Owner::Open];
        let tenants = self.root.join(TENANTS);
        let Ok(listing) = std::fs::read_dir(&tenants) else {
            return Ok(owners);
        };
        for item in listing {
            let item = item.map_err(|e| ServeError::io(&tenants, e))?;
            if let Some(name) = item.file_name().to_str().filter(|n| valid_name(n)) {
                owners.push(Owner::Tenant(name.to_owned()));
            }
        }
        Ok(owners)
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
    fn put(&self, owner: &Owner, id: &KeyId, set: ParameterSetId, bytes: &[u8]) -> Result<bool> {
        let target = self.path(owner, id, set);
        if target.is_file() {
            return Ok(false);
        }
        let folder = target.parent().expect("a key path has a parent");
        if let Owner::Tenant(_) = owner {
            create_dir_durably(&self.root.join(TENANTS))?;
            create_dir_durably(&self.folder(owner))?;
        }
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

    fn entry(&self, owner: &Owner, id: &KeyId) -> Result<Option<KeyEntry>> {
        let Some((parameter_set, path)) = self.find(owner, id) else {
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

    fn load(&self, owner: &Owner, id: &KeyId) -> Result<Option<(ParameterSetId, Vec<u8>)>> {
        let Some((parameter_set, path)) = self.find(owner, id) else {
            return Ok(None);
        };
        let bytes = std::fs::read(&path).map_err(|e| ServeError::io(&path, e))?;
        if KeyId::of(parameter_set, &bytes) != *id {
            return Err(ServeError::CorruptKey { path });
        }
        Ok(Some((parameter_set, bytes)))
    }

    fn delete(&self, owner: &Owner, id: &KeyId) -> Result<bool> {
        let Some((_, path)) = self.find(owner, id) else {
            return Ok(false);
        };
        std::fs::remove_file(&path).map_err(|e| ServeError::io(&path, e))?;
        sync_dir(path.parent().expect("a key path has a parent"))?;
        Ok(true)
    }

    fn list(&self, owner: &Owner) -> Result<Vec<KeyEntry>> {
        let mut entries = Vec::new();
        for parameter_set in ParameterSetId::ALL {
            let folder = self.folder(owner).join(parameter_set.name());
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

    fn totals(&self) -> Result<(usize, u64)> {
        let (mut keys, mut bytes) = (0, 0);
        for owner in self.owners()? {
            let entries = self.list(&owner)?;
            keys += entries.len();
            bytes += entries.iter().map(|e| e.bytes).sum::<u64>();
        }
        Ok((keys, bytes))
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
        let owner = Owner::Tenant("acme".into());
        assert!(store.put(&owner, &id, set, b"bytes").unwrap());
        std::fs::write(store.path(&owner, &id, set), b"bytez").unwrap();
        let error = store.load(&owner, &id).unwrap_err();
        assert!(matches!(error, ServeError::CorruptKey { .. }), "{error}");
        assert!(store.delete(&owner, &id).unwrap());
        assert_eq!(store.load(&owner, &id).unwrap(), None);
    }

    #[test]
    fn owners_see_only_their_own_keys_and_the_total_counts_everyone() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirectoryKeyStore::open(dir.path()).unwrap();
        let set = ParameterSetId::default();
        let (acme, globex) = (Owner::Tenant("acme".into()), Owner::Tenant("globex".into()));
        let id = KeyId::of(set, b"acme key");
        assert!(store.put(&acme, &id, set, b"acme key").unwrap());
        assert!(
            store
                .put(&Owner::Open, &KeyId::of(set, b"xy"), set, b"xy")
                .unwrap()
        );
        assert_eq!(store.list(&acme).unwrap().len(), 1);
        assert!(store.list(&globex).unwrap().is_empty());
        assert_eq!(store.list(&Owner::Open).unwrap().len(), 1);
        assert_eq!(store.entry(&globex, &id).unwrap(), None);
        assert!(!store.delete(&globex, &id).unwrap());
        assert_eq!(store.totals().unwrap(), (2, 8 + 2));
    }
}
