//! Importing PyTorch DLRM weights saved as safetensors, in either naming: Facebook's reference
//! DLRM (`dlrm_s_pytorch.py`: `bot_l.N.*`, `emb_l.N.weight`, `top_l.N.*`) or TorchRec's
//! `torchrec.models.dlrm.DLRM` (`dense_arch.*`, `sparse_arch.*`, `over_arch.*`). The layout is
//! told from the names. Files are untrusted: every dtype, shape and value is checked, and a
//! tensor that belongs to neither layout (optimizer state, another model) is refused by name.

mod assemble;
mod names;

use std::path::Path;

use crate::io::{MAX_WEIGHTS_BYTES, read_limited};
use crate::tensors::Tensors;
use crate::{DlrmWeights, Interaction, Result};

use assemble::build;
pub use names::PytorchLayout;
use names::{detect, reference_names, tensor_roles, torchrec_names};

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
    /// The model in this crate's form.
    pub weights: DlrmWeights,
    /// The naming the file followed.
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
    let roles = tensor_roles(&file, &names, layout, &prefix)?;
    let (interaction, tensors) = match layout {
        PytorchLayout::Reference => {
            if options.table_order.is_some() {
                return Err(file.error(
                    "a table order applies to TorchRec files only (reference files number their tables)",
                ));
            }
            (options.interaction, reference_names(&roles, &prefix))
        }
        PytorchLayout::TorchRec => {
            if options.interaction == Some(Interaction::Concat) {
                return Err(file.error(
                    "a TorchRec DLRM has the dot interaction (InteractionArch), not concat",
                ));
            }
            let order = options.table_order.as_deref();
            let tensors = torchrec_names(&file, &roles, &prefix, order)?;
            (Some(Interaction::Dot), tensors)
        }
    };
    let weights = build(&file, interaction, &tensors, layout)?;
    Ok(PytorchImport {
        weights,
        layout,
        tables: tensors.tables,
    })
}
