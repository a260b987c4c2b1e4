//! Why the compression pipeline failed.

use std::path::PathBuf;

use compress::calib::CalibError;

use crate::engine::EngineError;
use crate::error::{Fault, InternalError};
use crate::imaging::ImagingError;

/// A failed compression. Every variant renders as one line; see
/// [`Fault::is_internal`] for which ones are bugs.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A per-layer setting names a layer the model does not have.
    #[error("unknown layer '{name}' (layers: {layers})")]
    UnknownLayer { name: String, layers: String },
    /// The sensitivity ladder cannot be used.
    #[error("{0}")]
    Ladder(String),
    /// A target size was asked for without calibration images.
    #[error("a target size needs calibration images to measure each layer's sensitivity on")]
    TargetNeedsCalibration,
    /// A target size together with fixed pruning or weight-sharing settings.
    #[error("a target size chooses every layer's sparsity and bits itself; it cannot be combined with fixed pruning or weight-sharing settings")]
    TargetWithFixedSettings,
    /// The budget is below what the smallest plan takes.
    #[error("{0}")]
    Budget(String),
    /// A sparsity placement was asked for without calibration images.
    #[error("placing the sparsity by measured damage needs calibration images (--calib DIR)")]
    PlacementNeedsCalibration,
    /// A sparsity placement together with a global threshold.
    #[error("a sparsity is placed either by one global magnitude threshold or by measured damage, not both")]
    PlacementWithGlobal,
    /// The calibration folder cannot be listed.
    #[error("cannot list calibration folder {}: {source}", dir.display())]
    CalibrationFolder {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The calibration folder has no images.
    #[error("no JPEG or PNG images in calibration folder {}", .0.display())]
    NoCalibrationImages(PathBuf),
    /// A calibration image count of zero.
    #[error("the calibration image count must be at least 1")]
    NoCalibrationCount,
    /// A calibration image cannot be loaded.
    #[error("cannot load the calibration images: {0}")]
    CalibrationImage(#[from] ImagingError),
    /// The network cannot run on the calibration images.
    #[error("the calibration pass failed: {0}")]
    Engine(#[from] EngineError),
    /// Calibrated compression of a layer failed.
    #[error("layer {layer}: {source}")]
    Layer {
        layer: String,
        #[source]
        source: CalibError,
    },
    /// The run would need more memory than is available (found before any
    /// work).
    #[error("{0}")]
    Memory(String),
    /// A layer no convolution uses cannot be calibrated.
    #[error("layer {0} is not used by any convolution, so it cannot be calibrated")]
    UnusedLayer(String),
    /// Fine-tuning was asked for without calibration images.
    #[error("fine-tuning needs calibration images (--calib DIR) to train on")]
    FinetuneNeedsCalibration,
    /// The teacher cannot teach the student.
    #[error("the teacher does not fit the student: {0}")]
    TeacherMismatch(String),
    /// The distillation loss stopped being finite.
    #[error(
        "fine-tuning diverged at step {0} (the loss is not finite); try a lower learning rate"
    )]
    FinetuneDiverged(usize),
    /// Fine-tuning made the file larger than the target size.
    #[error(
        "fine-tuning changed the file from {before} to {after} bytes, above the target of {target}"
    )]
    FinetuneGrewFile {
        before: usize,
        after: usize,
        target: usize,
    },
    /// An invariant of the pipeline does not hold: a bug in sqz.
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl Fault for PipelineError {
    fn is_internal(&self) -> bool {
        match self {
            PipelineError::Internal(_) | PipelineError::FinetuneGrewFile { .. } => true,
            // The inputs of the calibration math are built by the pipeline,
            // so only the model's own values (non-finite weights or
            // activations) and numerically hopeless Hessians are the
            // input's fault.
            PipelineError::Layer { source, .. } => !matches!(
                source,
                CalibError::NonFinite(_) | CalibError::NotPositiveDefinite { .. }
            ),
            _ => false,
        }
    }
}

impl PipelineError {
    /// A calibration error of layer `layer`.
    pub(crate) fn layer(layer: &str) -> impl FnOnce(CalibError) -> PipelineError + '_ {
        move |source| PipelineError::Layer {
            layer: layer.to_string(),
            source,
        }
    }
}
