//! The compression pipeline: a [`Recipe`] applied to a [`Model`] gives a
//! [`Compressed`] model, its `.sqz` file and a per-layer report.
//!
//! Every stage is optional and the recipe says which run:
//!
//! - **pruning** ([`prune`]) and **weight sharing** ([`quantize`]), with
//!   fixed settings, plainly (magnitude pruning, k-means) or, with
//!   [`Recipe::calibration`], layer by layer on unlabeled calibration
//!   images ([`calibration`], images picked by [`calib_images`]);
//! - with calibration, a pruning sparsity is by default a budget over the
//!   whole network, **placed** where measured damage is least
//!   ([`placement`]);
//! - or a **target size** ([`target_size`]), which measures each layer's
//!   sensitivity ([`sensitivity`]) and chooses per-layer settings for the
//!   budget ([`allocation`]); it needs calibration images;
//! - then **fine-tuning** ([`finetune`]) of the compressed model towards the
//!   original by distillation on the calibration images, which changes
//!   shared values, unpruned weights and biases but never which weights are
//!   pruned or which code each has, so the file keeps its size; a recipe
//!   that both prunes and shares weights also fine-tunes between the two,
//!   as Deep Compression retrains ([`finetune::Stage`]).
//!
//! The result is always stored losslessly in the smallest storage per
//! layer. A new stage is one more optional field of [`Recipe`], its module
//! here and its CLI options; nothing else changes. Defaults live in
//! [`defaults`], errors in [`error`].

pub mod allocation;
pub mod calib_images;
pub mod calibration;
pub mod defaults;
pub mod error;
pub mod finetune;
pub mod layer_hessian;
pub mod memory_plan;
pub mod params;
pub mod placement;
pub mod prune;
pub mod quantize;
pub mod report;
pub mod sensitivity;
pub mod sensitivity_cache;
pub mod tails;
pub mod target_size;
pub mod workload;

use formats::sqz::{size_breakdown, write_sqz, SqzFile};
use formats::Model;

use crate::error::InternalError;
use calib_images::CalibrationImages;
use calibration::{CalibrationOptions, CalibrationSpec};
pub use error::PipelineError;
use finetune::{calibrate, Finetune, FinetuneReport, Stage, Tuning};
use formats::sqz::encode_model;
use memory_plan::MemoryNeed;
use params::check_layer_names;
use placement::SparsityPlacement;
use prune::{prune_model, PruneSpec};
use quantize::{quantize_model, round_model_half, QuantizeSpec};
use report::{CompressionReport, LayersBefore, PlacementReport, PlanReport};
use target_size::TargetSize;

/// What to do to a model. Every stage is optional; with none, the model is
/// only re-encoded (losslessly).
#[derive(Debug, Clone, Default)]
pub struct Recipe {
    /// Fixed pruning settings.
    pub prune: Option<PruneSpec>,
    /// Place `prune`'s sparsity over the whole network by measured damage
    /// instead of the same sparsity in every layer (needs `calibration`).
    pub placement: Option<SparsityPlacement>,
    /// Fixed weight-sharing settings.
    pub quantize: Option<QuantizeSpec>,
    /// Fit each layer to calibration images instead of pruning by magnitude
    /// and sharing by plain k-means.
    pub calibration: Option<Calibration>,
    /// Choose every layer's settings to fit a byte budget (instead of
    /// `prune` and `quantize`; needs `calibration`).
    pub target_size: Option<TargetSize>,
    /// Store codebooks, biases and unshared weights as float16.
    pub half: bool,
    /// Fine-tune the compressed model by distillation (needs
    /// `calibration`), after the other stages, and between pruning and
    /// weight sharing when both run.
    pub finetune: Option<Finetune>,
}

/// The calibration images and how layers are fitted to them.
#[derive(Debug, Clone)]
pub struct Calibration {
    /// Which images.
    pub images: CalibrationImages,
    /// How layers are fitted to them.
    pub options: CalibrationOptions,
    /// Refuse, before any work, a run estimated to need more bytes than
    /// this ([`memory_plan`]); `None` checks nothing.
    pub max_memory: Option<u64>,
}

impl Calibration {
    /// Check that the calibrated stages `recipe` asks of `model` fit
    /// [`Calibration::max_memory`].
    fn check_memory(&self, model: &Model, recipe: &Recipe) -> Result<(), PipelineError> {
        let Some(limit) = self.max_memory else {
            return Ok(());
        };
        let block = self.options.hessian_block;
        MemoryNeed::compression(model, block, self.options.match_original)?.check(
            "calibrated compression",
            self.images.count,
            limit,
        )?;
        let sensitivity_runs = [
            recipe.target_size.as_ref().map(|t| &t.sensitivity),
            recipe.placement.as_ref().map(|p| &p.sensitivity),
        ];
        for run in sensitivity_runs.into_iter().flatten() {
            MemoryNeed::sensitivity(model, block)?.check(
                "sensitivity analysis",
                run.images.min(self.images.count),
                limit,
            )?;
        }
        Ok(())
    }
}

