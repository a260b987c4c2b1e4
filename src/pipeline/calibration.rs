//! Compression that recovers accuracy from unlabeled calibration images
//! instead of retraining.
//!
//! One forward pass runs the network on the calibration batch. Before each
//! convolution, the engine hands over the activations that reach it from
//! the *already compressed* layers below; from them we accumulate the
//! layer's input Hessian `H = X Xᵀ` and compress the layer so that its
//! output changes as little as possible: OBS/SparseGPT-style pruning with
//! a least-squares refit of the survivors, k-means for the codebook, GPTQ
//! error-compensating assignment onto it, and bias correction. The
//! compressed layer is then used for the rest of the pass, so errors do
//! not pile up. The math is in [`compress::calib`]; this module feeds it.

use compress::calib::{
    correct_bias_blocks, gptq_quantize_blocks, prune_reconstruct_blocks, BlockHessian, CalibError,
    GptqOptions, ReconstructOptions, Refit, DEFAULT_MAX_BLOCK,
};
use formats::{Layer, Model, Node, Op};

use super::error::PipelineError;
use super::layer_hessian::{layer_hessian, LayerHessian};
use super::prune::{layer_sparsity_targets, PruneSpec};
use super::quantize::{round_biases_half, shared_values, QuantizeSpec};
use crate::engine::{forward_hooked, Tensor};

/// How layers are fitted to the calibration images, whatever is done to
/// them.
#[derive(Debug, Clone, Copy)]
pub struct CalibrationOptions {
    /// Shift biases by the mean output error.
    pub bias_correction: bool,
    /// Pruning with a least-squares refit of the survivors.
    pub reconstruct: ReconstructOptions,
    /// Error-compensating assignment onto the codebook.
    pub gptq: GptqOptions,
    /// Inputs per block of the block-diagonal Hessian: a layer (or channel
    /// group) with more inputs is fitted block by block, see
    /// [`compress::calib::BlockHessian`].
    pub hessian_block: usize,
}

impl Default for CalibrationOptions {
    /// Bias correction on, the calibration math's own defaults.
    fn default() -> Self {
        CalibrationOptions {
            bias_correction: true,
            reconstruct: ReconstructOptions::default(),
            gptq: GptqOptions::default(),
            hessian_block: DEFAULT_MAX_BLOCK,
        }
    }
}

/// What to do to each layer.
#[derive(Debug, Clone)]
pub struct CalibrationSpec {
    /// Pruning targets, met with mask selection and refit.
    pub prune: Option<PruneSpec>,
    /// Weight sharing, assigned with error compensation.
    pub quantize: Option<QuantizeSpec>,
    /// Round shared values and biases to float16.
    pub half: bool,
    /// How layers are fitted.
    pub options: CalibrationOptions,
}

/// Compress `model` layer by layer on the calibration batch `calib`
/// (already preprocessed), calling `progress` with each layer's name as it
/// starts on it.
pub fn compress_calibrated(
    model: &Model,
    calib: &Tensor,
    spec: &CalibrationSpec,
    progress: &mut dyn FnMut(&str),
) -> Result<Model, PipelineError> {
    let targets = spec
        .prune
        .as_ref()
        .map(|p| layer_sparsity_targets(model, p));
    let mut compressed = model.clone();
    let mut done = vec![false; model.layers.len()];
    let mut failure: Option<PipelineError> = None;
    let mut hook = |_: usize, node: &Node, inputs: &[&Tensor]| -> Option<Layer> {
        let Op::Conv(conv) = &node.op else {
            return None;
        };
        if failure.is_some() {
            return None;
        }
        if done[conv.layer] {
            // A layer shared by several nodes is compressed once.
            return Some(compressed.layers[conv.layer].clone());
        }
        let original = &model.layers[conv.layer];
        progress(&original.name);
        let target = targets.as_ref().map(|t| t[&original.name]);
        match layer_hessian(inputs[0], original, conv, spec.options.hessian_block)
            .and_then(|h| compress_layer_with_hessian(original, &h, target, spec, Refit::Exact))
        {
            Ok(layer) => {
                compressed.layers[conv.layer] = layer.clone();
                done[conv.layer] = true;
                Some(layer)
            }
            Err(e) => {
                failure = Some(e);
                None
            }
        }
    };
    forward_hooked(model, calib, &mut hook)?;
    if let Some(e) = failure {
        return Err(e);
    }
    check_all_used(model, &done)?;
    Ok(compressed)
}

