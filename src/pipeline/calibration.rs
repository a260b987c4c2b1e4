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
    correct_bias, gptq_quantize, prune_reconstruct, CalibError, GptqOptions, Hessian,
    ReconstructOptions,
};
use formats::{Conv, Layer, Model, Node, Op};
use rayon::prelude::*;

use super::error::PipelineError;
use super::prune::{layer_sparsity_targets, PruneSpec};
use super::quantize::{round_biases_half, shared_values, QuantizeSpec};
use crate::engine::{conv_patches, forward_hooked, Tensor};

/// Calibration images per Hessian chunk: chunks are accumulated in
/// parallel and merged in order, so the result does not depend on threads.
const IMAGES_PER_CHUNK: usize = 8;

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
}

impl Default for CalibrationOptions {
    /// Bias correction on, the calibration math's own defaults.
    fn default() -> Self {
        CalibrationOptions {
            bias_correction: true,
            reconstruct: ReconstructOptions::default(),
            gptq: GptqOptions::default(),
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
        match layer_hessian(inputs[0], original, conv)
            .and_then(|h| compress_layer_with_hessian(original, &h, target, spec))
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
    hessians: Vec<Option<Hessian>>,
    failure: Option<PipelineError>,
}

impl<'m> OriginalHessians<'m> {
    /// No Hessian yet.
    pub fn new(model: &'m Model) -> Self {
        OriginalHessians {
            model,
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
            match layer_hessian(inputs[0], &self.model.layers[conv.layer], conv) {
                Ok(h) => self.hessians[conv.layer] = Some(h),
                Err(e) => self.failure = Some(e),
            }
        }
    }

    /// The Hessian of every layer, in layer order; an error if one failed
    /// or a layer was never reached.
    pub fn finish(self) -> Result<Vec<Hessian>, PipelineError> {
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

/// Compress one layer given its input Hessian `h`: prune to `sparsity`
/// with refit, share weights per `spec.quantize` with GPTQ, correct biases.
pub fn compress_layer_with_hessian(
    original: &Layer,
    h: &Hessian,
    sparsity: Option<f64>,
    spec: &CalibrationSpec,
) -> Result<Layer, PipelineError> {
    let rows = original.shape[0];
    let options = &spec.options;
    let failed = PipelineError::layer(&original.name);
    let mut layer = original.clone();
    let result = (|| -> Result<(), CalibError> {
        if let Some(s) = sparsity {
            prune_reconstruct(&mut layer.weights, rows, h, s, &options.reconstruct)?;
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
                gptq_quantize(&mut layer.weights, rows, h, &codebook, &options.gptq)?;
            }
        }
        if options.bias_correction {
            correct_bias(&mut layer.bias, &original.weights, &layer.weights, rows, h)?;
        }
        Ok(())
    })();
    result.map_err(failed)?;
    if spec.half && spec.quantize.is_some() {
        round_biases_half(&mut layer);
    }
    Ok(layer)
}

/// The input Hessian of `layer` over every image of `input`.
fn layer_hessian(input: &Tensor, layer: &Layer, conv: &Conv) -> Result<Hessian, PipelineError> {
    let [_, in_c, kh, kw] = layer.shape;
    let dim = in_c * kh * kw;
    let images = input.shape[0];
    let failed = || PipelineError::layer(&layer.name);
    let chunks: Vec<Hessian> = (0..images.div_ceil(IMAGES_PER_CHUNK))
        .into_par_iter()
        .map(|chunk| -> Result<Hessian, PipelineError> {
            let mut h = Hessian::new(dim).map_err(failed())?;
            for n in chunk * IMAGES_PER_CHUNK..((chunk + 1) * IMAGES_PER_CHUNK).min(images) {
                let columns = conv_patches(input, n, [kh, kw], conv)?;
                h.accumulate(&columns, columns.len() / dim)
                    .map_err(failed())?;
            }
            Ok(h)
        })
        .collect::<Result<_, _>>()?;
    let mut total = Hessian::new(dim).map_err(failed())?;
    for h in &chunks {
        total.merge(h).map_err(failed())?;
    }
    Ok(total)
}
