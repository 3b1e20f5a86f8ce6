//! The tensor names of both layouts: which layout a file follows, what each of its tensors is,
//! and the names of the layers and tables a model is read from.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::tensors::Tensors;
use crate::{DlrmError, Result};

/// The naming a PyTorch DLRM file follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PytorchLayout {
    /// facebookresearch/dlrm: `bot_l.N.weight/bias`, `emb_l.N.weight`, `top_l.N.weight/bias`.
    Reference,
    /// TorchRec's `DLRM`: `dense_arch.model._mlp.I._linear.*`,
    /// `sparse_arch.embedding_bag_collection.embedding_bags.NAME.weight`,
    /// `over_arch.model.0._mlp.I._linear.*` and `over_arch.model.1.*`.
    TorchRec,
}

/// The tensors a model is read from, in the model's order.
pub(super) struct TensorNames {
    /// `(weight, bias)` of each bottom layer.
    pub(super) bottom: Vec<(String, String)>,
    /// One per table (a TorchRec table serving several features is named once per feature).
    pub(super) tables: Vec<String>,
    /// `(weight, bias)` of each top layer.
    pub(super) top: Vec<(String, String)>,
}

/// What each tensor of the file is (`names` sorted, all under `prefix`); a tensor of neither
/// role is refused by name.
pub(super) fn tensor_roles(
    file: &Tensors,
    names: &[&str],
    layout: PytorchLayout,
    prefix: &str,
) -> Result<Vec<Role>> {
    let mut unexpected = Vec::new();
    let mut roles = Vec::new();
    for &name in names {
        let role = name.strip_prefix(prefix).and_then(|rest| match layout {
            PytorchLayout::Reference => reference_role(rest),
            PytorchLayout::TorchRec => torchrec_role(rest),
        });
        match role {
            Some(role) => roles.push(role),
            None => unexpected.push(name),
        }
    }
    if !unexpected.is_empty() {
        let hint = if unexpected
            .iter()
            .any(|n| n.contains("inter_arch.") || n.contains("crossnet"))
        {
            " (TorchRec's DLRM_DCN and DLRM_Projection interactions are not supported)"
        } else {
            ""
        };
        return Err(file.error(format!(
            "{} tensor(s) outside the {layout:?} layout{hint}: {}",
            unexpected.len(),
            shortlist(&unexpected)
        )));
    }
    Ok(roles)
}

/// The layers and tables of a reference-DLRM file, by their numbers.
pub(super) fn reference_names(roles: &[Role], prefix: &str) -> TensorNames {
    let indices = |part| layer_indices(roles, part).into_iter().collect::<Vec<_>>();
    let tables = roles
        .iter()
        .filter_map(|r| match r {
            Role::RefTable(n) => Some(*n),
            _ => None,
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|n| format!("{prefix}emb_l.{n}.weight"))
        .collect();
    TensorNames {
        bottom: layer_names(prefix, Part::RefBottom, indices(Part::RefBottom)),
        tables,
        top: layer_names(prefix, Part::RefTop, indices(Part::RefTop)),
    }
}

/// The layers of a TorchRec file (numbered from 0 without gaps, the over arch's final `Linear`
/// last) and its tables in the model's feature order (`given`, or told from their names).
pub(super) fn torchrec_names(
    file: &Tensors,
    roles: &[Role],
    prefix: &str,
    given: Option<&[String]>,
) -> Result<TensorNames> {
    let contiguous = |part: Part| -> Result<Vec<usize>> {
        let found = layer_indices(roles, part);
        let count = found.last().map_or(0, |k| k + 1);
        match (0..count.max(1)).find(|k| !found.contains(k)) {
            Some(k) => Err(file.error(format!("missing tensor {prefix}{}.weight", part.stem(k)))),
            None => Ok((0..count).collect()),
        }
    };
    let bottom = layer_names(prefix, Part::Dense, contiguous(Part::Dense)?);
    let mut top = layer_names(prefix, Part::Over, contiguous(Part::Over)?);
    top.push((
        format!("{prefix}over_arch.model.1.weight"),
        format!("{prefix}over_arch.model.1.bias"),
    ));
    let bags: BTreeSet<&str> = roles
        .iter()
        .filter_map(|r| match r {
            Role::Bag(name) => Some(name.as_str()),
            _ => None,
        })
        .collect();
    let tables = table_order(file, &bags, given)?
        .iter()
        .map(|t| format!("{prefix}sparse_arch.embedding_bag_collection.embedding_bags.{t}.weight"))
        .collect();
    Ok(TensorNames {
        bottom,
        tables,
        top,
    })
}

/// The numbers of the layers of `part` the file has.
fn layer_indices(roles: &[Role], part: Part) -> BTreeSet<usize> {
    roles
        .iter()
        .filter_map(|r| match r {
            Role::Layer(p, k) if *p == part => Some(*k),
            _ => None,
        })
        .collect()
}

/// `(weight, bias)` names of layers `indices` of `part`.
fn layer_names(prefix: &str, part: Part, indices: Vec<usize>) -> Vec<(String, String)> {
    indices
        .into_iter()
        .map(|k| {
            let stem = format!("{prefix}{}", part.stem(k));
            (format!("{stem}.weight"), format!("{stem}.bias"))
        })
        .collect()
}

/// The layout of a file and the prefix every one of its tensor names carries.
pub(super) fn detect(path: &Path, names: &[&str]) -> Result<(PytorchLayout, String)> {
    let prefixes = |markers: &[&str]| -> BTreeSet<String> {
        names
            .iter()
            .filter_map(|name| {
                markers
                    .iter()
                    .filter_map(|m| {
                        name.match_indices(m)
                            .map(|(p, _)| p)
                            .find(|&p| p == 0 || name[..p].ends_with('.'))
                    })
                    .min()
                    .map(|p| name[..p].to_string())
            })
            .collect()
    };
    let reference = prefixes(&["bot_l.", "emb_l.", "top_l."]);
    let torchrec = prefixes(&["dense_arch.", "sparse_arch.", "over_arch."]);
    let bad = |reason: String| Err(DlrmError::file(path, reason));
    let (layout, found) = match (reference.is_empty(), torchrec.is_empty()) {
        (true, true) => {
            return bad(format!(
                "neither a reference DLRM (bot_l., emb_l., top_l.) nor a TorchRec DLRM \
                 (dense_arch., sparse_arch., over_arch.); its tensors: {}",
                shortlist(names)
            ));
        }
        (false, false) => {
            return bad(
                "mixes reference DLRM (bot_l., emb_l., top_l.) and TorchRec (dense_arch., \
                 sparse_arch., over_arch.) tensors"
                    .into(),
            );
        }
        (false, true) => (PytorchLayout::Reference, reference),
        (true, false) => (PytorchLayout::TorchRec, torchrec),
    };
    if found.len() > 1 {
        let found: Vec<&str> = found.iter().map(|p| p.as_str()).collect();
        return bad(format!(
            "{layout:?} tensors under several prefixes: {}",
            shortlist(&found)
        ));
    }
    Ok((layout, found.into_iter().next().unwrap_or_default()))
}

/// TorchRec table names in the model's feature order.
fn table_order(
    file: &Tensors,
    names: &BTreeSet<&str>,
    given: Option<&[String]>,
) -> Result<Vec<String>> {
    if let Some(order) = given {
        if let Some(missing) = order.iter().find(|t| !names.contains(t.as_str())) {
            let have: Vec<&str> = names.iter().copied().collect();
            return Err(file.error(format!(
                "the table order names {missing:?}, which the file lacks; its tables: {}",
                shortlist(&have)
            )));
        }
        if let Some(unused) = names.iter().find(|t| !order.iter().any(|o| o == *t)) {
            return Err(file.error(format!("table {unused:?} is missing from the table order")));
        }
        return Ok(order.to_vec());
    }
    let mut numbered: BTreeMap<u64, &str> = BTreeMap::new();
    for &name in names {
        let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let number = name[name.len() - digits..].parse::<u64>().ok();
        let Some(number) = number.or((names.len() == 1).then_some(0)) else {
            return Err(file.error(format!(
                "table {name:?} does not end in a number, so the table order is unknown: \
                 give it (ImportOptions::table_order)"
            )));
        };
        if let Some(other) = numbered.insert(number, name) {
            return Err(file.error(format!(
                "tables {other:?} and {name:?} end in the same number, so the table order is \
                 unknown: give it (ImportOptions::table_order)"
            )));
        }
    }
    Ok(numbered.into_values().map(str::to_string).collect())
}

/// The groups of layers of both layouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Part {
    RefBottom,
    RefTop,
    Dense,
    Over,
}

