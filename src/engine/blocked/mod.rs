//! The blocked activation layout (NCHWc) and the operations that run on
//! it, the fast path of a [`super::Session`] on CPUs with AVX-512.
//!
//! A [`Blocked`] tensor stores each image as blocks of [`LANES`] channels,
//! each block a `height x width` plane of pixels whose `LANES` channel
//! values are consecutive (`[n][c / 16][h][w][c % 16]`, as onnxruntime's
//! MLAS and ncnn's pack16 do). A convolution then computes 16 output
//! channels per vector register straight from the input pixels, with no
//! im2col panel: see [`conv`]. A tensor with fewer than 16 channels (the
//! network's 3-channel input) is stored in blocks of one channel, which is
//! NCHW itself: converting it is a copy, and its convolution does not
//! multiply padding.
//!
//! Channels past the last real one in the last block are padding whose
//! values nobody reads: convolutions read only real input channels, and
//! conversion back to NCHW drops them.

pub(crate) mod conv;
mod kernel;
pub(crate) mod pool;
pub(crate) mod winograd;

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
    /// Channels per block: [`LANES`], or 1 when `c < LANES`.
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

    /// `tensor` (NCHW) in blocks of [`LANES`] channels, or of one channel
    /// (a copy) if it has fewer. Parallel over rows of pixels, so even one
    /// block of one image is split between threads.
    pub(crate) fn from_plain(tensor: &Tensor, buffers: &mut Buffers) -> Self {
        let [_, c, h, w] = tensor.shape;
        if c < LANES {
            let mut blocked = Blocked::uninit(tensor.shape, 1, buffers);
            // Runs of 16 rows: copies of a few kilobytes per task.
            blocked
                .data
                .par_chunks_mut(16 * w)
                .zip(tensor.data.par_chunks(16 * w))
                .for_each(|(out, rows)| out.copy_from_slice(rows));
            return blocked;
        }
        let mut blocked = Blocked::uninit(tensor.shape, LANES, buffers);
        let (lanes, blocks, plane) = (blocked.lanes, blocked.blocks(), h * w);
        blocked
            .data
            .par_chunks_mut(w * lanes)
            .enumerate()
            .for_each(|(row, out)| {
                let (image, block, y) = (row / (blocks * h), row / h % blocks, row % h);
                for lane in 0..lanes {
                    let channel = block * lanes + lane;
                    let pixels = out[lane..].iter_mut().step_by(lanes);
                    if channel < c {
                        let start = (image * c + channel) * plane + y * w;
                        let values = &tensor.data[start..start + w];
                        pixels.zip(values).for_each(|(o, &v)| *o = v);
                    } else {
                        // Padding channels of the last block.
                        pixels.for_each(|o| *o = 0.0);
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
    /// every plane; parallel over rows.
    pub(crate) fn padded(&self, [ph, pw]: [usize; 2], buffers: &mut Buffers) -> Self {
        let [_, _, h, w] = self.shape;
        self.padded_to([ph, pw], [h + 2 * ph, w + 2 * pw], buffers)
    }

    /// A copy with every plane placed `pad = [top, left]` pixels into a
    /// plane of zeros of `size = [height, width]` (at least the plane plus
    /// `pad`); parallel over rows.
    pub(crate) fn padded_to(
        &self,
        [ph, pw]: [usize; 2],
        [hp, wp]: [usize; 2],
        buffers: &mut Buffers,
    ) -> Self {
        let [n, c, h, w] = self.shape;
        assert!(hp >= h + ph && wp >= w + pw, "the plane must fit its copy");
        let mut padded = Blocked::uninit([n, c, hp, wp], self.lanes, buffers);
        let row = w * self.lanes;
        let border = pw * self.lanes;
        padded
            .data
            .par_chunks_mut(wp * self.lanes)
            .enumerate()
            .for_each(|(padded_row, out)| {
                let (plane, y) = (padded_row / hp, padded_row % hp);
                match y.checked_sub(ph).filter(|&y| y < h) {
                    Some(y) => {
                        let start = (plane * h + y) * row;
                        out[..border].fill(0.0);
                        out[border..border + row].copy_from_slice(&self.data[start..start + row]);
                        out[border + row..].fill(0.0);
                    }
                    None => out.fill(0.0),
                }
            });
        padded
    }
}
