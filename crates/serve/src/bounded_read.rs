//! Reading a local file that should be small (a tenants file, a PEM certificate or key) without
//! trusting its size: at most one byte more than the limit is ever read.

use std::io::Read;
use std::path::Path;

/// The bytes of `path`, or `Ok(None)` when it holds more than `limit` bytes.
pub(crate) fn read_at_most(path: &Path, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
}
