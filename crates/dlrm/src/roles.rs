//! Feature roles: which inputs the client encrypts (`private`, the user's features, sent once
//! per request) and which the server knows in the clear (`public`, an item's features, one set
//! per candidate of a ranked request). `docs/rank.md` says what runs once and what per
//! candidate.

use serde::{Deserialize, Serialize};

use crate::{DlrmError, ModelConfig, Result};

/// Who holds one input feature in the clear.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The client's secret: encrypted, sent once per request.
    #[default]
    Private,
    /// Known to the server in the clear (an item's feature), one value per candidate.
    Public,
}

/// The role of every dense feature and every table of a model. An empty list means "all
/// private", so a configuration without roles (every model written before roles existed) keeps
/// its meaning, and an all-private model is written without the field, byte for byte as before.
///
/// Dense features must stay private: the bottom MLP mixes every dense feature in its first
/// layer, so one public dense feature would make the whole bottom MLP (and everything after it)
/// depend on the candidate, leaving nothing to compute once per request. [`FeatureRoles::check`]
/// refuses them.
///
/// ```
/// use dlrm::{FeatureRoles, Role};
/// let roles = FeatureRoles::criteo_illustrative();
/// assert_eq!(roles.table_role(12), Role::Private);
/// assert_eq!(roles.table_role(13), Role::Public);
/// assert_eq!(roles.public_tables(26), (13..26).collect::<Vec<_>>());
/// assert!(FeatureRoles::default().all_private());
/// assert_eq!(FeatureRoles::default(), FeatureRoles { dense: vec![Role::Private; 2], tables: vec![] });
/// ```
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureRoles {
    /// One per dense feature, in input order (empty: all private).
    #[serde(default)]
    pub dense: Vec<Role>,
    /// One per table, in table order (empty: all private).
    #[serde(default)]
    pub tables: Vec<Role>,
}

impl PartialEq for FeatureRoles {
    /// Equal when every feature has the same role, a missing entry counting as private.
    fn eq(&self, other: &Self) -> bool {
        let same = |a: &[Role], b: &[Role]| {
            (0..a.len().max(b.len())).all(|i| role_at(a, i) == role_at(b, i))
        };
        same(&self.dense, &other.dense) && same(&self.tables, &other.tables)
    }
}

impl Eq for FeatureRoles {}

fn role_at(roles: &[Role], index: usize) -> Role {
    roles.get(index).copied().unwrap_or_default()
}

impl FeatureRoles {
    /// The illustrative split for Criteo's 13 dense features and 26 tables used in
    /// `docs/rank.md`: the dense features and tables 0-12 private, tables 13-25 public.
    /// Criteo's columns are anonymous, so which are the user's and which the item's is a
    /// declared assumption, not a property of the data.
    pub fn criteo_illustrative() -> Self {
        Self {
            dense: vec![Role::Private; 13],
            tables: [[Role::Private; 13], [Role::Public; 13]].concat(),
        }
    }

    /// Whether every feature is private (the default).
    pub fn all_private(&self) -> bool {
        self.dense
            .iter()
            .chain(&self.tables)
            .all(|&r| r == Role::Private)
    }

    /// The role of dense feature `j`.
    pub fn dense_role(&self, j: usize) -> Role {
        role_at(&self.dense, j)
    }

    /// The role of table `t`.
    pub fn table_role(&self, t: usize) -> Role {
        role_at(&self.tables, t)
    }

    /// Whether interaction vector `v` is private: the bottom output (vector 0, computed from the
    /// dense features, which are always private) or a private table's embedding (vector
    /// `t + 1` for table `t`).
    ///
    /// ```
    /// let roles = dlrm::FeatureRoles { dense: vec![], tables: vec![dlrm::Role::Public] };
    /// assert!(roles.vector_is_private(0));
    /// assert!(!roles.vector_is_private(1));
    /// ```
    pub fn vector_is_private(&self, v: usize) -> bool {
        v == 0 || self.table_role(v - 1) == Role::Private
    }

    /// The private tables of a model with `tables` tables, in table order.
    pub fn private_tables(&self, tables: usize) -> Vec<usize> {
        (0..tables)
            .filter(|&t| self.table_role(t) == Role::Private)
            .collect()
    }

    /// The public tables of a model with `tables` tables, in table order.
    pub fn public_tables(&self, tables: usize) -> Vec<usize> {
        (0..tables)
            .filter(|&t| self.table_role(t) == Role::Public)
            .collect()
    }

    /// Checks the roles against a model's `dense_features` and `tables`: each list is empty or
    /// has one role per feature, and no dense feature is public.
    ///
    /// ```
    /// use dlrm::{FeatureRoles, Role};
    /// let roles = FeatureRoles { dense: vec![], tables: vec![Role::Public; 3] };
    /// assert!(roles.check(2, 3).is_ok());
    /// assert!(roles.check(2, 4).is_err());
    /// let public_dense = FeatureRoles { dense: vec![Role::Public, Role::Private], tables: vec![] };
    /// assert!(public_dense.check(2, 3).is_err());
    /// ```
    pub fn check(&self, dense_features: usize, tables: usize) -> Result<()> {
        for (name, roles, expected) in [
            ("dense", &self.dense, dense_features),
            ("table", &self.tables, tables),
        ] {
            if !roles.is_empty() && roles.len() != expected {
                return Err(DlrmError::config(format!(
                    "{} {name} roles for {expected} {name} features (give one per feature, or none for all private)",
                    roles.len()
                )));
            }
        }
        if let Some(j) = self.dense.iter().position(|&r| r == Role::Public) {
            return Err(DlrmError::config(format!(
                "dense feature {j} is public: the bottom MLP mixes every dense feature in its first \
                 layer, so a public dense feature would make the whole bottom MLP per candidate; \
                 dense features must be private (make an item's numeric feature a table instead)"
            )));
        }
        Ok(())
    }
}

impl ModelConfig {
    /// The ids of a merged row: a ranked request's private ids (one per private table, in
    /// table order) and one candidate's public ids (one per public table) back in table order.
    ///
    /// ```
    /// use dlrm::{FeatureRoles, ModelPreset, Role};
    /// let mut config = ModelPreset::Uci.config(2, &[3, 4, 5]);
    /// config.roles = FeatureRoles { dense: vec![], tables: vec![Role::Public, Role::Private, Role::Public] };
    /// assert_eq!(config.merged_ids(&[7], &[1, 2]).unwrap(), vec![1, 7, 2]);
    /// assert!(config.merged_ids(&[7], &[1]).is_err());
    /// ```
    pub fn merged_ids(&self, private_ids: &[u32], public_ids: &[u32]) -> Result<Vec<u32>> {
        let tables = self.tables.len();
        let (private, public) = (
            self.roles.private_tables(tables),
            self.roles.public_tables(tables),
        );
        if private_ids.len() != private.len() || public_ids.len() != public.len() {
            return Err(DlrmError::shape(format!(
                "{} private and {} public ids, the model has {} private and {} public tables",
                private_ids.len(),
                public_ids.len(),
                private.len(),
                public.len()
            )));
        }
        let mut ids = vec![0; tables];
        for (&t, &id) in private
            .iter()
            .zip(private_ids)
            .chain(public.iter().zip(public_ids))
        {
            ids[t] = id;
        }
        Ok(ids)
    }
}
