//! The input Hessian of one layer as calibration uses it: one
//! block-diagonal Hessian ([`BlockHessian`]) per channel group.
//!
//! A grouped convolution (AlexNet's `groups = 2`, MobileNetV2's depthwise
//! layers) is `groups` independent convolutions: output channels of group
//! `g` (consecutive rows of the weight matrix) see only input channels of
//! group `g` (consecutive rows of the im2col matrix, which is ordered by
//! channel). So each group has its own Hessian over its own inputs, and
//! its rows are compressed against it alone. Within a group, inputs are
//! split into blocks of at most `max_block` (see [`BlockHessian`]), which
//! bounds memory and time for layers of any width.
//!
//! [`LayerPairs`] holds, the same way, the moments of pairs of inputs to a
//! layer, the compressed network's and the original network's, with which
//! calibration fits the original network's output
//! ([`compress::calib::retarget`]).

use compress::calib::{BlockHessian, BlockPairs, CalibError};
use formats::{Conv, Layer};
use rayon::prelude::*;

use super::error::PipelineError;
use crate::engine::{conv_patches, Tensor};

/// Calibration images per partial Hessian: partial sums are accumulated in
/// parallel and merged in image order, so the result does not depend on
/// the number of threads.
const IMAGES_PER_CHUNK: usize = 8;

/// The Hessians of one layer, one per channel group.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerHessian {
    groups: Vec<BlockHessian>,
}

/// Inputs of one group of `layer`: `in/groups · kh · kw`.
fn group_dim(layer: &Layer) -> usize {
    let [_, in_per_group, kh, kw] = layer.shape;
    in_per_group * kh * kw
}

impl LayerHessian {
    /// Empty Hessians for `layer` used with `groups` channel groups.
    pub fn new(layer: &Layer, groups: usize, max_block: usize) -> Result<Self, CalibError> {
        let groups = (0..groups.max(1))
            .map(|_| BlockHessian::new(group_dim(layer), max_block))
            .collect::<Result<_, _>>()?;
        Ok(LayerHessian { groups })
    }

    /// Bytes the Hessians of `layer` with `groups` groups take, without
    /// allocating them.
    pub fn bytes(layer: &Layer, groups: usize, max_block: usize) -> Result<usize, CalibError> {
        Ok(groups.max(1) * BlockHessian::bytes(group_dim(layer), max_block)?)
    }

    /// One Hessian per channel group, in group order.
    pub fn groups(&self) -> &[BlockHessian] {
        &self.groups
    }

    /// Adds the im2col columns of one image: `groups · dim` rows (group by
    /// group, as the channels are ordered) of `positions` columns.
    fn accumulate(&mut self, columns: &[f32]) -> Result<(), CalibError> {
        let per_group = columns.len() / self.groups.len();
        let dim = self.groups[0].dim();
        for (h, part) in self.groups.iter_mut().zip(columns.chunks_exact(per_group)) {
            h.accumulate(part, per_group / dim)?;
        }
        Ok(())
    }

    /// Adds the sums of `other` (same layer, other images).
    fn merge(&mut self, other: &LayerHessian) -> Result<(), CalibError> {
        for (mine, theirs) in self.groups.iter_mut().zip(&other.groups) {
            mine.merge(theirs)?;
        }
        Ok(())
    }
}

/// The pair moments of one layer, one per channel group: see the module
/// docs.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerPairs {
    /// Inputs of one group.
    dim: usize,
    groups: Vec<BlockPairs>,
}

impl LayerPairs {
    /// Empty moments for `layer` used with `groups` channel groups,
    /// blocked as [`LayerHessian::new`] blocks its Hessians.
    fn new(layer: &Layer, groups: usize, max_block: usize) -> Result<Self, CalibError> {
        let groups = (0..groups.max(1))
            .map(|_| BlockPairs::new(group_dim(layer), max_block))
            .collect::<Result<_, _>>()?;
        Ok(LayerPairs {
            dim: group_dim(layer),
            groups,
        })
    }

    /// One set of moments per channel group, in group order.
    pub fn groups(&self) -> &[BlockPairs] {
        &self.groups
    }

    /// Adds the im2col columns of one image from both networks, laid out
    /// as for [`LayerHessian::accumulate`].
    fn accumulate(&mut self, compressed: &[f32], original: &[f32]) -> Result<(), CalibError> {
        let per_group = compressed.len() / self.groups.len();
        let n = per_group / self.dim;
        let parts = compressed
            .chunks_exact(per_group)
            .zip(original.chunks_exact(per_group));
        for (m, (c, o)) in self.groups.iter_mut().zip(parts) {
            m.accumulate(c, o, n)?;
        }
        Ok(())
    }

    /// Adds the sums of `other` (same layer, other images).
    fn merge(&mut self, other: &LayerPairs) -> Result<(), CalibError> {
        for (mine, theirs) in self.groups.iter_mut().zip(&other.groups) {
            mine.merge(theirs)?;
        }
        Ok(())
    }
}

