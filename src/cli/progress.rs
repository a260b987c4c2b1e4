//! Progress bars for long commands: drawn on stderr when it is a terminal
//! (indicatif hides them otherwise), and never with `--quiet`.

use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressStyle};

use crate::pipeline::Progress;

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

/// A progress bar of `len` steps drawn with the indicatif `template` (a
/// constant of sqz, so an invalid one is a bug), or a hidden one under
/// `--quiet`.
pub fn bar(len: u64, template: &str) -> ProgressBar {
    if quiet() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(template).expect("progress templates are valid");
    ProgressBar::new(len).with_style(style)
}

/// Print a `note: ...` line on stderr unless `--quiet` was given.
pub fn note(message: &str) {
    if !quiet() {
        eprintln!("note: {message}");
    }
}

/// The pipeline's progress as one bar per phase, and its
/// notes as `note:` lines.
#[derive(Default)]
pub struct Bars {
    bar: Option<ProgressBar>,
}

impl Bars {
    fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Bars {
    fn phase(&mut self, name: &str, total: usize, unit: &str) {
        self.clear();
        let template = format!("{name} {{bar:30}} {{pos}}/{{len}} {unit} {{msg}}");
        self.bar = Some(bar(total as u64, &template));
    }

    fn layer(&mut self, name: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(name.to_string());
            bar.inc(1);
        }
    }

    fn note(&mut self, message: &str) {
        self.clear();
        note(message);
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        self.clear();
    }
}
