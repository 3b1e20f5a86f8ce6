//! Tenants: who may call the service, with which bearer token, under which quotas.
//!
//! The tenants file keeps only the SHA-256 of each token: the token itself is printed once when
//! it is made and never stored. Tokens are 256 random bits from the operating system, so a
//! plain hash is enough (no password-stretching is needed for keys nobody chose).

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::bounded_read::read_at_most;
use crate::error::{Result, ServeError};
use crate::hex;

/// Largest tenants file read, so a mistaken path cannot make the service read gigabytes.
pub const MAX_TENANTS_FILE_BYTES: u64 = 4 << 20;

const FORMAT: &str = "dlrm-he-tenants";
const VERSION: u32 = 1;
/// Prefix of every token, so secret scanners can recognise a leaked one.
const TOKEN_PREFIX: &str = "dlrmhe_";
const TOKEN_BYTES: usize = 32;

/// What one tenant may hold and run at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    /// Server keys the tenant may have registered at once.
    pub max_keys: u32,
    /// Bytes of registered server keys the tenant may have at once.
    pub max_key_bytes: u64,
    /// Inference calls of the tenant admitted (queued or running) at once.
    pub max_concurrent_calls: u32,
}

impl Default for Quotas {
    /// Two keys of the default parameter set (about 29 MiB each) with room to rotate, and two
    /// calls at once.
    fn default() -> Self {
        Quotas {
            max_keys: 3,
            max_key_bytes: 3 * (64 << 20),
            max_concurrent_calls: 2,
        }
    }
}

/// One tenant of the tenants file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    /// Unique name: 1 to 64 of `a-z`, `0-9`, `-`, `_` (it names the tenant's key folder).
    pub name: String,
    /// SHA-256 of the tenant's bearer token, 64 lowercase hex digits.
    pub token_sha256: String,
    /// What the tenant may hold and run at once.
    pub quotas: Quotas,
}

/// A bearer token, as printed once by [`Tenants::add`]. Its `Debug` does not show it.
pub struct Token(String);

impl Token {
    /// The token text, to hand to the tenant.
    pub fn reveal(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantsFile {
    format: String,
    version: u32,
    tenants: Vec<Tenant>,
}

/// The tenants of a service, looked up by token hash.
#[derive(Clone, Debug, Default)]
pub struct Tenants {
    tenants: Vec<Tenant>,
    by_hash: HashMap<String, usize>,
}

impl Tenants {
    /// Reads a tenants file (at most [`MAX_TENANTS_FILE_BYTES`]), refusing unknown formats and
    /// versions, bad names or hashes, and duplicates.
    pub fn load(path: &Path) -> Result<Self> {
        let bad = |reason: String| ServeError::Tenants {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = read_at_most(path, MAX_TENANTS_FILE_BYTES)
            .map_err(|e| ServeError::io(path, e))?
            .ok_or_else(|| {
                bad(format!(
                    "more than the {MAX_TENANTS_FILE_BYTES} bytes a tenants file may have"
                ))
            })?;
        let file: TenantsFile = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        if file.format != FORMAT || file.version != VERSION {
            return Err(bad(format!(
                "format {} version {}, expected {FORMAT} version {VERSION}",
                file.format, file.version
            )));
        }
        let mut tenants = Tenants::default();
        for tenant in file.tenants {
            tenants.insert(tenant).map_err(bad)?;
        }
        Ok(tenants)
    }

    /// Reads `path`, or no tenants when it does not exist yet.
    pub fn load_or_empty(path: &Path) -> Result<Self> {
        if path.exists() {
            Self::load(path)
        } else {
            Ok(Tenants::default())
        }
    }

    /// Writes the tenants file atomically (a synced temporary file renamed into place).
    pub fn save(&self, path: &Path) -> Result<()> {
        let file = TenantsFile {
            format: FORMAT.into(),
            version: VERSION,
            tenants: self.tenants.clone(),
        };
        let text = serde_json::to_string_pretty(&file).expect("tenants serialise");
        let staged = path.with_extension("tmp");
        let io = |e| ServeError::io(&staged, e);
        {
            use std::io::Write;
            let mut handle = std::fs::File::create(&staged).map_err(io)?;
            handle.write_all(text.as_bytes()).map_err(io)?;
            handle.write_all(b"\n").map_err(io)?;
            handle.sync_all().map_err(io)?;
        }
        std::fs::rename(&staged, path).map_err(|e| ServeError::io(path, e))
    }

    /// Adds a tenant with a new random token, which is returned (and not kept).
    pub fn add(&mut self, name: &str, quotas: Quotas) -> Result<Token> {
        let mut bytes = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes)
            .map_err(|e| ServeError::Start(format!("no randomness for a token: {e}")))?;
        let token = Token(format!("{TOKEN_PREFIX}{}", hex::encode(&bytes)));
        self.insert(Tenant {
            name: name.into(),
            token_sha256: token_hash(token.reveal()),
            quotas,
        })
        .map_err(ServeError::Config)?;
        Ok(token)
    }

    /// Removes the tenant `name`; false when there is none.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.tenants.len();
        self.tenants.retain(|t| t.name != name);
        self.reindex();
        self.tenants.len() != before
    }

    /// The tenant whose token this is.
    pub fn authenticate(&self, token: &str) -> Option<&Tenant> {
        self.by_hash
            .get(&token_hash(token))
            .map(|&index| &self.tenants[index])
    }

    /// Every tenant, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &Tenant> {
        self.tenants.iter()
    }

