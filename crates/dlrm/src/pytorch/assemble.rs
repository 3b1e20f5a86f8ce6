//! Assembling a model from the named tensors: reading the layers and tables, telling or checking
//! the interaction from their widths, and moving TorchRec's pair columns into this crate's order.

use std::collections::BTreeMap;

use crate::tensors::Tensors;
use crate::weights::dot_pairs;
use crate::{DlrmWeights, EmbeddingKind, Interaction, Matrix, ModelConfig, Result, TableConfig};

use super::names::{PytorchLayout, TensorNames};

/// Reads the layers and tables named and assembles the model; for TorchRec, the first top
/// layer's pair columns are permuted from TorchRec's order.
pub(super) fn build(
    file: &Tensors,
    interaction: Option<Interaction>,
    names: &TensorNames,
    layout: PytorchLayout,
) -> Result<DlrmWeights> {
    let TensorNames {
        bottom,
        tables,
        top,
    } = names;
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
        roles: Default::default(),
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
