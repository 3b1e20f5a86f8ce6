//! Rows already in a model's input form, as CSV: what a model imported without a prepared
//! dataset calibrates on and serves. A header line names the columns: an optional `label`
//! first (0 or 1), then the dense values exactly as the model reads them (already transformed),
//! then one id per table (the table's row, 0-based).
//!
//! ```text
//! label,d0,d1,d2,d3,c0,c1,c2
//! 1,0.1753,-0.9315,-1.5055,-0.661,3,0,1
//! ```

use std::io::BufRead;
use std::path::Path;

use crate::error::DatasetError;
use crate::prepared::SplitData;

/// Largest encoded-rows file read, so a wrong path cannot exhaust memory.
pub const MAX_ENCODED_BYTES: u64 = 1 << 30;

/// Rows read by [`read_encoded_rows`].
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedRows {
    /// The rows; without a `label` column every label is 0.
    pub rows: SplitData,
    /// Whether the file has a `label` column.
    pub labelled: bool,
}

/// Reads up to `limit` rows of an encoded-rows CSV for a model with `dense` dense inputs and
/// tables of `table_rows` rows. Every value is checked: finite dense values, ids below their
/// table's size, the right column count; a bad line stops with `FILE:LINE: reason`.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("rows.csv");
/// std::fs::write(&path, "label,x,c\n1,0.5,2\n0,-1.5,0\n").unwrap();
/// let read = datasets::read_encoded_rows(&path, 1, &[3], None).unwrap();
/// let rows = read.rows;
/// assert_eq!((rows.labels, rows.dense, rows.categorical), (vec![1, 0], vec![0.5, -1.5], vec![2, 0]));
/// assert!(read.labelled);
/// std::fs::write(&path, "x,c\n0.5,3\n").unwrap();
/// let error = datasets::read_encoded_rows(&path, 1, &[3], None).unwrap_err();
/// assert!(error.to_string().contains(":2: column c: id 3"), "{error}");
/// ```
pub fn read_encoded_rows(
    path: &Path,
    dense: usize,
    table_rows: &[usize],
    limit: Option<usize>,
) -> Result<EncodedRows, DatasetError> {
    let file = std::fs::File::open(path).map_err(|e| DatasetError::io(path, e))?;
    let size = file
        .metadata()
        .map_err(|e| DatasetError::io(path, e))?
        .len();
    if size > MAX_ENCODED_BYTES {
        return Err(DatasetError::InvalidDataset {
            path: path.into(),
            message: format!("{size} bytes, more than the {MAX_ENCODED_BYTES} read"),
        });
    }
    let malformed = |line: u64, message: String| DatasetError::Malformed {
        path: path.into(),
        line,
        message,
    };
    let mut lines = std::io::BufReader::new(file).lines();
    let header = match lines.next() {
        Some(line) => line.map_err(|e| DatasetError::io(path, e))?,
        None => return Err(DatasetError::Empty { path: path.into() }),
    };
    let names: Vec<String> = header.split(',').map(|n| n.trim().to_owned()).collect();
    let labelled = names.first().is_some_and(|n| n == "label");
    let expected = usize::from(labelled) + dense + table_rows.len();
    if names.len() != expected {
        return Err(malformed(
            1,
            format!(
                "{} columns, expected {expected}: {}{dense} dense values and {} ids",
                names.len(),
                if labelled { "the label, " } else { "" },
                table_rows.len()
            ),
        ));
    }
    let columns = &names[usize::from(labelled)..];
    let mut data = SplitData {
        labels: Vec::new(),
        dense: Vec::new(),
        categorical: Vec::new(),
        dense_names: columns[..dense].to_vec(),
        categorical_names: columns[dense..].to_vec(),
    };
    for (index, line) in lines.enumerate() {
        if limit.is_some_and(|limit| data.rows() == limit) {
            break;
        }
        let number = index as u64 + 2;
        let line = line.map_err(|e| DatasetError::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != expected {
            return Err(malformed(
                number,
                format!("{} fields, the header has {expected}", fields.len()),
            ));
        }
        let (label, values) = fields.split_at(usize::from(labelled));
        data.labels.push(match label.first() {
            None => 0,
            Some(&"0") => 0,
            Some(&"1") => 1,
            Some(other) => return Err(malformed(number, format!("label {other:?} is not 0 or 1"))),
        });
        for (name, field) in columns[..dense].iter().zip(&values[..dense]) {
            match field.parse::<f32>() {
                Ok(v) if v.is_finite() => data.dense.push(v),
                _ => {
                    return Err(malformed(
                        number,
                        format!("column {name}: {field:?} is not a finite number"),
                    ));
                }
            }
        }
        for ((name, field), &rows) in columns[dense..]
            .iter()
            .zip(&values[dense..])
            .zip(table_rows)
        {
            match field.parse::<u32>() {
                Ok(id) if (id as usize) < rows => data.categorical.push(id),
                Ok(id) => {
                    return Err(malformed(
                        number,
                        format!("column {name}: id {id} is not below the table's {rows} rows"),
                    ));
                }
                Err(_) => {
                    return Err(malformed(
                        number,
                        format!("column {name}: {field:?} is not an id"),
                    ));
                }
            }
        }
    }
    if data.rows() == 0 {
        return Err(DatasetError::Empty { path: path.into() });
    }
    Ok(EncodedRows {
        rows: data,
        labelled,
    })
}
