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

use std::path::{Path, PathBuf};

use anyhow::Context;
use compress::calib::{
    correct_bias, gptq_quantize, prune_reconstruct, GptqOptions, Hessian, ReconstructOptions,
};
use formats::{Conv, Layer, Model, Node, Op};
use rayon::prelude::*;

use crate::compression::{
    layer_sparsity_targets, round_half, shared_values, LayerOverrides, PruneSpec, QuantizeSpec,
};
use crate::engine::{conv_patches, forward_hooked, Tensor};

/// Calibration images per Hessian chunk: chunks are accumulated in
/// parallel and merged in order, so the result does not depend on threads.
const IMAGES_PER_CHUNK: usize = 8;

/// Calibration images used when no count is given.
pub const DEFAULT_CALIB_COUNT: usize = 256;

/// File extensions read as calibration images.
const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// The `count` calibration images of `dir`: the image files sorted by
/// name, taken at evenly spaced ranks so that a folder sorted by class
/// (like ImageNet samples) contributes all across its classes. The same
/// folder and count always give the same images, which `eval
/// --exclude-calib` relies on to evaluate on the other ones.
pub fn calibration_files(dir: &Path, count: usize) -> anyhow::Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list calibration folder {}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot list calibration folder {}", dir.display()))?
            .path();
        let is_image = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
        if is_image && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    anyhow::ensure!(
        !files.is_empty(),
        "no JPEG or PNG images in calibration folder {}",
        dir.display()
    );
    anyhow::ensure!(count > 0, "the calibration image count must be at least 1");
    Ok(evenly_spaced(&files, count))
}

/// `count` items of `items` (all of them when there are fewer) at evenly
/// spaced ranks, in order. Used to pick calibration images across a
/// folder, and a smaller subset of them for sensitivity analysis.
pub fn evenly_spaced<T: Clone>(items: &[T], count: usize) -> Vec<T> {
    let n = items.len();
    let take = count.min(n);
    (0..take).map(|i| items[i * n / take].clone()).collect()
}

/// What to do to each layer.
#[derive(Debug, Clone)]
pub struct CalibrationSpec {
    /// Pruning targets, met with mask selection and refit.
    pub prune: Option<PruneSpec>,
    /// Weight sharing, assigned with error compensation.
    pub quantize: Option<QuantizeSpec>,
    /// Shift biases by the mean output error.
    pub bias_correction: bool,
    pub reconstruct: ReconstructOptions,
    pub gptq: GptqOptions,
}

/// What calibration did to one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerCalibrationReport {
    pub name: String,
    /// Sparsity reached.
    pub sparsity: f64,
    /// Shared nonzero values, when quantized.
    pub clusters: Option<usize>,
    /// Bits per code, when quantized.
    pub bits: Option<u8>,
    /// Number of calibration columns (image positions) seen.
    pub samples: usize,
}

