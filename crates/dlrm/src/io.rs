//! Saving and loading models: a directory with `model.json` (format version, architecture,
//! dataset reference) and `weights.safetensors`. Importing PyTorch weights is in `pytorch/`.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};

use crate::{
    DenseLayer, DlrmError, DlrmWeights, EmbeddingKind, Matrix, ModelConfig, Result, TableConfig,
};

/// File name of the model description inside a model directory.
pub const MODEL_FILE: &str = "model.json";
/// File name of the weights inside a model directory.
pub const WEIGHTS_FILE: &str = "weights.safetensors";
/// Newest version of the model directory format this crate writes and reads. Version 2 added
/// feature roles: a model with a public feature is written as version 2, any other as version
/// 1, byte for byte as before.
pub const MODEL_FORMAT_VERSION: u32 = 2;
/// The version a model whose features are all private is written as.
const ALL_PRIVATE_FORMAT_VERSION: u32 = 1;
/// Largest weights file read (a full-size Kaggle DLRM is about 2.2 GB).
pub const MAX_WEIGHTS_BYTES: u64 = 4 << 30;
/// Largest JSON description read.
pub const MAX_JSON_BYTES: u64 = 64 << 20;

const MODEL_FORMAT: &str = "dlrm-he/float-model";

/// Which prepared dataset a model was trained on, so serving maps raw values to the same ids.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetReference {
    /// The prepared dataset directory (vocabularies are in its manifest).
    pub dir: String,
    /// `criteo` or `uci-heart`.
    pub dataset: String,
    /// The dense columns, in input order.
    pub dense_columns: Vec<String>,
    /// One per table, in table order.
    pub categorical_columns: Vec<String>,
}

