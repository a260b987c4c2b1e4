//! Backward pass of local response normalisation across channels.
//!
//! With `s[c] = bias + alpha / size * sum over window(c) of x^2` and
//! `y[c] = x[c] * s[c]^-beta`, the input gradient is
//!
//! `dx[j] = dy[j] * s[j]^-beta
//!          - 2 alpha beta / size * x[j] * sum over {c : j in window(c)} of t[c]`,
//! `t[c] = dy[c] * x[c] * s[c]^(-beta - 1)`.
//!
//! Both passes run over feature planes in parallel and sum channels in
//! order, so no bit depends on the thread count.

use std::ops::Range;

use formats::Lrn;
use rayon::prelude::*;

use crate::engine::lrn::scale_plane;
use crate::engine::Tensor;

/// Gradient of LRN `lrn`, which read `input`, given the output gradient
/// `d_output`, into `d_input` (of the input's shape, any contents).
pub(super) fn lrn_backward(input: &Tensor, lrn: &Lrn, d_output: &Tensor, d_input: &mut Tensor) {
    let [_, channels, h, w] = input.shape;
    let plane = h * w;
    let image_len = channels * plane;
    let mut t = vec![0.0f32; input.data.len()];
    // First term into d_input, and t.
    d_input
        .data
        .par_chunks_mut(plane)
        .zip(t.par_chunks_mut(plane))
        .enumerate()
        .for_each(|(index, (d_in, t))| {
            let (image, channel) = (index / channels, index % channels);
            let image = &input.data[image * image_len..][..image_len];
            let mut scale = vec![0.0f32; plane];
            scale_plane(image, channel, lrn, &mut scale);
            let x = &image[channel * plane..][..plane];
            let dy = &d_output.data[index * plane..][..plane];
            for i in 0..plane {
                let factor = scale[i].powf(-lrn.beta);
                d_in[i] = dy[i] * factor;
                t[i] = dy[i] * x[i] * factor / scale[i];
            }
        });
    let coefficient = 2.0 * lrn.alpha * lrn.beta / lrn.size as f32;
    d_input
        .data
        .par_chunks_mut(plane)
        .enumerate()
        .for_each(|(index, d_in)| {
            let (image, channel) = (index / channels, index % channels);
            let t = &t[image * image_len..][..image_len];
            let mut sum = vec![0.0f32; plane];
            for normalised in normalised_by(channel, channels, lrn.size) {
                sum.iter_mut()
                    .zip(&t[normalised * plane..][..plane])
                    .for_each(|(s, &t)| *s += t);
            }
            let x = &input.data[index * plane..][..plane];
            for ((d, &x), &s) in d_in.iter_mut().zip(x).zip(&sum) {
                *d -= coefficient * x * s;
            }
        });
}

/// The channels whose window (see [`crate::engine::lrn::window`]) holds
/// `channel`: `channel - size / 2 ..= channel + (size - 1) / 2`, clipped.
fn normalised_by(channel: usize, channels: usize, size: usize) -> Range<usize> {
    channel.saturating_sub(size / 2)..(channel + (size - 1) / 2 + 1).min(channels)
}
