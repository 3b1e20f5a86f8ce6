//! `--roles`: the feature roles of a ranked request, from a JSON file
//! (`{"dense": [...], "tables": [...]}`, each entry `"private"` or `"public"`, an empty or
//! missing list meaning all private) or the name `criteo-13-13` (the illustrative Criteo split
//! of `docs/rank.md`: dense features and tables 0-12 private, tables 13-25 public).

use std::path::Path;

use anyhow::Context;
use dlrm::{FeatureRoles, QuantizedModel};

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

/// The quantized model at `path`, served with the roles `roles` names instead of its own when
/// given (the weights are the same; the model id changes with the roles).
pub(crate) fn load_with_roles(path: &Path, roles: Option<&Path>) -> anyhow::Result<QuantizedModel> {
    let model = QuantizedModel::load(path)?;
    match roles {
        None => Ok(model),
        Some(roles) => model
            .with_roles(read_roles(roles)?)
            .with_context(|| format!("roles {} for {}", roles.display(), path.display())),
    }
}
