//! Criteo click logs (Display Advertising Challenge / Terabyte TSV): parsing, vocabularies and
//! `prepare`, streamed in two passes (count values, then map and write) so memory holds only
//! the vocabularies, whatever the number of rows.
//!
//! Format: `label \t I1..I13 \t C1..C26`, no header; dense fields are integers (may be
//! negative), categorical fields are 32-bit hex ids, an empty field is missing.
//!
//! The pieces, in the order data flows through them: the line format ([`parse_line`]), the
//! parallel pass over a file (`scan`), and [`prepare`] (vocabularies, splits, manifest).

mod format;
mod prepare;
mod scan;

pub use format::{
    CATEGORICAL_FEATURES, DENSE_FEATURES, FIELDS, RawRow, categorical_names, dense_names,
    format_hex, parse_line,
};
pub use prepare::{CriteoOptions, prepare};
