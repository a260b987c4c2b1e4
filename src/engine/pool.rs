//! Max, average and global average pooling, parallel over feature planes.
//!
//! Window placement follows Caffe and PyTorch: window `o` covers input rows
//! `o * stride - pad .. o * stride - pad + kernel`, clipped to the input.
//! Max pooling ignores the padding (a padded cell never wins). Average
//! pooling with `count_include_pad` divides by the window size clipped to
//! the *padded* input, as Caffe does and as PyTorch does with
//! `count_include_pad=True` (its default, which pnnx carries into ncnn as
//! `avgpool_count_include_pad=1`): symmetric padding counts as zeros, but
//! the extra room that ceil rounding adds past the padding does not.
//! Without it (ONNX's default) it divides by the number of real input
//! values in the window.

use formats::{Pool, PoolKind};
use rayon::prelude::*;

use super::Tensor;

/// Pool `input` into `output`, whose shape is set (and was checked by
/// shape inference).
pub(crate) fn pool(input: &Tensor, pool: &Pool, output: &mut Tensor) {
    let [_, _, in_h, in_w] = input.shape;
    let [_, _, out_h, out_w] = output.shape;
    let [rows, cols] = Axis::of(pool, [in_h, in_w]);
    let (row_windows, col_windows) = (rows.windows(out_h), cols.windows(out_w));
    let counts_pad = pool.count_include_pad;
    let planes = output
        .data
        .par_chunks_mut(out_h * out_w)
        .zip(input.data.par_chunks(in_h * in_w));
    match pool.kind {
        PoolKind::Max => planes.for_each(|(out, input)| {
            reduce_plane(input, out, &row_windows, &cols, f32::NEG_INFINITY, larger);
        }),
        PoolKind::Avg => planes.for_each(|(out, input)| {
            reduce_plane(input, out, &row_windows, &cols, 0.0, |a, b| a + b);
            for (out_row, row) in out.chunks_mut(out_w).zip(&row_windows) {
                for (value, col) in out_row.iter_mut().zip(&col_windows) {
                    *value /= (row.cells(counts_pad) * col.cells(counts_pad)) as f32;
                }
            }
        }),
    }
}

/// The larger of two values; a NaN `b` is skipped, like `f32::max` does,
/// but this compiles to a single instruction.
fn larger(a: f32, b: f32) -> f32 {
    if b > a {
        b
    } else {
        a
    }
}

/// Combine the cells of every window of one `input` plane into `out` with
/// `combine`, whose neutral value is `identity`. Each output row first
/// reduces its window's input rows element-wise into one row placed inside
/// a border of `identity` as wide as the padding (and the ceil overhang),
/// then combines the `kernel` cells of every window of that row: both loops
/// run over independent values, which keeps them fast.
fn reduce_plane(
    input: &[f32],
    out: &mut [f32],
    rows: &[Window],
    cols: &Axis,
    identity: f32,
    combine: impl Fn(f32, f32) -> f32,
) {
    let out_w = out.len() / rows.len();
    let width = ((out_w - 1) * cols.stride + cols.kernel).max(cols.pad + cols.len);
    let mut padded = vec![identity; width];
    for (out_row, row) in out.chunks_mut(out_w).zip(rows) {
        let reduced = &mut padded[cols.pad..cols.pad + cols.len];
        reduced.fill(identity);
        for input_row in input[row.start * cols.len..row.end * cols.len].chunks(cols.len) {
            reduced
                .iter_mut()
                .zip(input_row)
                .for_each(|(r, &v)| *r = combine(*r, v));
        }
        out_row.fill(identity);
        for kx in 0..cols.kernel {
            let cells = padded[kx..].iter().step_by(cols.stride);
            out_row
                .iter_mut()
                .zip(cells)
                .for_each(|(o, &v)| *o = combine(*o, v));
        }
    }
}

/// Placement of pooling windows along one axis of length `len`.
pub(crate) struct Axis {
    pub len: usize,
    pub kernel: usize,
    pub stride: usize,
    pub pad: usize,
}

/// One window along one axis.
pub(crate) struct Window {
    /// Input range covered, clipped to the input.
    pub start: usize,
    pub end: usize,
    /// Length clipped to the padded input.
    pub size: usize,
}

impl Window {
    /// The average's divisor along this axis: the length clipped to the
    /// padded input if padding counts, else the real input cells.
    pub(crate) fn cells(&self, count_include_pad: bool) -> usize {
        if count_include_pad {
            self.size
        } else {
            self.end - self.start
        }
    }
}

impl Axis {
    /// The row and column axes of `pool` on an `[h, w]` input.
    pub(crate) fn of(pool: &Pool, [h, w]: [usize; 2]) -> [Axis; 2] {
        [
            Axis {
                len: h,
                kernel: pool.kernel_h,
                stride: pool.stride_h,
                pad: pool.pad_h,
            },
            Axis {
                len: w,
                kernel: pool.kernel_w,
                stride: pool.stride_w,
                pad: pool.pad_w,
            },
        ]
    }

    /// The first `count` windows.
    pub(crate) fn windows(&self, count: usize) -> Vec<Window> {
        (0..count)
            .map(|o| {
                let padded_start = o * self.stride;
                let padded_end = (padded_start + self.kernel).min(self.len + 2 * self.pad);
                Window {
                    start: padded_start.saturating_sub(self.pad),
                    end: (padded_end - self.pad).min(self.len),
                    size: padded_end - padded_start,
                }
            })
            .collect()
    }
}

/// Average every feature plane of `input` into one value of `output`
/// (NCHW -> NC11).
pub(crate) fn global_avg_pool(input: &Tensor, output: &mut Tensor) {
    let [_, _, h, w] = input.shape;
    output
        .data
        .par_iter_mut()
        .zip(input.data.par_chunks(h * w))
        .for_each(|(out, plane)| {
            *out = (plane.iter().map(|&v| f64::from(v)).sum::<f64>() / plane.len() as f64) as f32;
        });
}
