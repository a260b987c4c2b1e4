//! Progress bars for long commands: drawn on stderr when it is a terminal
//! (indicatif hides them otherwise), and never with `--quiet`.

use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressStyle};

/// Set once from `--quiet` before the command runs.
static QUIET: AtomicBool = AtomicBool::new(false);

/// Record whether `--quiet` was given.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether notes and progress must stay silent.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// A progress bar of `len` steps drawn with the indicatif `template`, or a
/// hidden one under `--quiet`.
pub fn bar(len: u64, template: &str) -> anyhow::Result<ProgressBar> {
    if quiet() {
        return Ok(ProgressBar::hidden());
    }
    Ok(ProgressBar::new(len).with_style(ProgressStyle::with_template(template)?))
}

/// Print a `note: ...` line on stderr unless `--quiet` was given.
pub fn note(message: &str) {
    if !quiet() {
        eprintln!("note: {message}");
    }
}