/// Compress `model` layer by layer on the calibration batch `calib`
/// (already preprocessed). Returns the compressed model and a report per
/// layer, in layer order.
pub fn compress_calibrated(
    model: &Model,
    calib: &Tensor,
    spec: &CalibrationSpec,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<(Model, Vec<LayerCalibrationReport>)> {
    let targets = match &spec.prune {
        Some(p) => Some(layer_sparsity_targets(model, p)?),
        None => None,
    };
    let mut compressed = model.clone();
    let mut reports: Vec<Option<LayerCalibrationReport>> = vec![None; model.layers.len()];
    let mut failure: Option<anyhow::Error> = None;
    let mut hook = |_: usize, node: &Node, inputs: &[&Tensor]| -> Option<Layer> {
        let Op::Conv(conv) = &node.op else {
            return None;
        };
        if failure.is_some() {
            return None;
        }
        if reports[conv.layer].is_some() {
            // A layer shared by several nodes is compressed once.
            return Some(compressed.layers[conv.layer].clone());
        }
        progress(&model.layers[conv.layer].name);
        let target = targets
            .as_ref()
            .map(|t: &LayerOverrides<f64>| t[&model.layers[conv.layer].name]);
        match compress_layer(&model.layers[conv.layer], conv, inputs[0], target, spec) {
            Ok((layer, report)) => {
                compressed.layers[conv.layer] = layer.clone();
                reports[conv.layer] = Some(report);
                Some(layer)
            }
            Err(e) => {
                failure = Some(e.context(format!("layer {}", model.layers[conv.layer].name)));
                None
            }
        }
    };
    forward_hooked(model, calib, &mut hook).context("the calibration pass failed")?;
    if let Some(e) = failure {
        return Err(e);
    }
    let reports = reports
        .into_iter()
        .zip(&model.layers)
        .map(|(r, l)| r.with_context(|| format!("layer {} is not used by any convolution", l.name)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((compressed, reports))
}

/// Compress one layer on its input activations `input` (the whole batch).
fn compress_layer(
    original: &Layer,
    conv: &Conv,
    input: &Tensor,
    sparsity: Option<f64>,
    spec: &CalibrationSpec,
) -> anyhow::Result<(Layer, LayerCalibrationReport)> {
    let h = layer_hessian(input, original, conv)?;
    compress_layer_with_hessian(original, &h, sparsity, spec)
}

/// The input Hessian of every layer on the *original* network's
/// activations, in layer order, and the network's output on `calib`: what
/// sensitivity analysis needs to compress one layer at a time with the
/// rest of the network untouched.
pub fn original_hessians(model: &Model, calib: &Tensor) -> anyhow::Result<(Vec<Hessian>, Tensor)> {
    let mut hessians: Vec<Option<Hessian>> = vec![None; model.layers.len()];
    let mut failure: Option<anyhow::Error> = None;
    let mut hook = |_: usize, node: &Node, inputs: &[&Tensor]| -> Option<Layer> {
        let Op::Conv(conv) = &node.op else {
            return None;
        };
        if failure.is_none() && hessians[conv.layer].is_none() {
            match layer_hessian(inputs[0], &model.layers[conv.layer], conv) {
                Ok(h) => hessians[conv.layer] = Some(h),
                Err(e) => {
                    failure = Some(e.context(format!("layer {}", model.layers[conv.layer].name)))
                }
            }
        }
        None
    };
    let output = forward_hooked(model, calib, &mut hook).context("the calibration pass failed")?;
    if let Some(e) = failure {
        return Err(e);
    }
    let hessians = hessians
        .into_iter()
        .zip(&model.layers)
        .map(|(h, l)| h.with_context(|| format!("layer {} is not used by any convolution", l.name)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((hessians, output))
}

/// Compress one layer given its input Hessian `h`: prune to `sparsity`
/// with refit, share weights per `spec.quantize` with GPTQ, correct biases.
pub fn compress_layer_with_hessian(
    original: &Layer,
    h: &Hessian,
    sparsity: Option<f64>,
    spec: &CalibrationSpec,
) -> anyhow::Result<(Layer, LayerCalibrationReport)> {
    let rows = original.shape[0];
    let mut layer = original.clone();
    if let Some(s) = sparsity {
        prune_reconstruct(&mut layer.weights, rows, h, s, &spec.reconstruct)?;
    }
    let mut quantized = None;
    if let Some(q) = &spec.quantize {
        let bits = q.bits_for(&layer.name);
        let codebook = shared_values(&layer.weights, bits, q);
        if !codebook.is_empty() {
            // Sets every nonzero weight to its codebook value.
            gptq_quantize(&mut layer.weights, rows, h, &codebook, &spec.gptq)?;
        }
        quantized = Some((bits, codebook.len()));
    }
    if spec.bias_correction {
        correct_bias(&mut layer.bias, &original.weights, &layer.weights, rows, h)?;
    }
    if spec.quantize.as_ref().is_some_and(|q| q.half) {
        layer.bias.iter_mut().for_each(|b| *b = round_half(*b));
    }
    let zeros = layer.weights.iter().filter(|w| **w == 0.0).count();
    let report = LayerCalibrationReport {
        name: layer.name.clone(),
        sparsity: zeros as f64 / layer.weights.len() as f64,
        clusters: quantized.map(|q| q.1),
        bits: quantized.map(|q| q.0),
        samples: h.samples(),
    };
    Ok((layer, report))
}

/// The input Hessian of `layer` over every image of `input`.
fn layer_hessian(input: &Tensor, layer: &Layer, conv: &Conv) -> anyhow::Result<Hessian> {
    let [_, in_c, kh, kw] = layer.shape;
    let dim = in_c * kh * kw;
    let images = input.shape[0];
    let chunks: Vec<Hessian> = (0..images.div_ceil(IMAGES_PER_CHUNK))
        .into_par_iter()
        .map(|chunk| -> anyhow::Result<Hessian> {
            let mut h = Hessian::new(dim)?;
            for n in chunk * IMAGES_PER_CHUNK..((chunk + 1) * IMAGES_PER_CHUNK).min(images) {
                let columns = conv_patches(input, n, [kh, kw], conv)?;
                h.accumulate(&columns, columns.len() / dim)?;
            }
            Ok(h)
        })
        .collect::<anyhow::Result<_>>()?;
    let mut total = Hessian::new(dim)?;
    for h in &chunks {
        total.merge(h)?;
    }
    Ok(total)
}