    /// True when there is no tenant.
    pub fn is_empty(&self) -> bool {
        self.tenants.is_empty()
    }

    fn insert(&mut self, tenant: Tenant) -> std::result::Result<(), String> {
        if !valid_name(&tenant.name) {
            return Err(format!(
                "tenant name `{}`: use 1 to 64 of a-z, 0-9, '-' and '_'",
                tenant.name.chars().take(80).collect::<String>()
            ));
        }
        if !hex::is_lowercase(&tenant.token_sha256, 64) {
            return Err(format!(
                "tenant `{}`: token_sha256 is not 64 lowercase hex digits",
                tenant.name
            ));
        }
        if self.tenants.iter().any(|t| t.name == tenant.name) {
            return Err(format!("tenant `{}` already exists", tenant.name));
        }
        if self.by_hash.contains_key(&tenant.token_sha256) {
            return Err(format!(
                "tenant `{}` has another tenant's token",
                tenant.name
            ));
        }
        let q = tenant.quotas;
        if q.max_keys == 0 || q.max_key_bytes == 0 || q.max_concurrent_calls == 0 {
            return Err(format!("tenant `{}`: a quota is zero", tenant.name));
        }
        self.by_hash
            .insert(tenant.token_sha256.clone(), self.tenants.len());
        self.tenants.push(tenant);
        Ok(())
    }

    fn reindex(&mut self) {
        self.by_hash = self
            .tenants
            .iter()
            .enumerate()
            .map(|(i, t)| (t.token_sha256.clone(), i))
            .collect();
    }
}

/// Whether `name` may name a tenant (it also names the tenant's folder in the key store).
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_'))
}

fn token_hash(token: &str) -> String {
    hex::encode(&Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_authenticates_its_tenant_only_and_survives_a_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tenants.json");
        let mut tenants = Tenants::load_or_empty(&path).unwrap();
        let a = tenants.add("acme", Quotas::default()).unwrap();
        let b = tenants.add("globex", Quotas::default()).unwrap();
        assert!(a.reveal().starts_with(TOKEN_PREFIX) && a.reveal() != b.reveal());
        assert_eq!(format!("{a:?}"), "Token(..)");
        tenants.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(a.reveal()), "the file keeps only hashes");
        let loaded = Tenants::load(&path).unwrap();
        assert_eq!(loaded.authenticate(a.reveal()).unwrap().name, "acme");
        assert_eq!(loaded.authenticate(b.reveal()).unwrap().name, "globex");
        assert!(loaded.authenticate("dlrmhe_guess").is_none());
        assert!(loaded.authenticate("").is_none());
    }

    #[test]
    fn bad_names_duplicates_zero_quotas_and_foreign_files_are_refused() {
        let mut tenants = Tenants::default();
        for name in ["", "Acme", "a/b", "..", &"x".repeat(65)] {
            assert!(tenants.add(name, Quotas::default()).is_err(), "{name}");
        }
        tenants.add("acme", Quotas::default()).unwrap();
        assert!(tenants.add("acme", Quotas::default()).is_err());
        let zero = Quotas {
            max_keys: 0,
            ..Quotas::default()
        };
        assert!(tenants.add("zero", zero).is_err());
        assert!(tenants.remove("acme") && !tenants.remove("acme"));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        for text in [
            r#"{"format":"other","version":1,"tenants":[]}"#,
            r#"{"format":"dlrm-he-tenants","version":2,"tenants":[]}"#,
            r#"{"format":"dlrm-he-tenants","version":1,"tenants":[{"name":"a","token_sha256":"00","quotas":{"max_keys":1,"max_key_bytes":1,"max_concurrent_calls":1}}]}"#,
            "not json",
        ] {
            std::fs::write(&path, text).unwrap();
            assert!(Tenants::load(&path).is_err(), "{text}");
        }
        std::fs::write(&path, vec![b' '; MAX_TENANTS_FILE_BYTES as usize + 1]).unwrap();
        let error = Tenants::load(&path).unwrap_err().to_string();
        assert!(error.contains("more than"), "{error}");
    }
}
