//! Compression to a byte budget: measure each layer's sensitivity on a
//! subset of the calibration images, plan per-layer sparsity and bits for
//! the budget ([`super::allocation`]), compress with calibration and check
//! the real size, planning again with a tighter budget while it is over.
//! With fine-tuning, the fitted plan is then built again with fine-tuning
//! between pruning and weight sharing, and checked against the budget the
//! same way.

use std::time::Instant;

use formats::Model;

use super::allocation::{self, cost_table, fit_to_budget, plan_specs, Budget, CostTable, Plan};
use super::calibration::CalibrationSpec;
use super::defaults;
use super::error::PipelineError;
use super::finetune::{calibrate, Tuning};
use super::params::Sparsity;
use super::placement::nonzero_budget;
use super::quantize::{KMeans, QuantizeSpec};
use super::report::PlanReport;
use super::sensitivity::{Ladder, SensitivityOptions};
use super::sensitivity_cache::SensitivityRun;
use super::{Calibration, Encoded, Progress};
use crate::engine::Tensor;

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
/// `calibration`. With `tuning`, the fitted plan is built again in
/// Deep Compression's order ([`retrain_before_sharing`]).
pub(super) fn fit(
    original: &Model,
    target: &TargetSize,
    calibration: &Calibration,
    half: bool,
    tuning: Option<&mut Tuning>,
    progress: &mut dyn Progress,
) -> Result<Fitted, PipelineError> {
    let nonzeros = target.sparsity.map(|s| nonzero_budget(original, s));
    let options = SensitivityOptions {
        kmeans: target.kmeans,
        half,
        ..SensitivityOptions::new(target.ladder.clone(), calibration.options)
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

    let builder = Builder {
        table: &table,
        batch: calibration
            .images
            .load(original, calibration.images.count)?,
        target,
        half,
        calibration,
    };
    let budget = Budget {
        bytes: target.bytes,
        nonzeros,
    };
    let fitted = fit_to_budget(&table, &budget, defaults::MAX_FIT_ATTEMPTS, |plan| {
        builder.build(original, plan, progress)
    })?;
    let fitted = match tuning {
        Some(tuning) => {
            retrain_before_sharing(original, &builder, &budget, fitted, tuning, progress)?
        }
        None => fitted,
    };
    let (model, quantize, encoded) = fitted.result;
    Ok(Fitted {
        model,
        quantize,
        encoded,
        plan: PlanReport::new(&table, &fitted.plan, target.bytes, fitted.attempts),
    })
}

/// A built plan: the model, its weight sharing and its file.
type Built = (Model, QuantizeSpec, Encoded);

/// Builds plans of a cost table with calibration.
struct Builder<'a> {
    table: &'a CostTable,
    /// The calibration images, preprocessed.
    batch: Tensor,
    target: &'a TargetSize,
    half: bool,
    calibration: &'a Calibration,
}

impl Builder<'_> {
    /// The calibrated compression of `plan`.
    fn spec(&self, plan: &Plan) -> CalibrationSpec {
        let (prune, quantize) = plan_specs(self.table, plan, &self.target.kmeans);
        CalibrationSpec {
            prune: Some(prune),
            quantize: Some(quantize),
            half: self.half,
            options: self.calibration.options,
        }
    }

    /// Compress `base` as `plan` says and encode it; the size is noted
    /// against the budget.
    fn build(
        &self,
        base: &Model,
        plan: &Plan,
        progress: &mut dyn Progress,
    ) -> Result<(Built, usize), PipelineError> {
        let spec = self.spec(plan);
        let start = Instant::now();
        let model = calibrate(base, &self.batch, &spec, progress)?;
        let encoded = Encoded::new(&model);
        let len = encoded.bytes.len();
        let verdict = if len > self.target.bytes {
            "over the budget: planning again"
        } else {
            "within the budget"
        };
        progress.note(&format!(
            "built in {:.1} s: {len} bytes, {verdict}",
            start.elapsed().as_secs_f64()
        ));
        let quantize = spec.quantize.expect("a plan shares weights");
        Ok(((model, quantize, encoded), len))
    }
}

/// Build the fitted plan again in Deep Compression's order: prune
/// `original` as planned, fine-tune every surviving weight, then share the
/// tuned weights as planned. Sharing other weights changes the
/// entropy-coded size a little; when the file comes out over the budget,
/// the plan is fitted again on the tuned weights (a layer the new plan
/// prunes less keeps the tuned model's zeros, so it only gets smaller),
/// and when even that fails, the model fitted without this stage is kept.
fn retrain_before_sharing(
    original: &Model,
    builder: &Builder,
    budget: &Budget,
    fitted: allocation::Fitted<Built>,
    tuning: &mut Tuning,
    progress: &mut dyn Progress,
) -> Result<allocation::Fitted<Built>, PipelineError> {
    let spec = builder.spec(&fitted.plan);
    let tuned = tuning.prune_and_tune(original, &builder.batch, &spec, progress)?;
    let (result, bytes) = builder.build(&tuned, &fitted.plan, progress)?;
    let attempts = fitted.attempts + 1;
    if bytes <= budget.bytes {
        return Ok(allocation::Fitted {
            plan: fitted.plan,
            result,
            bytes,
            attempts,
        });
    }
    progress.note("fitting the plan again on the fine-tuned weights");
    let refit = fit_to_budget(builder.table, budget, defaults::MAX_FIT_ATTEMPTS, |plan| {
        builder.build(&tuned, plan, progress)
    });
    match refit {
        Ok(refit) => Ok(allocation::Fitted {
            attempts: attempts + refit.attempts,
            ..refit
        }),
        Err(PipelineError::Budget(why)) => {
            progress.note(&format!(
                "{why}: keeping the model fitted without fine-tuning before weight sharing"
            ));
            tuning.before_sharing = None;
            Ok(fitted)
        }
        Err(e) => Err(e),
    }
}
