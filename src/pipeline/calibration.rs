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
//! not pile up. With [`CalibrationOptions::match_original`] (the default)
//! a pass of the original network alongside supplies what the layer saw
//! there, and the layer is fitted to the original network's output
//! instead of its own ([`compress::calib::retarget`]), which also corrects
//! the error the layers below left. The math is in [`compress::calib`];
//! this module feeds it.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use compress::calib::{
    correct_bias_blocks, correct_bias_to_original_blocks, gptq_quantize_blocks,
    prune_reconstruct_blocks, retarget_blocks, BlockHessian, CalibError, GptqOptions,
    ReconstructOptions, Refit, DEFAULT_DAMP, DEFAULT_MAX_BLOCK,
};
use formats::{Layer, Model, Node, Op};

use super::error::PipelineError;
use super::layer_hessian::{layer_hessian, layer_pairs, LayerHessian, LayerPairs};
use super::prune::{layer_sparsity_targets, PruneSpec};
use super::quantize::{round_biases_half, shared_values, QuantizeSpec};
use crate::engine::{forward_hooked, EngineError, Session, Tensor};
use crate::error::InternalError;

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
    /// Fit each layer to the original network's output rather than to its
    /// own output on the compressed network's inputs
    /// ([`compress::calib::retarget`]), so that each layer corrects what it
    /// can of the error of the layers below.
    pub match_original: bool,
}

