//! Where fine-tuning runs in a recipe. A recipe that both prunes and shares
//! weights fine-tunes twice, in Deep Compression's order: after pruning,
//! every surviving weight trains at full precision (mask fixed: lots of
//! capacity to recover the pruning damage); the tuned weights are then
//! shared (k-means, GPTQ assignment, bias correction on the calibration
//! images), and the shared values train with the codes fixed. Any other
//! recipe fine-tunes once, at the end.

use formats::Model;

use super::{finetune, Finetune, FinetuneReport, Stage};
use crate::engine::Tensor;
use crate::pipeline::calib_images::CalibrationImages;
use crate::pipeline::calibration::{compress_calibrated, CalibrationSpec};
use crate::pipeline::{PipelineError, Progress};

/// A recipe's fine-tuning: its settings, teacher and training images, and
/// what the stage before weight sharing did once it ran.
pub struct Tuning<'a> {
    spec: &'a Finetune,
    teacher: &'a Model,
    images: &'a CalibrationImages,
    /// The report of [`Stage::BeforeSharing`], when its model was kept.
    pub before_sharing: Option<FinetuneReport>,
}

impl<'a> Tuning<'a> {
    /// Fine-tuning as `spec` says, towards `teacher`, on `images`.
    pub fn new(spec: &'a Finetune, teacher: &'a Model, images: &'a CalibrationImages) -> Self {
        Tuning {
            spec,
            teacher,
            images,
            before_sharing: None,
        }
    }

    /// Fine-tune `model` for the steps of `stage`.
    pub fn run(
        &self,
        model: &Model,
        stage: Stage,
        progress: &mut dyn Progress,
    ) -> Result<(Model, FinetuneReport), PipelineError> {
        finetune(model, self.teacher, self.images, self.spec, stage, progress)
    }

    /// Whether a recipe that both prunes and shares weights fine-tunes
    /// between the two.
    pub fn two_stage(&self) -> bool {
        self.spec.two_stage
    }

    /// Prune `original` as `spec.prune` says, calibrated on `batch`, and
    /// fine-tune the pruned model ([`Stage::BeforeSharing`], its report
    /// kept in [`Tuning::before_sharing`]); weight sharing is left to the
    /// caller.
    pub fn prune_and_tune(
        &mut self,
        original: &Model,
        batch: &Tensor,
        spec: &CalibrationSpec,
        progress: &mut dyn Progress,
    ) -> Result<Model, PipelineError> {
        let pruning = CalibrationSpec {
            quantize: None,
            ..spec.clone()
        };
        let pruned = calibrate(original, batch, &pruning, progress)?;
        let (tuned, report) = self.run(&pruned, Stage::BeforeSharing, progress)?;
        self.before_sharing = Some(report);
        Ok(tuned)
    }
}

/// [`compress_calibrated`] as a progress phase.
pub(crate) fn calibrate(
    model: &Model,
    batch: &Tensor,
    spec: &CalibrationSpec,
    progress: &mut dyn Progress,
) -> Result<Model, PipelineError> {
    progress.phase("calibrating", model.layers.len(), "layers");
    compress_calibrated(model, batch, spec, &mut |name| progress.layer(name))
}
