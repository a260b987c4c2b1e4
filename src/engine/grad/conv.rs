//! Backward pass of a convolution with bias and optional fused ReLU.
//!
//! Per image, with the output gradient `dY` (`out_c x positions`; zero
//! where a fused ReLU's saved output is not positive) and the forward pass's
//! im2col matrix `X` (`in_c*kh*kw x positions`; the image itself for a
//! pointwise convolution):
//!
//! - bias gradient: the row sums of `dY`;
//! - weight gradient: `dY · Xᵀ`;
//! - input gradient: `col2im(Wᵀ · dY)`.
//!
//! A grouped convolution does this for each group on its own channels of
//! the input and output and its own rows of the weights; a depthwise one
//! runs the direct kernel of [`super::depthwise`] instead.
//!
//! Images run in parallel in fixed groups of [`IMAGES_PER_TASK`]. Each group
//! sums its images' weight and bias gradients in image order, and the
//! groups' sums are added in group order, so no bit depends on the thread
//! count.

use faer::MatRef;
use formats::{Conv, Layer};
use rayon::prelude::*;

use super::col2im::col2im;
use super::depthwise::depthwise_backward;
use super::elementwise::{mask_inactive_values, sum_in_lanes, sum_in_order};
use crate::engine::conv::ConvGeometry;
use crate::engine::depthwise::is_depthwise;
use crate::engine::gemm::matmul_views;
use crate::engine::grad::LayerGradient;
use crate::engine::im2col::im2col;
use crate::engine::Tensor;

/// Images per parallel task. Each task holds one partial weight gradient,
/// so larger groups save memory and summing work; smaller ones spread a
/// small batch over more threads.
const IMAGES_PER_TASK: usize = 4;

/// Gradients of `conv` with `layer` applied to `input`, given the gradient
/// `d_output` of its output: the input's is written into `d_input` (of the
/// input's shape, any contents) unless that is `None`, the layer's are
/// returned. `relu_output` is
/// the saved output when the convolution has a fused ReLU (its zeros block
/// the gradient, and `d_output` is masked in place), else `None`.
pub(super) fn conv_backward(
    input: &Tensor,
    relu_output: Option<&Tensor>,
    layer: &Layer,
    conv: &Conv,
    d_output: &mut Tensor,
    d_input: Option<&mut Tensor>,
) -> LayerGradient {
    if is_depthwise(layer, conv) {
        // The depthwise kernel always computes the input gradient: one that
        // nobody wants (a depthwise convolution reading the input batch)
        // goes to scratch, with the same data as the input.
        let mut scratch;
        let d_input = match d_input {
            Some(d_input) => d_input,
            None => {
                scratch = input.clone();
                &mut scratch
            }
        };
        return depthwise_backward(input, relu_output, layer, conv, d_output, d_input);
    }
    let [_, _, out_h, out_w] = d_output.shape;
    let [_, group_in_c, kh, kw] = layer.shape;
    let mut geometry = ConvGeometry::new(input.shape, [kh, kw], conv, [out_h, out_w]);
    geometry.channels = group_in_c;
    let (in_len, out_len) = (input.image_len(), d_output.image_len());
    let groups = input.shape[0].div_ceil(IMAGES_PER_TASK);
    let d_input = d_input.map(|t| t.data.as_mut_slice());
    let partials: Vec<GroupSums> = chunks_or_none(d_input, IMAGES_PER_TASK * in_len, groups)
        .into_par_iter()
        .zip(input.data.par_chunks(IMAGES_PER_TASK * in_len))
        .zip(d_output.data.par_chunks_mut(IMAGES_PER_TASK * out_len))
        .enumerate()
        .map(|(task, ((d_images, images), d_outputs))| {
            let mut group = GroupSums::new(layer);
            let mut work = Workspace::new(&geometry);
            for (n, ((d_image, image), d_out)) in
                chunks_or_none(d_images, in_len, images.len() / in_len)
                    .into_iter()
                    .zip(images.chunks(in_len))
                    .zip(d_outputs.chunks_mut(out_len))
                    .enumerate()
            {
                if let Some(output) = relu_output {
                    let first = (task * IMAGES_PER_TASK + n) * out_len;
                    mask_inactive_values(d_out, &output.data[first..first + out_len]);
                }
                let group_len = in_len / conv.groups;
                let groups = image
                    .chunks(group_len)
                    .zip(d_out.chunks(out_len / conv.groups))
                    .zip(chunks_or_none(d_image, group_len, conv.groups));
                for (index, ((image, d_out), d_image)) in groups.enumerate() {
                    let rows = Rows::of_group(layer, conv.groups, index);
                    group.add_image(image, d_out, d_image, layer, rows, &geometry, &mut work);
                }
            }
            group
        })
        .collect();
    LayerGradient {
        weights: sum_in_order(partials.iter().map(|p| p.weights.as_slice())),
        bias: (0..layer.bias.len())
            .map(|o| partials.iter().map(|p| p.bias[o]).sum::<f64>() as f32)
            .collect(),
    }
}

