//! Helpers shared by the integration tests that read the shared samples back.

use std::path::{Path, PathBuf};

use datasets::SplitData;
use datasets::shared::shared_file;

const KAGGLE_HEAD: &str = "data/criteo/kaggle_train_head8000";

pub(crate) fn kaggle_file(name: &str) -> Option<PathBuf> {
    shared_file(&format!("{KAGGLE_HEAD}/{name}"))
}

/// The three Kaggle head files in order: the first 8,000 lines of `train.txt`.
pub(crate) fn kaggle_union(dir: &Path) -> Option<PathBuf> {
    let mut text = Vec::new();
    for name in ["train.tsv", "dev.tsv", "test.tsv"] {
        text.extend(std::fs::read(kaggle_file(name)?).unwrap());
    }
    let path = dir.join("head8000.tsv");
    std::fs::write(&path, text).unwrap();
    Some(path)
}

/// Walks raw rows in file order and finds each, in order, in one of the splits.
pub(crate) struct SplitCursor<'a> {
    splits: Vec<(&'a SplitData, usize)>,
}

impl<'a> SplitCursor<'a> {
    pub(crate) fn new(splits: &'a [SplitData]) -> Self {
        Self {
            splits: splits.iter().map(|s| (s, 0)).collect(),
        }
    }

    pub(crate) fn expect_next(&mut self, label: u8, dense: &[f32], ids: &[u32]) {
        for (split, next) in self.splits.iter_mut() {
            if *next < split.rows()
                && split.labels[*next] == label
                && split.dense_row(*next) == dense
                && split.categorical_row(*next) == ids
            {
                *next += 1;
                return;
            }
        }
        panic!("row (label {label}, dense {dense:?}, ids {ids:?}) is not next in any split");
    }

    pub(crate) fn assert_exhausted(&self) {
        for (split, next) in &self.splits {
            assert_eq!(*next, split.rows(), "rows left over in a split");
        }
    }
}
