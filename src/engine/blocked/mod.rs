//! The blocked activation layout (NCHWc) and the operations that run on
//! it, the fast path of a [`super::Session`] on CPUs with AVX-512.
//!
//! A [`Blocked`] tensor stores each image as blocks of [`LANES`] channels,
//! each block a `height x width` plane of pixels whose `LANES` channel
//! values are consecutive (`[n][c / 16][h][w][c % 16]`, as onnxruntime's
//! MLAS and ncnn's pack16 do). A convolution then computes 16 output
//! channels per vector register straight from the input pixels, with no
//! im2col panel: see [`conv`]. A tensor with fewer than 16 channels (the
//! network's 3-channel input) is stored as one block of exactly its
//! channels (NHWC), so its convolution does not multiply padding.
//!
//! Channels past the last real one in the last block are padding whose
//! values nobody reads: convolutions read only real input channels, and
//! conversion back to NCHW drops them.

pub(crate) mod conv;
mod kernel;
pub(crate) mod pool;

use rayon::prelude::*;

use super::buffers::Buffers;
use super::Tensor;

/// Channels per block of a convolution's output.
pub(crate) const LANES: usize = 16;

/// A batch in the blocked layout (see the module documentation).
#[derive(Debug)]
pub(crate) struct Blocked {
    /// The logical NCHW shape `[n, c, h, w]`.
    pub shape: [usize; 4],
    /// Channels per block: [`LANES`], or `c` when `c < LANES`.
    pub lanes: usize,
    /// `n * blocks * h * w * lanes` values.
    pub data: Vec<f32>,
}

impl Blocked {
    /// A tensor of logical `shape` in blocks of `lanes` channels, with
    /// unspecified contents, from `buffers`.
    pub(crate) fn uninit(shape: [usize; 4], lanes: usize, buffers: &mut Buffers) -> Self {
        let [n, c, h, w] = shape;
        let data = buffers.values(n * c.div_ceil(lanes) * h * w * lanes);
        Blocked { shape, lanes, data }
    }

    /// Number of channel blocks per image.
    pub(crate) fn blocks(&self) -> usize {
        self.shape[1].div_ceil(self.lanes)
    }

    /// Values per block: `h * w * lanes`.
    pub(crate) fn plane_len(&self) -> usize {
        self.shape[2] * self.shape[3] * self.lanes
    }

    /// Values per image.
    pub(crate) fn image_len(&self) -> usize {
        self.blocks() * self.plane_len()
    }

    /// `tensor` (NCHW) in blocks of [`LANES`] channels, or of all its
    /// channels if it has fewer.
    pub(crate) fn from_plain(tensor: &Tensor, buffers: &mut Buffers) -> Self {
        let [_, c, h, w] = tensor.shape;
        let mut blocked = Blocked::uninit(tensor.shape, c.min(LANES), buffers);
        let (lanes, plane) = (blocked.lanes, h * w);
        let image_len = blocked.image_len();
        blocked
            .data
            .par_chunks_mut(image_len)
            .zip(tensor.data.par_chunks(tensor.image_len()))
            .for_each(|(out, image)| {
                for (block, out) in out.chunks_mut(plane * lanes).enumerate() {
                    for lane in 0..lanes {
                        let channel = block * lanes + lane;
                        let values = image.get(channel * plane..(channel + 1) * plane);
                        let pixels = out[lane..].iter_mut().step_by(lanes);
                        match values {
                            Some(values) => pixels.zip(values).for_each(|(o, &v)| *o = v),
                            // Padding channels of the last block.
                            None => pixels.for_each(|o| *o = 0.0),
                        }
                    }
                }
            });
        blocked
    }

    /// The same values in NCHW.
    pub(crate) fn to_plain(&self, buffers: &mut Buffers) -> Tensor {
        let mut tensor = buffers.tensor(self.shape);
        let [_, c, h, w] = self.shape;
        let (lanes, plane) = (self.lanes, h * w);
        let image_len = tensor.image_len();
        tensor
            .data
            .par_chunks_mut(image_len)
            .zip(self.data.par_chunks(self.image_len()))
            .for_each(|(out, image)| {
                for (channel, out) in out.chunks_mut(plane).enumerate().take(c) {
                    let block = &image[channel / lanes * plane * lanes..][..plane * lanes];
                    let pixels = block[channel % lanes..].iter().step_by(lanes);
                    out.iter_mut().zip(pixels).for_each(|(o, &v)| *o = v);
                }
            });
        tensor
    }

    /// A copy with `pad = [top/bottom, left/right]` pixels of zeros around
    /// every plane.
    pub(crate) fn padded(&self, [ph, pw]: [usize; 2], buffers: &mut Buffers) -> Self {
        let [n, c, h, w] = self.shape;
        let (hp, wp) = (h + 2 * ph, w + 2 * pw);
        let mut padded = Blocked::uninit([n, c, hp, wp], self.lanes, buffers);
        let lanes = self.lanes;
        let (row, padded_row) = (w * lanes, wp * lanes);
        padded
            .data
            .par_chunks_mut(hp * padded_row)
            .zip(self.data.par_chunks(h * row))
            .for_each(|(out, plane)| {
                out[..ph * padded_row].fill(0.0);
                out[(ph + h) * padded_row..].fill(0.0);
                for (out, values) in out[ph * padded_row..]
                    .chunks_mut(padded_row)
                    .zip(plane.chunks(row))
                {
                    out[..pw * lanes].fill(0.0);
                    out[pw * lanes..][..row].copy_from_slice(values);
                    out[pw * lanes + row..].fill(0.0);
                }
            });
        padded
    }
}
