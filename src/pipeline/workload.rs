//! How much computing a model takes per image, so that work that grows
//! with it can be bounded for big models: sensitivity analysis runs every
//! trial (layers × ladder levels) on every one of its images, which takes
//! a minute on SqueezeNet (0.35 G multiply-adds per image) and would take
//! hours on VGG-16 (15.5 G).

use formats::{Model, Op};

use super::defaults;
use super::error::PipelineError;
use crate::engine::infer_shapes;

/// Multiply-adds of the model's convolutions (fully connected layers
/// included) for one image.
pub fn macs_per_image(model: &Model) -> Result<u64, PipelineError> {
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
                Some((out.iter().product::<usize>() * inputs * kh * kw) as u64)
            }
            _ => None,
        })
        .sum())
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
