/// Progress reporting for long operations, so the library stays free of any terminal UI.
///
/// The binary implements it with a progress bar; tests and libraries pass [`NoProgress`].
///
/// ```
/// use datasets::{NoProgress, Progress};
/// let progress = NoProgress;
/// progress.start("counting", Some(100));
/// progress.advance(100);
/// ```
pub trait Progress: Sync {
    /// A new phase begins; `total` is its length in the unit `advance` counts (bytes here).
    fn start(&self, phase: &str, total: Option<u64>);
    /// `amount` more units of the current phase are done.
    fn advance(&self, amount: u64);
}

/// A [`Progress`] that reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _phase: &str, _total: Option<u64>) {}
    fn advance(&self, _amount: u64) {}
}
