//! Terminal progress bars for the library's `Progress` hooks.

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub(crate) struct Bar(ProgressBar);

impl Bar {
    pub(crate) fn bytes() -> Self {
        Self::with_template("{msg:>16} [{bar:32}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
    }

    pub(crate) fn rows() -> Self {
        Self::with_template("{msg:>16} [{bar:32}] {human_pos}/{human_len} rows {per_sec} eta {eta}")
    }

    fn with_template(template: &str) -> Self {
        let style = ProgressStyle::with_template(template)
            .expect("a valid template")
            .progress_chars("=> ");
        Self(ProgressBar::new(0).with_style(style))
    }

    pub(crate) fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl datasets::Progress for Bar {
    fn start(&self, phase: &str, total: Option<u64>) {
        self.0.reset();
        self.0.set_length(total.unwrap_or(0));
        self.0.set_message(phase.to_string());
    }

    fn advance(&self, amount: u64) {
        self.0.inc(amount);
    }
}
