//! How much computing a model takes, estimated from its shapes before any
//! work, so that work that grows with it can be bounded and announced for
//! big models: sensitivity analysis runs every trial (layers × ladder
//! levels) on every one of its images, which takes a minute on SqueezeNet
//! (0.35 G multiply-adds per image) and would take hours on VGG-16 (15.5 G)
//! with as many images; and each trial fits its layer on the layer's
//! Hessian, which on VGG-16's classifier costs more than the forward passes.

use compress::calib::BlockHessian;
use formats::{Layer, Model, Op};

use super::defaults;
use super::error::PipelineError;
use super::sensitivity::SensitivityOptions;
use crate::engine::infer_shapes;

/// Rates of one core the time estimate assumes, measured on this project's
/// 2-core AMD EPYC (AVX-512) build machine, one thread, under load 5: the
/// engine's convolutions (about 100 GFLOP/s on SqueezeNet, see the
/// README's Speed section), the Cholesky-based factorisations of a Hessian
/// block (`n³` per 0.39–0.59 s at `n` = 1930), the column sweep of mask
/// choice and GPTQ (`rows · n² / 2` multiply-adds), the exact refit
/// (`rows · m³ / 3` flops, `m = min(kept, pruned)` per block) and 1-D
/// k-means (per weight, 256 values, 300 iterations).
const ENGINE_MACS_PER_SECOND: f64 = 5e10;
const FACTORISATION_CUBES_PER_SECOND: f64 = 1.5e10;
const SWEEP_MACS_PER_SECOND: f64 = 1.2e10;
const REFIT_FLOPS_PER_SECOND: f64 = 1.6e10;
const KMEANS_SECONDS_PER_WEIGHT: f64 = 1.1e-7;

/// One convolution (or fully connected) node: its layer, channel groups
/// and multiply-adds per image.
struct ConvNode {
    layer: usize,
    groups: usize,
    macs: u64,
}

/// The convolution nodes of `model`, in graph order.
fn conv_nodes(model: &Model) -> Result<Vec<ConvNode>, PipelineError> {
    let crop = model.preprocess.crop as usize;
    let shapes = infer_shapes(model, [1, 3, crop, crop])?;
    Ok(model
        .graph
        .nodes
        .iter()
        .zip(&shapes.nodes)
        .filter_map(|(node, out)| match &node.op {
            Op::Conv(conv) => {
                let [_, inputs, kh, kw] = model.layers[conv.layer].shape;
                Some(ConvNode {
                    layer: conv.layer,
                    groups: conv.groups.max(1),
                    macs: (out.iter().product::<usize>() * inputs * kh * kw) as u64,
                })
            }
            _ => None,
        })
        .collect())
}

/// Multiply-adds of the model's convolutions (fully connected layers
/// included) for one image.
pub fn macs_per_image(model: &Model) -> Result<u64, PipelineError> {
    Ok(conv_nodes(model)?.iter().map(|c| c.macs).sum())
}

/// Rows per channel group and Hessian block lengths of `layer` used with
/// `groups` groups and blocks of at most `max_block` inputs.
fn blocks_of(
    layer: &Layer,
    groups: usize,
    max_block: usize,
) -> Result<(usize, Vec<usize>), PipelineError> {
    let [rows, in_per_group, kh, kw] = layer.shape;
    let lengths = BlockHessian::block_lengths(in_per_group * kh * kw, max_block)
        .map_err(PipelineError::layer(&layer.name))?;
    Ok((rows / groups.max(1), lengths))
}

/// Relative cost of refitting `layer` exactly after pruning
/// (`compress::calib::Refit::Exact`): `rows · Σ n³` over its channel groups
/// and Hessian blocks of `n` inputs, about 24 times the flops of its worst
/// case (half the weights pruned). What sensitivity analysis compares with
/// [`SensitivityOptions::exact_refit_limit`].
pub fn exact_refit_work(
    layer: &Layer,
    groups: usize,
    max_block: usize,
) -> Result<f64, PipelineError> {
    let (rows, lengths) = blocks_of(layer, groups, max_block)?;
    Ok(refit_work(groups, rows, &lengths))
}

/// [`exact_refit_work`] of `groups` channel groups of `rows` rows each,
/// with Hessian blocks of `lengths` inputs.
fn refit_work(groups: usize, rows: usize, lengths: &[usize]) -> f64 {
    let cubes: f64 = lengths.iter().map(|&n| (n as f64).powi(3)).sum();
    groups.max(1) as f64 * rows as f64 * cubes
}

