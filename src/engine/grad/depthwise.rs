//! Backward pass of a depthwise convolution on the forward pass's direct
//! kernel layout ([`PhasedPlane`]), instead of one tiny GEMM per channel.
//!
//! For each image and input channel, with `dY` the gradient of each of the
//! channel's output planes (zero where a fused ReLU's output is not
//! positive) and `X` the phased, zero-padded input plane:
//!
//! - bias gradient: the sum of `dY`;
//! - weight gradient of kernel cell `(ky, kx)`: `dY · X` shifted by the
//!   cell, row by row;
//! - input gradient: every cell's weight times `dY` added onto the shifted
//!   phased plane, which is then folded back (padding dropped).
//!
//! Planes run in parallel, each in a fixed order; their parameter gradients
//! are then added over the images in image order, so no bit depends on the
//! thread count.

use formats::{Conv, Layer};
use rayon::prelude::*;

use super::elementwise::mask_inactive_values;
use crate::engine::conv::ConvGeometry;
use crate::engine::depthwise::PhasedPlane;
use crate::engine::grad::LayerGradient;
use crate::engine::Tensor;

/// [`super::conv::conv_backward`] for a depthwise `layer` (see
/// [`crate::engine::depthwise::is_depthwise`]), with the same arguments.
pub(super) fn depthwise_backward(
    input: &Tensor,
    relu_output: Option<&Tensor>,
    layer: &Layer,
    conv: &Conv,
    d_output: &mut Tensor,
    d_input: &mut Tensor,
) -> LayerGradient {
    let [_, channels, in_h, in_w] = input.shape;
    let [_, out_c, out_h, out_w] = d_output.shape;
    let [_, _, kh, kw] = layer.shape;
    let g = ConvGeometry::new(input.shape, [kh, kw], conv, [out_h, out_w]);
    let per_input = out_c / channels;
    // The output planes of one input channel are consecutive.
    let block = per_input * out_h * out_w;
    let partials: Vec<PlaneSums> = d_input
        .data
        .par_chunks_mut(in_h * in_w)
        .zip(input.data.par_chunks(in_h * in_w))
        .zip(d_output.data.par_chunks_mut(block))
        .enumerate()
        .map(|(index, ((d_plane, plane), d_out))| {
            if let Some(output) = relu_output {
                mask_inactive_values(d_out, &output.data[index * block..][..block]);
            }
            let channel = index % channels;
            let rows = channel * per_input..(channel + 1) * per_input;
            let weights = &layer.weights[rows.start * kh * kw..rows.end * kh * kw];
            PlaneSums::of(plane, d_out, weights, d_plane, &g)
        })
        .collect();
    // Partials are in (image, channel) order: add each channel's over the
    // images in order.
    let mut weights = vec![0.0f32; layer.weights.len()];
    let mut bias = vec![0.0f64; out_c];
    for (index, partial) in partials.iter().enumerate() {
        let channel = index % channels;
        let cells = per_input * kh * kw;
        weights[channel * cells..(channel + 1) * cells]
            .iter_mut()
            .zip(&partial.weights)
            .for_each(|(sum, &w)| *sum += w);
        bias[channel * per_input..(channel + 1) * per_input]
            .iter_mut()
            .zip(&partial.bias)
            .for_each(|(sum, &b)| *sum += b);
    }
    LayerGradient {
        weights,
        bias: bias.into_iter().map(|b| b as f32).collect(),
    }
}

/// The parameter gradients of one input channel's outputs from one image.
struct PlaneSums {
    weights: Vec<f32>,
    bias: Vec<f64>,
}

impl PlaneSums {
    /// Gradients of the outputs `d_out` (one plane per output channel of
    /// this input channel, whose kernels are `weights`) computed from the
    /// input `plane`; the plane's input gradient goes into `d_plane`.
    fn of(
        plane: &[f32],
        d_out: &[f32],
        weights: &[f32],
        d_plane: &mut [f32],
        g: &ConvGeometry,
    ) -> Self {
        let (cells, positions) = (g.kh * g.kw, g.out_h * g.out_w);
        let mut input = PhasedPlane::default();
        input.fill(plane, g);
        let mut d_input = PhasedPlane::default();
        d_input.clear(g);
        let mut sums = PlaneSums {
            weights: vec![0.0; weights.len()],
            bias: Vec::with_capacity(weights.len() / cells),
        };
        let planes = d_out
            .chunks(positions)
            .zip(weights.chunks(cells))
            .zip(sums.weights.chunks_mut(cells));
        for ((d_out, kernel), d_kernel) in planes {
            sums.bias.push(d_out.iter().map(|&v| f64::from(v)).sum());
            for (oy, d_row) in d_out.chunks(g.out_w).enumerate() {
                for ky in 0..g.kh {
                    let Some(row) = PhasedPlane::input_row(oy, ky, g) else {
                        continue;
                    };
                    for kx in 0..g.kw {
                        let cell = ky * g.kw + kx;
                        let x = input.cells(row, kx, g);
                        d_kernel[cell] += d_row.iter().zip(x).map(|(d, x)| d * x).sum::<f32>();
                        let weight = kernel[cell];
                        d_input
                            .cells_mut(row, kx, g)
                            .iter_mut()
                            .zip(d_row)
                            .for_each(|(dx, &d)| *dx += weight * d);
                    }
                }
            }
        }
        d_input.unfold(d_plane, g);
        sums
    }
}
