//! Local response normalisation across channels (AlexNet, GoogLeNet), as
//! ONNX `LRN` and Caffe's `ACROSS_CHANNELS` define it:
//! `y[c] = x[c] / (bias + alpha / size * sum(x[c']^2))^beta`, the sum over
//! the channels of [`window`] that exist.
//!
//! Output planes run in parallel; each sums its window's squares channel by
//! channel in order, so no bit depends on the thread count.

use std::ops::Range;

use formats::Lrn;
use rayon::prelude::*;

use super::Tensor;

/// The channels `c - (size - 1) / 2 ..= c + size / 2` whose squares
/// normalise channel `channel`, clipped to the `channels` that exist.
pub(crate) fn window(channel: usize, channels: usize, size: usize) -> Range<usize> {
    channel.saturating_sub((size - 1) / 2)..(channel + size / 2 + 1).min(channels)
}

/// `bias + alpha / size * sum of squares` for every value of output plane
/// `channel` of one `image`, into `scale` (one plane long).
pub(crate) fn scale_plane(image: &[f32], channel: usize, lrn: &Lrn, scale: &mut [f32]) {
    let plane = scale.len();
    let channels = image.len() / plane;
    scale.fill(0.0);
    for neighbour in window(channel, channels, lrn.size) {
        scale
            .iter_mut()
            .zip(&image[neighbour * plane..][..plane])
            .for_each(|(s, &x)| *s += x * x);
    }
    let coefficient = lrn.alpha / lrn.size as f32;
    scale
        .iter_mut()
        .for_each(|s| *s = lrn.bias + coefficient * *s);
}

/// Normalise `input` into `output` (same shape).
pub(crate) fn lrn(input: &Tensor, lrn: &Lrn, output: &mut Tensor) {
    let [_, channels, h, w] = input.shape;
    let plane = h * w;
    output
        .data
        .par_chunks_mut(plane)
        .enumerate()
        .for_each(|(index, out)| {
            let (image, channel) = (index / channels, index % channels);
            let image = &input.data[image * channels * plane..][..channels * plane];
            scale_plane(image, channel, lrn, out);
            out.iter_mut()
                .zip(&image[channel * plane..][..plane])
                .for_each(|(y, &x)| *y = x * y.powf(-lrn.beta));
        });
}