/// Gathers the input Hessian of every layer from the nodes of a pass of
/// the *original* network: what sensitivity analysis needs to compress one
/// layer at a time with the rest of the network untouched.
pub struct OriginalHessians<'m> {
    model: &'m Model,
    max_block: usize,
    hessians: Vec<Option<LayerHessian>>,
    failure: Option<PipelineError>,
}

impl<'m> OriginalHessians<'m> {
    /// No Hessian yet; inputs are split into blocks of at most `max_block`.
    pub fn new(model: &'m Model, max_block: usize) -> Self {
        OriginalHessians {
            model,
            max_block,
            hessians: vec![None; model.layers.len()],
            failure: None,
        }
    }

    /// Accumulate the Hessian of a convolution `node` reading `inputs`
    /// (once per layer: a layer shared by several nodes uses the first).
    pub fn observe(&mut self, node: &Node, inputs: &[&Tensor]) {
        let Op::Conv(conv) = &node.op else {
            return;
        };
        if self.failure.is_none() && self.hessians[conv.layer].is_none() {
            let layer = &self.model.layers[conv.layer];
            match layer_hessian(inputs[0], layer, conv, self.max_block) {
                Ok(h) => self.hessians[conv.layer] = Some(h),
                Err(e) => self.failure = Some(e),
            }
        }
    }

    /// The Hessian of every layer, in layer order; an error if one failed
    /// or a layer was never reached.
    pub fn finish(self) -> Result<Vec<LayerHessian>, PipelineError> {
        if let Some(e) = self.failure {
            return Err(e);
        }
        let used: Vec<bool> = self.hessians.iter().map(Option::is_some).collect();
        check_all_used(self.model, &used)?;
        Ok(self.hessians.into_iter().flatten().collect())
    }
}

/// Every layer must have been reached by a convolution of the pass.
fn check_all_used(model: &Model, used: &[bool]) -> Result<(), PipelineError> {
    match model.layers.iter().zip(used).find(|(_, used)| !**used) {
        Some((layer, _)) => Err(PipelineError::UnusedLayer(layer.name.clone())),
        None => Ok(()),
    }
}

/// Compress one layer given its input Hessians `h`: prune to `sparsity`
/// with survivors fitted per `refit` (compression always refits exactly;
/// sensitivity trials of wide layers use the cheaper sweep), share weights
/// per `spec.quantize` with GPTQ, correct biases. Each channel group is
/// fitted on its own Hessian; the codebook is the layer's, from the weights
/// of every group.
pub fn compress_layer_with_hessian(
    original: &Layer,
    h: &LayerHessian,
    sparsity: Option<f64>,
    spec: &CalibrationSpec,
    refit: Refit,
) -> Result<Layer, PipelineError> {
    let groups = h.groups();
    let rows = original.shape[0] / groups.len();
    let dim = groups[0].dim();
    let options = &spec.options;
    let failed = PipelineError::layer(&original.name);
    let mut layer = original.clone();
    let result = (|| -> Result<(), CalibError> {
        if let Some(s) = sparsity {
            for_each_group(&mut layer.weights, groups, |w, h| {
                prune_reconstruct_blocks(w, rows, h, s, &options.reconstruct, refit)
            })?;
        }
        if let Some(q) = &spec.quantize {
            let codebook = shared_values(
                &layer.weights,
                q.bits_for(&layer.name),
                &q.kmeans,
                spec.half,
            );
            if !codebook.is_empty() {
                // Sets every nonzero weight to its codebook value.
                for_each_group(&mut layer.weights, groups, |w, h| {
                    gptq_quantize_blocks(w, rows, h, &codebook, &options.gptq)
                })?;
            }
        }
        if options.bias_correction {
            let parts = layer
                .bias
                .chunks_exact_mut(rows)
                .zip(original.weights.chunks_exact(rows * dim))
                .zip(layer.weights.chunks_exact(rows * dim))
                .zip(groups);
            for (((bias, before), after), h) in parts {
                correct_bias_blocks(bias, before, after, rows, h)?;
            }
        }
        Ok(())
    })();
    result.map_err(failed)?;
    if spec.half && spec.quantize.is_some() {
        round_biases_half(&mut layer);
    }
    Ok(layer)
}

/// Runs `f` on the rows of each channel group of `weights` (row-major, the
/// groups' rows one after the other) with the group's Hessian.
fn for_each_group(
    weights: &mut [f32],
    groups: &[BlockHessian],
    f: impl Fn(&mut [f32], &BlockHessian) -> Result<(), CalibError>,
) -> Result<(), CalibError> {
    let per_group = weights.len() / groups.len();
    weights
        .chunks_exact_mut(per_group)
        .zip(groups)
        .try_for_each(|(w, h)| f(w, h))
}
