//! Vocabularies: raw categorical values to contiguous ids, most frequent first.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use polars::prelude::*;

use crate::DatasetError;

/// The id of a missing value, an unseen value and a value rarer than the `min-count` threshold.
pub const RESERVED_ID: u32 = 0;

/// One categorical column's mapping from raw values to ids.
///
/// Id 0 is [`RESERVED_ID`]; kept values get ids `1..table_size()` in decreasing frequency
/// (ties by raw value), so the same data always gives the same ids.
///
/// ```
/// use datasets::Vocabulary;
/// let vocab = Vocabulary::from_counts("site", [("b", 5), ("a", 5), ("c", 1)], 2, None);
/// assert_eq!(vocab.table_size(), 3);
/// assert_eq!(vocab.id("a"), 1);
/// assert_eq!(vocab.id("b"), 2);
/// assert_eq!(vocab.id("c"), datasets::RESERVED_ID); // below min-count
/// assert_eq!(vocab.raw(2), Some("b"));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Vocabulary {
    name: String,
    raw: Vec<String>,
    counts: Vec<u64>,
    index: HashMap<String, u32>,
}

/// Keeps the keys seen at least `min_count` times, most frequent first (ties by key), at most
/// `max_table_size - 1` of them (id 0 is reserved).
pub(crate) fn rank_by_frequency<K: Ord>(
    counts: impl IntoIterator<Item = (K, u64)>,
    min_count: u64,
    max_table_size: Option<usize>,
) -> Vec<(K, u64)> {
    let mut kept: Vec<(K, u64)> = counts
        .into_iter()
        .filter(|(_, c)| *c >= min_count)
        .collect();
    kept.sort_unstable_by(|(ka, ca), (kb, cb)| cb.cmp(ca).then_with(|| ka.cmp(kb)));
    if let Some(max) = max_table_size {
        kept.truncate(max.saturating_sub(1));
    }
    kept
}

impl Vocabulary {
    /// Builds a vocabulary from value counts (see the type's documentation for the id order).
    pub fn from_counts<S: AsRef<str>>(
        name: &str,
        counts: impl IntoIterator<Item = (S, u64)>,
        min_count: u64,
        max_table_size: Option<usize>,
    ) -> Self {
        let owned = counts
            .into_iter()
            .map(|(raw, c)| (raw.as_ref().to_string(), c));
        let ranked = rank_by_frequency(owned, min_count, max_table_size);
        let (raw, counts) = ranked.into_iter().unzip();
        Self::from_ranked(name, raw, counts)
    }

    /// `raw[i]` gets id `i + 1`.
    pub(crate) fn from_ranked(name: &str, raw: Vec<String>, counts: Vec<u64>) -> Self {
        let index = raw
            .iter()
            .enumerate()
            .map(|(i, r)| (r.clone(), i as u32 + 1))
            .collect();
        Self {
            name: name.to_string(),
            raw,
            counts,
            index,
        }
    }

    /// The categorical column this vocabulary maps.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Rows of the embedding table this vocabulary feeds, the reserved id included.
    pub fn table_size(&self) -> usize {
        self.raw.len() + 1
    }

    /// The id of a raw value: [`RESERVED_ID`] for a missing, unseen or rare value.
    pub fn id(&self, raw: &str) -> u32 {
        self.index.get(raw).copied().unwrap_or(RESERVED_ID)
    }

    /// The raw value of an id, `None` for the reserved id or an id out of range.
    pub fn raw(&self, id: u32) -> Option<&str> {
        let index = (id as usize).checked_sub(1)?;
        self.raw.get(index).map(String::as_str)
    }

    /// How often the value with this id occurred when the vocabulary was built.
    pub fn count(&self, id: u32) -> Option<u64> {
        let index = (id as usize).checked_sub(1)?;
        self.counts.get(index).copied()
    }

    /// Writes the vocabulary as Parquet: columns `id`, `raw`, `count`, in id order.
    pub fn save(&self, path: &Path) -> Result<(), DatasetError> {
        let ids: Vec<u32> = (1..self.table_size() as u32).collect();
        let mut frame = DataFrame::new_infer_height(vec![
            Column::new("id".into(), ids),
            Column::new("raw".into(), &self.raw),
            Column::new("count".into(), &self.counts),
        ])
        .map_err(|e| DatasetError::parquet(path, e))?;
        let file = File::create(path).map_err(|e| DatasetError::io(path, e))?;
        ParquetWriter::new(file)
            .finish(&mut frame)
            .map_err(|e| DatasetError::parquet(path, e))?;
        Ok(())
    }

    /// Reads a vocabulary written by [`Vocabulary::save`], checking that ids are contiguous.
    pub fn load(name: &str, path: &Path) -> Result<Self, DatasetError> {
        let file = File::open(path).map_err(|e| DatasetError::io(path, e))?;
        let frame = ParquetReader::new(file)
            .finish()
            .map_err(|e| DatasetError::parquet(path, e))?;
        let parquet = |e| DatasetError::parquet(path, e);
        let ids = frame
            .column("id")
            .and_then(|c| c.u32().cloned())
            .map_err(parquet)?;
        let raw = frame
            .column("raw")
            .and_then(|c| c.str().cloned())
            .map_err(parquet)?;
        let counts = frame
            .column("count")
            .and_then(|c| c.u64().cloned())
            .map_err(parquet)?;
        let contiguous = ids
            .iter()
            .enumerate()
            .all(|(i, id)| id == Some(i as u32 + 1));
        if !contiguous || raw.null_count() > 0 || counts.null_count() > 0 {
            return Err(DatasetError::invalid(
                path,
                "vocabulary ids must be 1, 2, 3, ... with a raw value and a count each",
            ));
        }
        let raw = raw.iter().flatten().map(str::to_string).collect();
        let counts = counts.iter().flatten().collect();
        Ok(Self::from_ranked(name, raw, counts))
    }
}