/// The outcome of [`compress`].
#[derive(Debug, Clone)]
pub struct Compressed {
    /// The compressed model, dense, as the engine runs it.
    pub model: Model,
    /// Its `.sqz` file.
    pub bytes: Vec<u8>,
    /// What was done, per layer and in total.
    pub report: CompressionReport,
    /// What fine-tuning did, when it ran (its last stage, when it ran
    /// twice).
    pub finetune: Option<FinetuneReport>,
    /// What fine-tuning did before weight sharing, when the recipe both
    /// pruned and shared weights ([`finetune::Stage::BeforeSharing`]).
    pub finetune_before_sharing: Option<FinetuneReport>,
}

/// Where long stages report how far they are; the CLI draws progress bars.
pub trait Progress {
    /// A phase of `total` steps counted in `unit` (e.g. `"calibrating"`, 26,
    /// `"layers"`) begins, ending the previous one.
    fn phase(&mut self, name: &str, total: usize, unit: &str);
    /// The current phase starts its next step, described by `name` (a layer
    /// name, or a training step's loss).
    fn layer(&mut self, name: &str);
    /// Something the user may want to know.
    fn note(&mut self, message: &str);
}

/// A [`Progress`] that ignores everything.
pub struct Silent;

impl Progress for Silent {
    fn phase(&mut self, _: &str, _: usize, _: &str) {}
    fn layer(&mut self, _: &str) {}
    fn note(&mut self, _: &str) {}
}

/// A model encoded as a `.sqz` file.
pub(crate) struct Encoded {
    file: SqzFile,
    bytes: Vec<u8>,
}

impl Encoded {
    /// Encode `model`, each layer in its smallest storage.
    fn new(model: &Model) -> Self {
        let file = encode_model(model);
        let bytes = write_sqz(&file);
        Encoded { file, bytes }
    }
}

/// Apply `recipe` to `original`, which is consumed: a model is held twice
/// only while a stage needs both (calibration compresses a copy layer by
/// layer; fine-tuning's default teacher is the original), so plain pruning
/// and weight sharing of VGG-16 work in place.
pub fn compress(
    original: Model,
    recipe: &Recipe,
    progress: &mut dyn Progress,
) -> Result<Compressed, PipelineError> {
    recipe.check(&original)?;
    let before = LayersBefore::of(&original);
    let built = match &recipe.target_size {
        Some(target) => build_to_target(original, target, recipe, progress)?,
        None => build_fixed(original, recipe, progress)?,
    };
    let model = built.model;
    let encoded = built.encoded.unwrap_or_else(|| Encoded::new(&model));
    let breakdown = size_breakdown(&encoded.file);
    let report = CompressionReport {
        placement: built.placement,
        ..CompressionReport::new(
            &before,
            &model,
            built.quantize.as_ref(),
            (&breakdown, encoded.bytes.len()),
            built.plan,
        )
    };
    Ok(Compressed {
        model,
        bytes: encoded.bytes,
        report,
        finetune: built.finetune,
        finetune_before_sharing: built.finetune_before_sharing,
    })
}

/// What the stages of [`compress`] built, before the report.
struct Built {
    model: Model,
    quantize: Option<QuantizeSpec>,
    /// The model's file, when a stage had to encode it already.
    encoded: Option<Encoded>,
    plan: Option<PlanReport>,
    placement: Option<PlacementReport>,
    finetune: Option<FinetuneReport>,
    finetune_before_sharing: Option<FinetuneReport>,
}

/// Compress `original` to the recipe's byte budget `target`, then
/// fine-tune.
fn build_to_target(
    original: Model,
    target: &TargetSize,
    recipe: &Recipe,
    progress: &mut dyn Progress,
) -> Result<Built, PipelineError> {
    let calibration = recipe
        .calibration
        .as_ref()
        .ok_or(PipelineError::TargetNeedsCalibration)?;
    let mut tuning = tuning(recipe, Some(&original))?;
    let fitted = target_size::fit(
        &original,
        target,
        calibration,
        recipe.half,
        tuning.as_mut().filter(|t| t.two_stage()),
        progress,
    )?;
    let built = Built {
        model: fitted.model,
        quantize: Some(fitted.quantize),
        encoded: Some(fitted.encoded),
        plan: Some(fitted.plan),
        placement: None,
        finetune: None,
        finetune_before_sharing: None,
    };
    finish_tuning(built, tuning, Some(target.bytes), progress)
}

/// Compress `original` with the recipe's fixed settings, then fine-tune.
fn build_fixed(
    original: Model,
    recipe: &Recipe,
    progress: &mut dyn Progress,
) -> Result<Built, PipelineError> {
    let needs_teacher = recipe
        .finetune
        .as_ref()
        .is_some_and(|spec| spec.teacher.is_none());
    let teacher = needs_teacher.then(|| original.clone());
    let mut tuning = tuning(recipe, teacher.as_ref())?;
    let (model, placement) = compress_fixed(original, recipe, tuning.as_mut(), progress)?;
    let built = Built {
        model,
        quantize: recipe.quantize.clone(),
        encoded: None,
        plan: None,
        placement,
        finetune: None,
        finetune_before_sharing: None,
    };
    finish_tuning(built, tuning, None, progress)
}

