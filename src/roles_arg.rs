//! `--roles`: the feature roles of a ranked request, from a JSON file
//! (`{"dense": [...], "tables": [...]}`, each entry `"private"` or `"public"`, an empty or
//! missing list meaning all private) or the name `criteo-13-13` (the illustrative Criteo split
//! of `docs/rank.md`: dense features and tables 0-12 private, tables 13-25 public).

use std::path::Path;

use anyhow::Context;
use dlrm::FeatureRoles;

/// The name of the illustrative Criteo split.
pub(crate) const CRITEO_SPLIT: &str = "criteo-13-13";

/// The roles `arg` names or the file it points to holds.
pub(crate) fn read_roles(arg: &Path) -> anyhow::Result<FeatureRoles> {
    if arg.as_os_str() == CRITEO_SPLIT {
        return Ok(FeatureRoles::criteo_illustrative());
    }
    let text =
        std::fs::read_to_string(arg).with_context(|| format!("reading roles {}", arg.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing roles {}", arg.display()))
}
