//! Why a report could not be made.

use std::path::PathBuf;

use crate::error::Fault;

/// A failed report. Every variant renders as one line.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The compressed model's layers and its file's layers disagree.
    #[error("the size breakdown has {breakdown} layers but the compressed model {model}")]
    BreakdownMismatch { breakdown: usize, model: usize },
    /// A compressed layer has no counterpart in the original.
    #[error("layer {0} of the compressed model is not in the original model; are they the same network?")]
    MissingLayer(String),
    /// A compressed layer's shape differs from the original's.
    #[error("layer {name} is {original:?} in the original model but {compressed:?} in the compressed one")]
    ShapeMismatch {
        name: String,
        original: [usize; 4],
        compressed: [usize; 4],
    },
    /// plotters failed to draw into a string.
    #[error("cannot draw {what}: {message}")]
    Chart { what: String, message: String },
    /// Formatting the page into a string failed.
    #[error("cannot write the page")]
    Page(#[from] std::fmt::Error),
    /// The output path is a file.
    #[error("{} exists and is not a directory; choose another -o path", .0.display())]
    NotADirectory(PathBuf),
    /// The output directory holds something that is not a report.
    #[error("{} exists and holds {}, which is not part of a report; choose another -o path", dir.display(), name.display())]
    ForeignFile { dir: PathBuf, name: PathBuf },
    /// The output directory cannot be listed.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The report cannot be written.
    #[error("cannot write the report to {}: {source}", dir.display())]
    Write {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Fault for ReportError {
    /// The breakdown comes from the compressed file itself, and drawing or
    /// formatting into memory cannot fail on any input: those are bugs.
    fn is_internal(&self) -> bool {
        matches!(
            self,
            ReportError::BreakdownMismatch { .. }
                | ReportError::Chart { .. }
                | ReportError::Page(_)
        )
    }
}
