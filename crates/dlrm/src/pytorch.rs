//! Importing PyTorch DLRM weights saved as safetensors, in either naming: Facebook's reference
//! DLRM (`dlrm_s_pytorch.py`: `bot_l.N.*`, `emb_l.N.weight`, `top_l.N.*`) or TorchRec's
//! `torchrec.models.dlrm.DLRM` (`dense_arch.*`, `sparse_arch.*`, `over_arch.*`). The layout is
//! told from the names. Files are untrusted: every dtype, shape and value is checked, and a
//! tensor that belongs to neither layout (optimizer state, another model) is refused by name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::io::{MAX_WEIGHTS_BYTES, read_limited};
use crate::tensors::Tensors;
use crate::weights::dot_pairs;
use crate::{
    DlrmError, DlrmWeights, EmbeddingKind, Interaction, Matrix, ModelConfig, Result, TableConfig,
};

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

/// How to read a PyTorch file; the default infers everything it can.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImportOptions {
    /// The interaction. `None`: TorchRec files are `Dot`; a reference file's is told from the
    /// widths and refused when both fit. TorchRec's `DLRM` only has the dot interaction, so
    /// `Some(Concat)` refuses a TorchRec file.
    pub interaction: Option<Interaction>,
    /// TorchRec only: the table names (as in `embedding_bags.NAME.weight`), one per sparse
    /// feature in the model's feature order (`EmbeddingBagConfig` order, then each config's
    /// `feature_names`); a table serving several features is named once per feature. `None`:
    /// the tables in order of the integer their names end with (`t_cat_0`, `t_cat_1`, ...,
    /// `t_cat_10`), as TorchRec's Criteo example names them; names without one are refused.
    pub table_order: Option<Vec<String>>,
}

/// A model imported by [`import_pytorch_with`].
#[derive(Clone, Debug, PartialEq)]
pub struct PytorchImport {
    pub weights: DlrmWeights,
    pub layout: PytorchLayout,
    /// Per table of `weights`, in order, the tensor it was read from (dataset columns must be
    /// given in this order).
    pub tables: Vec<String>,
}

/// Imports a PyTorch DLRM saved as safetensors (see [`import_pytorch_with`]) with the given
/// interaction: a reference-DLRM file (`bot_l.N.*`, `emb_l.N.weight`, `top_l.N.*`, the
/// `nn.Sequential` index `N` of each `Linear`, ReLU after every layer but the top's last), or a
/// TorchRec file, which needs `Interaction::Dot` and table names ending in their index.
///
/// Converting a reference checkpoint:
/// `safetensors.torch.save_file(model.state_dict(), "m.safetensors")`.
///
/// ```no_run
/// let weights = dlrm::import_pytorch("dlrm.safetensors".as_ref(), dlrm::Interaction::Concat)?;
/// let logit = weights.forward(&[0.1753, -0.9315, -1.5055, -0.6610], &[3, 0, 1])?;
/// # Ok::<(), dlrm::DlrmError>(())
/// ```
pub fn import_pytorch(path: &Path, interaction: Interaction) -> Result<DlrmWeights> {
    let options = ImportOptions {
        interaction: Some(interaction),
        table_order: None,
    };
    Ok(import_pytorch_with(path, &options)?.weights)
}

