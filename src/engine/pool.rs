//! Max, average and global average pooling, parallel over feature planes.
//!
//! Window placement follows Caffe and PyTorch: window `o` covers input rows
//! `o * stride - pad .. o * stride - pad + kernel`, clipped to the input.
//! Max pooling ignores the padding. Average pooling divides by the window
//! size clipped to the *padded* input, as Caffe does and as PyTorch does with
//! `count_include_pad=True` (its default, which pnnx carries into ncnn as
//! `avgpool_count_include_pad=1`): symmetric padding counts as zeros, but
//! the extra room that ceil rounding adds past the padding does not. The
//! model type has no flag for the other convention (ONNX's default,
//! dividing by the real values only); SqueezeNet has no padded average
//! pooling, so the two never disagree on it.

use formats::{Pool, PoolKind};
use rayon::prelude::*;

use super::{EngineError, Tensor};

/// Pool `input` into `out_shape` (already checked by shape inference).
pub(crate) fn pool(input: &Tensor, pool: &Pool, out_shape: [usize; 4]) -> Result<Tensor, EngineError> {
    let [_, _, in_h, in_w] = input.shape;
    let [_, _, out_h, out_w] = out_shape;
    let rows = Axis { in_len: in_h, kernel: pool.kernel_h, stride: pool.stride_h, pad: pool.pad_h };
    let cols = Axis { in_len: in_w, kernel: pool.kernel_w, stride: pool.stride_w, pad: pool.pad_w };
    let mut output = Tensor::zeros(out_shape)?;
    output.data.par_chunks_mut(out_h * out_w).zip(input.data.par_chunks(in_h * in_w)).for_each(|(out, plane)| {
        for (oy, out_row) in out.chunks_mut(out_w).enumerate() {
            let (y0, y1, height) = rows.window(oy);
            for (ox, value) in out_row.iter_mut().enumerate() {
                let (x0, x1, width) = cols.window(ox);
                let window = (y0..y1).flat_map(|y| &plane[y * in_w + x0..y * in_w + x1]);
                *value = match pool.kind {
                    PoolKind::Max => window.fold(f32::NEG_INFINITY, |m, &v| m.max(v)),
                    PoolKind::Avg => window.sum::<f32>() / (height * width) as f32,
                };
            }
        }
    });
    Ok(output)
}

/// Placement of pooling windows along one axis.
struct Axis {
    in_len: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
}

impl Axis {
    /// Window `o`: the input range `start..end` it covers, and its size
    /// clipped to the padded input (the average's divisor).
    fn window(&self, o: usize) -> (usize, usize, usize) {
        let padded_start = o * self.stride;
        let padded_end = (padded_start + self.kernel).min(self.in_len + 2 * self.pad);
        let start = padded_start.saturating_sub(self.pad);
        let end = (padded_end - self.pad).min(self.in_len);
        (start, end, padded_end - padded_start)
    }
}

/// Average every feature plane into one value: NCHW -> NC11.
pub(crate) fn global_avg_pool(input: &Tensor) -> Result<Tensor, EngineError> {
    let [n, c, h, w] = input.shape;
    let mut output = Tensor::zeros([n, c, 1, 1])?;
    output.data.par_iter_mut().zip(input.data.par_chunks(h * w)).for_each(|(out, plane)| {
        *out = (plane.iter().map(|&v| f64::from(v)).sum::<f64>() / plane.len() as f64) as f32;
    });
    Ok(output)
}