/// The Hessians of `layer`, used by convolution `conv`, over every image of
/// its `input`.
pub fn layer_hessian(
    input: &Tensor,
    layer: &Layer,
    conv: &Conv,
    max_block: usize,
) -> Result<LayerHessian, PipelineError> {
    let [_, _, kh, kw] = layer.shape;
    let failed = || PipelineError::layer(&layer.name);
    per_image_sums(
        input.shape[0],
        || LayerHessian::new(layer, conv.groups, max_block).map_err(failed()),
        |h, n| {
            let columns = conv_patches(input, n, [kh, kw], conv)?;
            h.accumulate(&columns).map_err(failed())
        },
        |total, part| total.merge(part).map_err(failed()),
    )
}

/// The pair moments of `layer`, used by convolution `conv`, between the
/// compressed network's input `compressed` and the original network's
/// `original` (same shape, same images).
pub fn layer_pairs(
    compressed: &Tensor,
    original: &Tensor,
    layer: &Layer,
    conv: &Conv,
    max_block: usize,
) -> Result<LayerPairs, PipelineError> {
    let [_, _, kh, kw] = layer.shape;
    let failed = || PipelineError::layer(&layer.name);
    if compressed.shape != original.shape {
        return Err(PipelineError::layer(&layer.name)(CalibError::Length {
            what: "original network's input",
            len: original.data.len(),
            expected: compressed.data.len(),
        }));
    }
    per_image_sums(
        compressed.shape[0],
        || LayerPairs::new(layer, conv.groups, max_block).map_err(failed()),
        |m, n| {
            let c = conv_patches(compressed, n, [kh, kw], conv)?;
            let o = conv_patches(original, n, [kh, kw], conv)?;
            m.accumulate(&c, &o).map_err(failed())
        },
        |total, part| total.merge(part).map_err(failed()),
    )
}

/// Sums `add(sums, image)` over `images` images: partial sums of
/// [`IMAGES_PER_CHUNK`] images are computed a wave of one per thread at a
/// time and merged in image order, so memory holds at most one partial per
/// thread besides the total, and the result does not depend on the number
/// of threads.
fn per_image_sums<T: Send>(
    images: usize,
    empty: impl Fn() -> Result<T, PipelineError> + Sync,
    add: impl Fn(&mut T, usize) -> Result<(), PipelineError> + Sync,
    merge: impl Fn(&mut T, &T) -> Result<(), PipelineError>,
) -> Result<T, PipelineError> {
    let chunk = |c: usize| -> Result<T, PipelineError> {
        let mut sums = empty()?;
        for n in c * IMAGES_PER_CHUNK..((c + 1) * IMAGES_PER_CHUNK).min(images) {
            add(&mut sums, n)?;
        }
        Ok(sums)
    };
    let chunks = images.div_ceil(IMAGES_PER_CHUNK);
    let wave = rayon::current_num_threads().max(1);
    let mut total = empty()?;
    for start in (0..chunks).step_by(wave) {
        let partials: Vec<T> = (start..(start + wave).min(chunks))
            .into_par_iter()
            .map(chunk)
            .collect::<Result<_, _>>()?;
        for p in &partials {
            merge(&mut total, p)?;
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use compress::calib::MAX_DIM;

    /// A grouped convolution's Hessian per group equals the Hessian of an
    /// ordinary convolution over that group's input channels alone.
    #[test]
    fn each_group_has_the_hessian_of_its_own_input_channels() {
        let (images, channels, side) = (3, 4, 5);
        let data: Vec<f32> = (0..images * channels * side * side)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
            .collect();
        let input = Tensor::new([images, channels, side, side], data.clone()).unwrap();
        let layer = Layer {
            name: "grouped".into(),
            shape: [6, 2, 3, 3],
            weights: vec![0.5; 6 * 2 * 9],
            bias: vec![0.0; 6],
        };
        let conv = Conv {
            layer: 0,
            stride_h: 1,
            stride_w: 1,
            pad_h: 1,
            pad_w: 1,
            groups: 2,
            relu: false,
        };
        let grouped = layer_hessian(&input, &layer, &conv, MAX_DIM).unwrap();
        assert_eq!(grouped.groups().len(), 2);
        let plain = Conv { groups: 1, ..conv };
        for (g, h) in grouped.groups().iter().enumerate() {
            // The group's two input channels as an image batch of their own.
            let part: Vec<f32> = data
                .chunks_exact(side * side)
                .enumerate()
                .filter(|(i, _)| (i % channels) / 2 == g)
                .flat_map(|(_, plane)| plane.iter().copied())
                .collect();
            let part = Tensor::new([images, 2, side, side], part).unwrap();
            let alone = layer_hessian(&part, &layer, &plain, MAX_DIM).unwrap();
            assert_eq!(&alone.groups()[0], h, "group {g}");
        }
    }
}