/// Imports a PyTorch DLRM saved as safetensors, telling the layout from the tensor names. Both
/// layouts may carry one common prefix (`model.` from TorchRec's `DLRMTrain`, `module.` from
/// `DataParallel`). Tensors may be F32, F16 or BF16 (read as `f32`); NaN or infinite values,
/// other dtypes, inconsistent shapes, missing tensors and tensors of neither layout are refused
/// with the tensor's name.
///
/// TorchRec's `InteractionArch` appends the dot products of `[dense, e_1, ..., e_F]` in
/// upper-triangle order (`torch.triu_indices(F + 1, F + 1, offset=1)`: pairs `(i, j)`, `i < j`,
/// row by row); the first over-arch layer's columns are permuted into this crate's order, so
/// the imported model computes the same logits. Its ReLUs (after every dense-arch layer, after
/// every over-arch layer but the final `Linear`) are this crate's.
///
/// ```no_run
/// let options = dlrm::ImportOptions {
///     table_order: Some(vec!["user".into(), "item".into()]),
///     ..Default::default()
/// };
/// let import = dlrm::import_pytorch_with("torchrec.safetensors".as_ref(), &options)?;
/// assert_eq!(import.layout, dlrm::PytorchLayout::TorchRec);
/// # Ok::<(), dlrm::DlrmError>(())
/// ```
pub fn import_pytorch_with(path: &Path, options: &ImportOptions) -> Result<PytorchImport> {
    let bytes = read_limited(path, MAX_WEIGHTS_BYTES)?;
    let file = Tensors::parse(path, &bytes)?;
    let mut names: Vec<&str> = file.names();
    names.sort_unstable();
    let (layout, prefix) = detect(path, &names)?;
    let mut unexpected = Vec::new();
    let mut roles = Vec::new();
    for &name in &names {
        let role = name
            .strip_prefix(prefix.as_str())
            .and_then(|rest| match layout {
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
    let layers = |part: Part| -> BTreeSet<usize> {
        roles
            .iter()
            .filter_map(|r| match r {
                Role::Layer(p, k) if *p == part => Some(*k),
                _ => None,
            })
            .collect()
    };
    let pairs = |part: Part, indices: Vec<usize>| -> Vec<(String, String)> {
        indices
            .into_iter()
            .map(|k| {
                let stem = format!("{prefix}{}", part.stem(k));
                (format!("{stem}.weight"), format!("{stem}.bias"))
            })
            .collect()
    };
    match layout {
        PytorchLayout::Reference => {
            if options.table_order.is_some() {
                return Err(file.error(
                    "a table order applies to TorchRec files only (reference files number their tables)",
                ));
            }
            let indices = |part| layers(part).into_iter().collect::<Vec<_>>();
            let bottom = pairs(Part::RefBottom, indices(Part::RefBottom));
            let top = pairs(Part::RefTop, indices(Part::RefTop));
            let tables: Vec<String> = roles
                .iter()
                .filter_map(|r| match r {
                    Role::RefTable(n) => Some(*n),
                    _ => None,
                })
                .collect::<BTreeSet<_>>()
                .into_iter()
                .map(|n| format!("{prefix}emb_l.{n}.weight"))
                .collect();
            build(&file, options.interaction, &bottom, &tables, &top, layout).map(|weights| {
                PytorchImport {
                    weights,
                    layout,
                    tables,
                }
            })
        }
        PytorchLayout::TorchRec => {
            if options.interaction == Some(Interaction::Concat) {
                return Err(file.error(
                    "a TorchRec DLRM has the dot interaction (InteractionArch), not concat",
                ));
            }
            let contiguous = |part: Part| -> Result<Vec<usize>> {
                let found = layers(part);
                let count = found.last().map_or(0, |k| k + 1);
                match (0..count.max(1)).find(|k| !found.contains(k)) {
                    Some(k) => {
                        Err(file.error(format!("missing tensor {prefix}{}.weight", part.stem(k))))
                    }
                    None => Ok((0..count).collect()),
                }
            };
            let bottom = pairs(Part::Dense, contiguous(Part::Dense)?);
            let mut top = pairs(Part::Over, contiguous(Part::Over)?);
            top.push((
                format!("{prefix}over_arch.model.1.weight"),
                format!("{prefix}over_arch.model.1.bias"),
            ));
            let names: BTreeSet<&str> = roles
                .iter()
                .filter_map(|r| match r {
                    Role::Bag(name) => Some(name.as_str()),
                    _ => None,
                })
                .collect();
            let order = table_order(&file, &names, options.table_order.as_deref())?;
            let tables: Vec<String> = order
                .iter()
                .map(|t| {
                    format!(
                        "{prefix}sparse_arch.embedding_bag_collection.embedding_bags.{t}.weight"
                    )
                })
                .collect();
            build(
                &file,
                Some(Interaction::Dot),
                &bottom,
                &tables,
                &top,
                layout,
            )
            .map(|weights| PytorchImport {
                weights,
                layout,
                tables,
            })
        }
    }
}

/// The layout of a file and the prefix every one of its tensor names carries.
fn detect(path: &Path, names: &[&str]) -> Result<(PytorchLayout, String)> {
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

/// Reads the layers and tables named and assembles the model; for TorchRec, the first top
/// layer's pair columns are permuted from TorchRec's order.
fn build(
    file: &Tensors,
    interaction: Option<Interaction>,
    bottom: &[(String, String)],
    tables: &[String],
    top: &[(String, String)],
    layout: PytorchLayout,
) -> Result<DlrmWeights> {
    let (Some(last_bottom), Some(first_top), Some(first_table)) =
        (bottom.last(), top.first(), tables.first())
    else {
        return Err(file.error("needs at least one bottom layer, one table and one top layer"));
    };
    let bottom = file.mlp(bottom)?;
    let mut top = file.mlp(top)?;
    // Each table read once; one named for several features is copied for all but its last.
    let mut read: BTreeMap<&str, (Matrix, usize)> = BTreeMap::new();
    for name in tables {
        match read.get_mut(name.as_str()) {
            Some((_, uses)) => *uses += 1,
            None => {
                read.insert(name, (file.matrix(name)?, 1));
            }
        }
    }
    let embedding_dim = read[first_table.as_str()].0.cols;
    for (name, (m, _)) in &read {
        if m.cols != embedding_dim {
            return Err(file.error(format!(
                "{name}: {} columns, but {first_table} has {embedding_dim} (one embedding \
                 dimension for all tables)",
                m.cols
            )));
        }
    }
    let tables: Vec<Matrix> = tables
        .iter()
        .map(|name| {
            let (matrix, uses) = read.get_mut(name.as_str()).expect("every table was read");
            *uses -= 1;
            if *uses == 0 {
                std::mem::replace(matrix, Matrix::zeros(0, 0))
            } else {
                matrix.clone()
            }
        })
        .collect();
    let bottom_out = bottom[bottom.len() - 1].weight.rows;
    let last_bottom = &last_bottom.0;
    let t = tables.len();
    let concat_width = bottom_out + t * embedding_dim;
    let dot_width = bottom_out + (t + 1) * t / 2;
    let dot_fits = bottom_out == embedding_dim;
    let top_in = top[0].weight.cols;
    let top_name = &first_top.0;
    let interaction = match interaction {
        Some(Interaction::Dot) if !dot_fits => {
            return Err(file.error(format!(
                "{last_bottom}: {bottom_out} outputs, but the dot interaction needs the embedding \
                 dimension {embedding_dim}"
            )));
        }
        Some(i) => i,
        None => match (dot_fits && top_in == dot_width, top_in == concat_width) {
            (true, false) => Interaction::Dot,
            (false, true) => Interaction::Concat,
            (true, true) => {
                return Err(file.error(format!(
                    "{top_name}: {top_in} inputs fit both the concat and the dot interaction; \
                     give the interaction"
                )));
            }
            (false, false) => {
                return Err(file.error(format!(
                    "{top_name}: {top_in} inputs, but concat needs {concat_width} and dot {}",
                    if dot_fits {
                        dot_width.to_string()
                    } else {
                        format!("a bottom output of {embedding_dim}")
                    }
                )));
            }
        },
    };
    let expected = match interaction {
        Interaction::Concat => concat_width,
        Interaction::Dot => dot_width,
    };
    if top_in != expected {
        return Err(file.error(format!(
            "{top_name}: {top_in} inputs, but a {bottom_out}-wide bottom output and {t} tables of \
             dimension {embedding_dim} give {expected} with the {interaction:?} interaction{}",
            if layout == PytorchLayout::TorchRec {
                " (one table per sparse feature: give the table order when tables are shared)"
            } else {
                ""
            }
        )));
    }
    if layout == PytorchLayout::TorchRec {
        top[0].weight = upper_to_lower_pairs(&top[0].weight, bottom_out, t + 1);
    }
    let config = ModelConfig {
        dense_features: bottom[0].weight.cols,
        bottom: bottom.iter().map(|l| l.weight.rows).collect(),
        embedding_dim,
        tables: tables
            .iter()
            .map(|m| TableConfig {
                rows: m.rows,
                kind: EmbeddingKind::Full,
            })
            .collect(),
        interaction,
        top: top.iter().map(|l| l.weight.rows).collect(),
    };
    let weights = DlrmWeights {
        config,
        bottom,
        tables,
        top,
    };
    weights.validate().map_err(|e| {
        file.error(format!(
            "not a DLRM with the {interaction:?} interaction: {e}"
        ))
    })?;
    Ok(weights)
}

/// Reorders the pair columns of `w` (after the first `dense` ones) from TorchRec's
/// upper-triangle order over `vectors` vectors to this crate's lower-triangle order.
fn upper_to_lower_pairs(w: &Matrix, dense: usize, vectors: usize) -> Matrix {
    // Position of pair (a, b), a < b, in row-major upper-triangle order.
    let upper = |a: usize, b: usize| a * (2 * vectors - a - 1) / 2 + (b - a - 1);
    let sources: Vec<usize> = (0..dense)
        .chain(dot_pairs(vectors).map(|(i, j)| dense + upper(j, i)))
        .collect();
    let data = (0..w.rows)
        .flat_map(|r| sources.iter().map(move |&c| w.data[r * w.cols + c]))
        .collect();
    Matrix {
        rows: w.rows,
        cols: w.cols,
        data,
    }
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
enum Part {
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
enum Role {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torchrec_pairs_move_to_reference_order() {
        // Three vectors: TorchRec's pairs (0,1), (0,2), (1,2); ours (1,0), (2,0), (2,1).
        let w = Matrix::new(1, 5, vec![9.0, 8.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!(
            upper_to_lower_pairs(&w, 2, 3).data,
            vec![9.0, 8.0, 1.0, 2.0, 3.0]
        );
        // Four vectors: upper (0,1) (0,2) (0,3) (1,2) (1,3) (2,3);
        // lower (1,0) (2,0) (2,1) (3,0) (3,1) (3,2).
        let w = Matrix::new(1, 6, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        assert_eq!(
            upper_to_lower_pairs(&w, 0, 4).data,
            vec![1.0, 2.0, 4.0, 3.0, 5.0, 6.0]
        );
    }
}