/// The output channels of one convolution group, and their weights.
#[derive(Clone, Copy)]
struct Rows {
    first: usize,
    count: usize,
    depth: usize,
}

impl Rows {
    /// The rows of group `index` of `layer`'s weights in `groups` groups.
    fn of_group(layer: &Layer, groups: usize, index: usize) -> Self {
        let [out_c, in_c, kh, kw] = layer.shape;
        let count = out_c / groups;
        Rows {
            first: index * count,
            count,
            depth: in_c * kh * kw,
        }
    }

    /// The range of these rows' values in an `out_c x depth` matrix.
    fn weights(&self) -> std::ops::Range<usize> {
        self.first * self.depth..(self.first + self.count) * self.depth
    }
}

/// `data` in chunks of `len` values, or `count` times `None` without
/// `data` (a gradient nobody wants).
fn chunks_or_none(data: Option<&mut [f32]>, len: usize, count: usize) -> Vec<Option<&mut [f32]>> {
    match data {
        Some(data) => data.chunks_mut(len).map(Some).collect(),
        None => std::iter::repeat_with(|| None).take(count).collect(),
    }
}

/// Weight and bias gradients summed over the images of one group.
struct GroupSums {
    weights: Vec<f32>,
    bias: Vec<f64>,
}

/// Per-task buffers for the im2col matrix and its gradient (unused by a
/// pointwise convolution, which reads and writes the images directly).
struct Workspace {
    columns: Vec<f32>,
    d_columns: Vec<f32>,
}

impl Workspace {
    fn new(g: &ConvGeometry) -> Self {
        let len = if g.is_pointwise() {
            0
        } else {
            g.channels * g.kh * g.kw * g.out_h * g.out_w
        };
        Workspace {
            columns: vec![0.0; len],
            d_columns: vec![0.0; len],
        }
    }
}

impl GroupSums {
    fn new(layer: &Layer) -> Self {
        GroupSums {
            weights: vec![0.0; layer.weights.len()],
            bias: vec![0.0; layer.bias.len()],
        }
    }

    /// Add the weight and bias gradients of one image's group (`rows`:
    /// `image`, `d_out` and `d_image` are its channels) to the sums and
    /// write its input gradient into `d_image`, if given.
    #[allow(clippy::too_many_arguments)]
    fn add_image(
        &mut self,
        image: &[f32],
        d_out: &[f32],
        d_image: Option<&mut [f32]>,
        layer: &Layer,
        rows: Rows,
        g: &ConvGeometry,
        work: &mut Workspace,
    ) {
        let positions = g.out_h * g.out_w;
        let depth = rows.depth;
        let out_c = rows.count;
        let columns = if g.is_pointwise() {
            image
        } else {
            im2col(image, g, &mut work.columns);
            &work.columns
        };
        let d_out_matrix = MatRef::from_row_major_slice(d_out, out_c, positions);
        let columns = MatRef::from_row_major_slice(columns, depth, positions);
        let d_weights = &mut self.weights[rows.weights()];
        matmul_views(d_out_matrix, columns.transpose(), d_weights, true);
        let d_bias = &mut self.bias[rows.first..rows.first + rows.count];
        for (sum, row) in d_bias.iter_mut().zip(d_out.chunks(positions)) {
            *sum += sum_in_lanes(row);
        }
        let Some(d_image) = d_image else {
            return;
        };
        let weights = &layer.weights[rows.weights()];
        let weights_t = MatRef::from_row_major_slice(weights, out_c, depth).transpose();
        if g.is_pointwise() {
            matmul_views(weights_t, d_out_matrix, d_image, false);
        } else {
            matmul_views(weights_t, d_out_matrix, &mut work.d_columns, false);
            col2im(&work.d_columns, g, d_image);
        }
    }
}
