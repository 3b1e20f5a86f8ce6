//! Locating the third-party data shared with the project (`../shared`), which is never copied
//! into the repository. Tests that need it skip, saying why, where it is absent.

use std::path::PathBuf;

/// Environment variable that overrides where the shared folder is.
pub const SHARED_DIR_VAR: &str = "DLRM_HE_SHARED";

/// The shared folder: `$DLRM_HE_SHARED`, or `../shared` beside the workspace.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os(SHARED_DIR_VAR) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")),
    }
}

/// A file under the shared folder, or `None` after printing why a test skips.
///
/// ```
/// if let Some(path) = datasets::shared::shared_file("data/SOURCES.md") {
///     assert!(path.is_file());
/// }
/// ```
pub fn shared_file(relative: &str) -> Option<PathBuf> {
    let path = shared_dir().join(relative);
    if path.is_file() {
        Some(path)
    } else {
        eprintln!(
            "skipping: {} not found (set {SHARED_DIR_VAR} to the shared folder)",
            path.display()
        );
        None
    }
}