impl Default for CalibrationOptions {
    /// Bias correction on, the calibration math's own defaults.
    fn default() -> Self {
        CalibrationOptions {
            bias_correction: true,
            reconstruct: ReconstructOptions::default(),
            gptq: GptqOptions::default(),
            hessian_block: DEFAULT_MAX_BLOCK,
            match_original: true,
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
/// starts on it. With [`CalibrationOptions::match_original`], a pass of
/// the original network runs on another thread, taking turns with the
/// compressed pass (see [`Turns`]).
pub fn compress_calibrated(
    model: &Model,
    calib: &Tensor,
    spec: &CalibrationSpec,
    progress: &mut dyn FnMut(&str),
) -> Result<Model, PipelineError> {
    if !spec.options.match_original {
        return fit_layers(model, calib, spec, progress, None);
    }
    std::thread::scope(|scope| {
        let (send, inputs) = sync_channel(0);
        let (resume, resumed) = sync_channel(0);
        let original = scope.spawn(move || original_inputs(model, calib, &send, &resumed));
        let turns = Turns {
            inputs,
            resume,
            pending: None,
        };
        let fitted = fit_layers(model, calib, spec, progress, Some(turns));
        match original.join() {
            // The original pass's own error says best why it stopped.
            Ok(Err(e)) if fitted.is_err() => Err(e.into()),
            Ok(_) => fitted,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Runs the original `model` on `calib`: before each convolution, sends
/// its input to `send` and waits for `resumed` before going on. Stops
/// sending and waiting once the other side is gone.
fn original_inputs(
    model: &Model,
    calib: &Tensor,
    send: &SyncSender<Tensor>,
    resumed: &Receiver<()>,
) -> Result<(), EngineError> {
    let mut open = true;
    let mut hook = |_: usize, node: &Node, inputs: &[&Tensor]| -> Option<Layer> {
        if open && matches!(node.op, Op::Conv(_)) {
            open = send.send(inputs[0].clone()).is_ok() && resumed.recv().is_ok();
        }
        None
    };
    Session::new(model)?
        .releasing_buffers()
        .run_hooked(calib, &mut hook)
        .map(|_| ())
}

/// The compressed pass's side of the original network's pass. The two
/// passes take turns, so that only one of them computes (and holds a
/// stretch of the network's activations for the whole batch) at a time:
/// at each convolution, the compressed pass takes the original network's
/// input to it, fits the layer, lets the original pass compute up to the
/// next convolution and takes that input too, and only then computes its
/// own stretch.
struct Turns {
    inputs: Receiver<Tensor>,
    resume: SyncSender<()>,
    /// The original network's input to the next convolution, if taken.
    pending: Option<Tensor>,
}

impl Turns {
    /// The original network's input to the convolution at hand (`None` if
    /// its pass has ended).
    fn take(&mut self) -> Option<Tensor> {
        self.pending.take().or_else(|| self.inputs.recv().ok())
    }

    /// Let the original pass compute up to its next convolution, and wait
    /// for it there.
    fn pass(&mut self) {
        self.pending = match self.resume.send(()) {
            Ok(()) => self.inputs.recv().ok(),
            Err(_) => None,
        };
    }
}

/// [`compress_calibrated`]'s compressed pass; with `turns`, each layer is
/// fitted to the original network's output.
fn fit_layers(
    model: &Model,
    calib: &Tensor,
    spec: &CalibrationSpec,
    progress: &mut dyn FnMut(&str),
    mut turns: Option<Turns>,
) -> Result<Model, PipelineError> {
    let targets = spec
        .prune
        .as_ref()
        .map(|p| layer_sparsity_targets(model, p));
    let mut compressed = model.clone();
    let mut done = vec![false; model.layers.len()];
    let mut failure: Option<PipelineError> = None;
    let block = spec.options.hessian_block;
    let mut hook = |_: usize, node: &Node, inputs: &[&Tensor]| -> Option<Layer> {
        let Op::Conv(conv) = &node.op else {
            return None;
        };
        // At every convolution, to stay in step with the other pass.
        let original_input = turns.as_mut().map(Turns::take);
        let layer = if failure.is_some() {
            None
        } else if done[conv.layer] {
            // A layer shared by several nodes is compressed once.
            Some(compressed.layers[conv.layer].clone())
        } else {
            let original = &model.layers[conv.layer];
            progress(&original.name);
            let target = targets.as_ref().map(|t| t[&original.name]);
            let fitted = layer_hessian(inputs[0], original, conv, block).and_then(|h| {
                let pairs = match &original_input {
                    Some(Some(x)) => Some(layer_pairs(inputs[0], x, original, conv, block)?),
                    Some(None) => {
                        return Err(InternalError(format!(
                            "the original network's pass ended before layer {}",
                            original.name
                        ))
                        .into())
                    }
                    None => None,
                };
                compress_layer_with_hessian(
                    original,
                    &h,
                    pairs.as_ref(),
                    target,
                    spec,
                    Refit::Exact,
                )
            });
            match fitted {
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
        // Free the original network's input before its pass computes on.
        drop(original_input);
        if let Some(turns) = turns.as_mut() {
            turns.pass();
        }
        layer
    };
    let result = forward_hooked(model, calib, &mut hook);
    // Closing the channels lets the original pass run to its end (and the
    // scope join it) even if this pass stopped early.
    drop(turns);
    result?;
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

/// Compress one layer given its input Hessians `h` (and, to fit the
/// original network's output, the moments `pairs` of its inputs paired
/// with the original network's): retarget the weights to `pairs`, prune
/// to `sparsity`
/// with survivors fitted per `refit` (compression always refits exactly;
/// sensitivity trials of wide layers use the cheaper sweep), share weights
/// per `spec.quantize` with GPTQ, correct biases. Each channel group is
/// fitted on its own Hessian; the codebook is the layer's, from the weights
/// of every group.
pub fn compress_layer_with_hessian(
    original: &Layer,
    h: &LayerHessian,
    pairs: Option<&LayerPairs>,
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
        if let Some(pairs) = pairs {
            for_each_group(&mut layer.weights, groups, |w, h, g| {
                retarget_blocks(w, rows, h, &pairs.groups()[g], DEFAULT_DAMP)
            })?;
        }
        if let Some(s) = sparsity {
            for_each_group(&mut layer.weights, groups, |w, h, _| {
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
                for_each_group(&mut layer.weights, groups, |w, h, _| {
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
                .zip(groups)
                .enumerate();
            for (g, (((bias, before), after), h)) in parts {
                match pairs {
                    Some(pairs) => correct_bias_to_original_blocks(
                        bias,
                        before,
                        after,
                        rows,
                        h,
                        &pairs.groups()[g],
                    )?,
                    None => correct_bias_blocks(bias, before, after, rows, h)?,
                }
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
/// groups' rows one after the other) with the group's Hessian and index.
fn for_each_group(
    weights: &mut [f32],
    groups: &[BlockHessian],
    f: impl Fn(&mut [f32], &BlockHessian, usize) -> Result<(), CalibError>,
) -> Result<(), CalibError> {
    let per_group = weights.len() / groups.len();
    weights
        .chunks_exact_mut(per_group)
        .zip(groups)
        .enumerate()
        .try_for_each(|(g, (w, h))| f(w, h, g))
}