/// The recipe's fine-tuning, towards its teacher or else `original`.
fn tuning<'a>(
    recipe: &'a Recipe,
    original: Option<&'a Model>,
) -> Result<Option<Tuning<'a>>, PipelineError> {
    let Some(spec) = &recipe.finetune else {
        return Ok(None);
    };
    let calibration = recipe
        .calibration
        .as_ref()
        .ok_or(PipelineError::FinetuneNeedsCalibration)?;
    let teacher = spec
        .teacher
        .as_ref()
        .or(original)
        .ok_or_else(|| InternalError("fine-tuning has no teacher".to_string()))?;
    Ok(Some(Tuning::new(spec, teacher, &calibration.images)))
}

/// The last fine-tuning stage: after weight sharing when a stage ran
/// before it, else the only one. Fine-tuning keeps every layer's storage,
/// so a file fitted to the byte budget `target` still fits it; checked,
/// since a file above the budget must never be written.
fn finish_tuning(
    built: Built,
    tuning: Option<Tuning>,
    target: Option<usize>,
    progress: &mut dyn Progress,
) -> Result<Built, PipelineError> {
    let Some(tuning) = tuning else {
        return Ok(built);
    };
    let stage = match tuning.before_sharing {
        Some(_) => Stage::AfterSharing,
        None => Stage::Only,
    };
    let (model, report) = tuning.run(&built.model, stage, progress)?;
    let encoded = Encoded::new(&model);
    if let Some(target) = target {
        let before = built.encoded.as_ref().map_or(0, |e| e.bytes.len());
        let after = encoded.bytes.len();
        if after > target {
            return Err(PipelineError::FinetuneGrewFile {
                before,
                after,
                target,
            });
        }
    }
    Ok(Built {
        model,
        encoded: Some(encoded),
        finetune: Some(report),
        finetune_before_sharing: tuning.before_sharing,
        ..built
    })
}

impl Recipe {
    /// Check the recipe against the model before any work.
    fn check(&self, model: &Model) -> Result<(), PipelineError> {
        if self.target_size.is_some() && (self.prune.is_some() || self.quantize.is_some()) {
            return Err(PipelineError::TargetWithFixedSettings);
        }
        if self.finetune.is_some() && self.calibration.is_none() {
            return Err(PipelineError::FinetuneNeedsCalibration);
        }
        if self.placement.is_some() {
            if self.calibration.is_none() {
                return Err(PipelineError::PlacementNeedsCalibration);
            }
            if self.prune.as_ref().is_some_and(|p| p.global) {
                return Err(PipelineError::PlacementWithGlobal);
            }
        }
        let prune_names = self.prune.iter().flat_map(|p| p.per_layer.keys());
        let quantize_names = self.quantize.iter().flat_map(|q| q.per_layer.keys());
        check_layer_names(model, prune_names.chain(quantize_names).map(String::as_str))?;
        match &self.calibration {
            Some(calibration) => calibration.check_memory(model, self),
            None => Ok(()),
        }
    }
}

/// Prune and share weights with the recipe's fixed settings (the pruning
/// sparsity placed by damage first, when asked): in place without
/// calibration, on a copy made layer by layer with it. With `tuning` and
/// both stages, the pruned model is fine-tuned before weight sharing.
fn compress_fixed(
    original: Model,
    recipe: &Recipe,
    tuning: Option<&mut Tuning>,
    progress: &mut dyn Progress,
) -> Result<(Model, Option<PlacementReport>), PipelineError> {
    let mut placement = None;
    let mut model = match &recipe.calibration {
        Some(calibration) => {
            let prune = match (&recipe.prune, &recipe.placement) {
                (Some(spec), Some(how)) => {
                    let (placed, report) =
                        placement::place(&original, spec, how, calibration, progress)?;
                    placement = Some(report);
                    Some(placed)
                }
                (prune, _) => prune.clone(),
            };
            let batch = calibration
                .images
                .load(&original, calibration.images.count)?;
            let spec = CalibrationSpec {
                prune,
                quantize: recipe.quantize.clone(),
                half: recipe.half,
                options: calibration.options,
            };
            match tuning {
                Some(tuning)
                    if tuning.two_stage() && spec.prune.is_some() && spec.quantize.is_some() =>
                {
                    let tuned = tuning.prune_and_tune(&original, &batch, &spec, progress)?;
                    let sharing = CalibrationSpec {
                        prune: None,
                        ..spec
                    };
                    calibrate(&tuned, &batch, &sharing, progress)?
                }
                _ => calibrate(&original, &batch, &spec, progress)?,
            }
        }
        None => {
            let mut model = original;
            if let Some(spec) = &recipe.prune {
                prune_model(&mut model, spec);
            }
            if let Some(spec) = &recipe.quantize {
                quantize_model(&mut model, spec, recipe.half);
            }
            model
        }
    };
    if recipe.half && recipe.quantize.is_none() {
        round_model_half(&mut model);
    }
    Ok((model, placement))
}
