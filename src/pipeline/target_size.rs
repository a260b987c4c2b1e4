//! Compression to a byte budget: measure each layer's sensitivity on a
//! subset of the calibration images, plan per-layer sparsity and bits for
//! the budget ([`super::allocation`]), compress with calibration and check
//! the real size, planning again with a tighter budget while it is over.

use std::time::Instant;

use formats::Model;

use super::allocation::{cost_table, fit_to_budget, plan_specs, Budget};
use super::calibration::{compress_calibrated, CalibrationSpec};
use super::defaults;
use super::error::PipelineError;
use super::params::Sparsity;
use super::placement::nonzero_budget;
use super::quantize::{KMeans, QuantizeSpec};
use super::report::PlanReport;
use super::sensitivity::{Ladder, SensitivityOptions};
use super::sensitivity_cache::SensitivityRun;
use super::{Calibration, Encoded, Progress};

/// A byte budget for the whole `.sqz` file.
#[derive(Debug, Clone)]
pub struct TargetSize {
    /// Largest allowed file, in bytes.
    pub bytes: usize,
    /// Sparsity all layers must reach together, on top of the byte budget.
    pub sparsity: Option<Sparsity>,
    /// The levels each layer's settings are chosen from.
    pub ladder: Ladder,
    /// Images and cache of the sensitivity measurement.
    pub sensitivity: SensitivityRun,
    /// How k-means finds the shared values.
    pub kmeans: KMeans,
}

/// The model built for a target size.
pub(super) struct Fitted {
    pub model: Model,
    pub quantize: QuantizeSpec,
    pub encoded: Encoded,
    pub plan: PlanReport,
}

/// Compress `original` to fit `target`, on the calibration images of
/// `calibration`.
pub(super) fn fit(
    original: &Model,
    target: &TargetSize,
    calibration: &Calibration,
    half: bool,
    progress: &mut dyn Progress,
) -> Result<Fitted, PipelineError> {
    let nonzeros = target.sparsity.map(|s| nonzero_budget(original, s));
    let options = SensitivityOptions {
        ladder: target.ladder.clone(),
        kmeans: target.kmeans,
        half,
        calibration: calibration.options,
    };
    let start = Instant::now();
    let sensitivity = target
        .sensitivity
        .measure(original, calibration, &options, progress)?;
    let measured = start.elapsed();
    let table = cost_table(original, &sensitivity, &target.kmeans, half)?;
    progress.note(&format!(
        "sensitivity ready in {:.1} s on {} images, sizes of every option estimated in {:.1} s",
        measured.as_secs_f64(),
        sensitivity.images,
        (start.elapsed() - measured).as_secs_f64()
    ));

    let batch = calibration
        .images
        .load(original, calibration.images.count)?;
    let budget = Budget {
        bytes: target.bytes,
        nonzeros,
    };
    let fitted = fit_to_budget(&table, &budget, defaults::MAX_FIT_ATTEMPTS, |plan| {
        let (prune, quantize) = plan_specs(&table, plan, &target.kmeans);
        let spec = CalibrationSpec {
            prune: Some(prune),
            quantize: Some(quantize.clone()),
            half,
            options: calibration.options,
        };
        progress.phase("calibrating", original.layers.len(), "layers");
        let start = Instant::now();
        let model = compress_calibrated(original, &batch, &spec, &mut |name| progress.layer(name))?;
        let encoded = Encoded::new(&model);
        let len = encoded.bytes.len();
        let verdict = if len > target.bytes {
            "over the budget: planning again"
        } else {
            "within the budget"
        };
        progress.note(&format!(
            "built in {:.1} s: {len} bytes, {verdict}",
            start.elapsed().as_secs_f64()
        ));
        Ok(((model, quantize, encoded), len))
    })?;
    let (model, quantize, encoded) = fitted.result;
    Ok(Fitted {
        model,
        quantize,
        encoded,
        plan: PlanReport::new(&table, &fitted.plan, target.bytes, fitted.attempts),
    })
}