impl Part {
    /// The name of layer `k` without prefix and `.weight`/`.bias`.
    fn stem(self, k: usize) -> String {
        match self {
            Part::RefBottom => format!("bot_l.{k}"),
            Part::RefTop => format!("top_l.{k}"),
            Part::Dense => format!("dense_arch.model._mlp.{k}._linear"),
            Part::Over => format!("over_arch.model.0._mlp.{k}._linear"),
        }
    }
}

/// What a (prefix-stripped) tensor name is.
pub(super) enum Role {
    /// Weight or bias of layer `k` of a part.
    Layer(Part, usize),
    /// The final `Linear` of TorchRec's over arch.
    OverFinal,
    RefTable(usize),
    Bag(String),
}

fn reference_role(name: &str) -> Option<Role> {
    let (head, param) = name.rsplit_once('.')?;
    let (module, index) = head.split_once('.')?;
    let index = canonical_index(index)?;
    match (module, param) {
        ("bot_l", "weight" | "bias") => Some(Role::Layer(Part::RefBottom, index)),
        ("top_l", "weight" | "bias") => Some(Role::Layer(Part::RefTop, index)),
        ("emb_l", "weight") => Some(Role::RefTable(index)),
        _ => None,
    }
}

fn torchrec_role(name: &str) -> Option<Role> {
    if let Some(table) = name
        .strip_prefix("sparse_arch.embedding_bag_collection.embedding_bags.")
        .and_then(|rest| rest.strip_suffix(".weight"))
    {
        return (!table.is_empty() && !table.contains('.')).then(|| Role::Bag(table.to_string()));
    }
    let (head, param) = name.rsplit_once('.')?;
    if !matches!(param, "weight" | "bias") {
        return None;
    }
    if head == "over_arch.model.1" {
        return Some(Role::OverFinal);
    }
    let layer = |stem: &str, part| {
        let index = head.strip_prefix(stem)?.strip_suffix("._linear")?;
        Some(Role::Layer(part, canonical_index(index)?))
    };
    layer("dense_arch.model._mlp.", Part::Dense)
        .or_else(|| layer("over_arch.model.0._mlp.", Part::Over))
}

/// A decimal index as PyTorch writes it (no sign, no leading zeros).
fn canonical_index(s: &str) -> Option<usize> {
    let n: usize = s.parse().ok()?;
    (n.to_string() == s).then_some(n)
}

/// At most five names, and how many more there are.
fn shortlist(names: &[&str]) -> String {
    const SHOWN: usize = 5;
    let mut text = names
        .iter()
        .take(SHOWN)
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}