/// A rough estimate of the CPU seconds sensitivity analysis of `model` on
/// `images` calibration images with `options` takes, from the shapes
/// alone: per layer and ladder level, the forward pass from the layer on
/// and fitting the trial layer on its Hessian (see the rates above). It
/// leaves out the first pass that gathers the Hessians (one forward pass)
/// and may be off by a factor of two either way.
pub fn sensitivity_cpu_seconds(
    model: &Model,
    images: usize,
    options: &SensitivityOptions,
) -> Result<f64, PipelineError> {
    let nodes = conv_nodes(model)?;
    let ladder = &options.ladder;
    let levels = (ladder.sparsities.len() + ladder.bits.len()) as f64;
    let max_block = options.calibration.hessian_block;
    let mut seconds = 0.0;
    let mut seen = vec![false; model.layers.len()];
    for (i, node) in nodes.iter().enumerate() {
        if std::mem::replace(&mut seen[node.layer], true) {
            continue;
        }
        let layer = &model.layers[node.layer];
        let tail: u64 = nodes[i..].iter().map(|n| n.macs).sum();
        seconds += levels * images as f64 * tail as f64 / ENGINE_MACS_PER_SECOND;
        let (rows, lengths) = blocks_of(layer, node.groups, max_block)?;
        let exact = refit_work(node.groups, rows, &lengths) <= options.exact_refit_limit;
        let mut fitting = 0.0;
        for &n in &lengths {
            let (n, rows) = (n as f64, rows as f64);
            let factorisation = n.powi(3) / FACTORISATION_CUBES_PER_SECOND;
            let sweep = rows * n * n / 2.0 / SWEEP_MACS_PER_SECOND;
            fitting += ladder.bits.len() as f64 * (factorisation + sweep);
            for s in &ladder.sparsities {
                let m = s.get().min(1.0 - s.get()) * n;
                let refit = if exact {
                    rows * m.powi(3) / 3.0 / REFIT_FLOPS_PER_SECOND
                } else {
                    0.0
                };
                fitting += factorisation + sweep + refit;
            }
        }
        seconds += node.groups as f64 * fitting;
        seconds +=
            ladder.bits.len() as f64 * layer.weights.len() as f64 * KMEANS_SECONDS_PER_WEIGHT;
    }
    Ok(seconds)
}

/// Calibration images sensitivity analysis uses when none are asked for:
/// [`defaults::SENSITIVITY_CALIB_COUNT`] for a model of at most
/// [`defaults::SENSITIVITY_REFERENCE_MACS`] multiply-adds per image (every
/// SqueezeNet), proportionally fewer for bigger ones, and at least
/// [`defaults::SENSITIVITY_MIN_CALIB_COUNT`].
pub fn default_sensitivity_images(model: &Model) -> Result<usize, PipelineError> {
    let macs = macs_per_image(model)?.max(1) as f64;
    let scaled =
        defaults::SENSITIVITY_CALIB_COUNT as f64 * defaults::SENSITIVITY_REFERENCE_MACS / macs;
    Ok((scaled.floor() as usize).clamp(
        defaults::SENSITIVITY_MIN_CALIB_COUNT,
        defaults::SENSITIVITY_CALIB_COUNT,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(shape: [usize; 4]) -> Layer {
        Layer {
            name: "l".into(),
            shape,
            weights: Vec::new(),
            bias: Vec::new(),
        }
    }

    #[test]
    fn exact_refit_work_sums_rows_times_block_cubes() {
        // VGG-16's fc6: 25,088 inputs in 13 blocks of 1929 or 1930.
        let fc6 = layer([4096, 25088, 1, 1]);
        let blocks = [1930.0f64; 11].iter().chain(&[1929.0; 2]);
        let expected: f64 = blocks.map(|n| 4096.0 * n.powi(3)).sum();
        let work = exact_refit_work(&fc6, 1, 2048).unwrap();
        assert!((work - expected).abs() <= 1e-9 * expected);
        // Two groups of 2 rows, 18 inputs each, one block.
        let grouped = layer([4, 2, 3, 3]);
        assert_eq!(
            exact_refit_work(&grouped, 2, 2048).unwrap(),
            2.0 * 2.0 * 18f64.powi(3)
        );
        // SqueezeNet's widest layer refits exactly, VGG-16's classifier and
        // last convolutions by the sweep.
        let limit = defaults::SENSITIVITY_EXACT_REFIT_WORK;
        let conv10 = layer([1000, 512, 1, 1]);
        assert!(exact_refit_work(&conv10, 1, 2048).unwrap() <= limit);
        assert!(work > limit);
        let conv5 = layer([512, 512, 3, 3]);
        assert!(exact_refit_work(&conv5, 1, 2048).unwrap() > limit);
    }
}