impl DatasetReference {
    /// The reference of an opened prepared dataset.
    pub fn of(dataset: &datasets::PreparedDataset) -> Self {
        let m = dataset.manifest();
        Self {
            dir: dataset.dir().display().to_string(),
            dataset: m.dataset.clone(),
            dense_columns: m.dense.iter().map(|d| d.name.clone()).collect(),
            categorical_columns: m.categorical.iter().map(|c| c.name.clone()).collect(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct ModelFile {
    format: String,
    format_version: u32,
    config: ModelConfig,
    dataset: Option<DatasetReference>,
}

/// A model read back from a model directory.
#[derive(Clone, Debug, PartialEq)]
pub struct SavedModel {
    /// The architecture and float weights.
    pub weights: DlrmWeights,
    /// The dataset the model was trained on, `None` for a model made without one.
    pub dataset: Option<DatasetReference>,
}

/// Writes `weights` (and the dataset reference) into directory `dir`, creating it.
///
/// ```
/// let config = dlrm::ModelPreset::Uci.config(2, &[3]);
/// let weights = dlrm::Dlrm::new(&config, 1).unwrap().to_weights().unwrap();
/// let dir = tempfile::tempdir().unwrap();
/// dlrm::save_model(dir.path(), &weights, None).unwrap();
/// assert_eq!(dlrm::load_model(dir.path()).unwrap().weights, weights);
/// ```
pub fn save_model(
    dir: &Path,
    weights: &DlrmWeights,
    dataset: Option<&DatasetReference>,
) -> Result<()> {
    weights.validate()?;
    std::fs::create_dir_all(dir).map_err(|e| DlrmError::io(dir, e))?;
    let mut tensors: BTreeMap<String, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
    let mut put = |name: String, shape: Vec<usize>, values: &[f32]| {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        tensors.insert(name, (shape, bytes));
    };
    for (prefix, layers) in [("bottom", &weights.bottom), ("top", &weights.top)] {
        for (k, layer) in layers.iter().enumerate() {
            let w = &layer.weight;
            put(
                format!("{prefix}.{k}.weight"),
                vec![w.rows, w.cols],
                &w.data,
            );
            put(
                format!("{prefix}.{k}.bias"),
                vec![layer.bias.len()],
                &layer.bias,
            );
        }
    }
    for (t, (table, spec)) in weights
        .tables
        .iter()
        .zip(&weights.config.tables)
        .enumerate()
    {
        put(
            table_tensor_name(t, spec),
            vec![table.rows, table.cols],
            &table.data,
        );
    }
    let views = tensors
        .iter()
        .map(|(name, (shape, bytes))| {
            let view = TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map_err(|e| DlrmError::shape(format!("{name}: {e}")))?;
            Ok((name.clone(), view))
        })
        .collect::<Result<Vec<_>>>()?;
    let bytes = safetensors::serialize(views, None)
        .map_err(|e| DlrmError::shape(format!("serialising weights: {e}")))?;
    let weights_path = dir.join(WEIGHTS_FILE);
    std::fs::write(&weights_path, bytes).map_err(|e| DlrmError::io(&weights_path, e))?;
    let description = ModelFile {
        format: MODEL_FORMAT.into(),
        format_version: if weights.config.roles.all_private() {
            ALL_PRIVATE_FORMAT_VERSION
        } else {
            MODEL_FORMAT_VERSION
        },
        config: weights.config.clone(),
        dataset: dataset.cloned(),
    };
    write_json(&dir.join(MODEL_FILE), &description)
}

/// Reads a model directory written by [`save_model`], checking format version and every shape.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::write(dir.path().join("model.json"), "{}").unwrap();
/// assert!(dlrm::load_model(dir.path()).is_err());
/// ```
pub fn load_model(dir: &Path) -> Result<SavedModel> {
    let path = dir.join(MODEL_FILE);
    let description: ModelFile = read_json(&path)?;
    if description.format != MODEL_FORMAT
        || !(ALL_PRIVATE_FORMAT_VERSION..=MODEL_FORMAT_VERSION)
            .contains(&description.format_version)
    {
        return Err(DlrmError::file(
            &path,
            format!(
                "format {:?} version {} (this build reads {MODEL_FORMAT:?} versions 1 to {MODEL_FORMAT_VERSION})",
                description.format, description.format_version
            ),
        ));
    }
    if description.format_version < MODEL_FORMAT_VERSION && !description.config.roles.all_private()
    {
        return Err(DlrmError::file(
            &path,
            format!(
                "feature roles with a public feature need format version {MODEL_FORMAT_VERSION}, the file says {}",
                description.format_version
            ),
        ));
    }
    let config = description.config;
    config.validate()?;
    let weights_path = dir.join(WEIGHTS_FILE);
    let bytes = read_limited(&weights_path, MAX_WEIGHTS_BYTES)?;
    let file = crate::tensors::Tensors::parse(&weights_path, &bytes)?;
    let shaped = |name: &str, rows: usize, cols: usize| -> Result<Matrix> {
        let matrix = file.matrix(name)?;
        if (matrix.rows, matrix.cols) != (rows, cols) {
            return Err(file.error(format!(
                "{name}: shape [{}, {}], expected [{rows}, {cols}]",
                matrix.rows, matrix.cols
            )));
        }
        Ok(matrix)
    };
    let mlp = |prefix: &str, input: usize, widths: &[usize]| -> Result<Vec<DenseLayer>> {
        let names: Vec<(String, String)> = (0..widths.len())
            .map(|k| (format!("{prefix}.{k}.weight"), format!("{prefix}.{k}.bias")))
            .collect();
        let layers = file.mlp(&names)?;
        // `mlp` chains the layers; the first one's inputs and every width are the config's.
        let mut fan_in = input;
        for ((weight, _), (layer, &out)) in names.iter().zip(layers.iter().zip(widths)) {
            if (layer.weight.rows, layer.weight.cols) != (out, fan_in) {
                return Err(file.error(format!(
                    "{weight}: shape [{}, {}], expected [{out}, {fan_in}]",
                    layer.weight.rows, layer.weight.cols
                )));
            }
            fan_in = out;
        }
        Ok(layers)
    };
    let bottom = mlp("bottom", config.dense_features, &config.bottom)?;
    let top = mlp("top", config.interaction_output(), &config.top)?;
    let tables = config
        .tables
        .iter()
        .enumerate()
        .map(|(t, spec)| {
            shaped(
                &table_tensor_name(t, spec),
                spec.stored_rows(),
                config.embedding_dim,
            )
        })
        .collect::<Result<_>>()?;
    let weights = DlrmWeights {
        config,
        bottom,
        tables,
        top,
    };
    weights.validate()?;
    Ok(SavedModel {
        weights,
        dataset: description.dataset,
    })
}

fn table_tensor_name(t: usize, spec: &TableConfig) -> String {
    match spec.kind {
        EmbeddingKind::Full => format!("tables.{t}.weight"),
        EmbeddingKind::Digits(_) => format!("tables.{t}.codebooks"),
    }
}

/// Reads a whole file, refusing files larger than `limit` bytes.
pub(crate) fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let size = std::fs::metadata(path)
        .map_err(|e| DlrmError::io(path, e))?
        .len();
    if size > limit {
        return Err(DlrmError::file(
            path,
            format!("{size} bytes, the limit is {limit}"),
        ));
    }
    std::fs::read(path).map_err(|e| DlrmError::io(path, e))
}

pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = read_limited(path, MAX_JSON_BYTES)?;
    serde_json::from_slice(&bytes).map_err(|e| DlrmError::file(path, e.to_string()))
}

pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("model descriptions always serialise");
    std::fs::write(path, text + "\n").map_err(|e| DlrmError::io(path, e))
}
