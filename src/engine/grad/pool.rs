//! Backward passes of max, average and global average pooling, parallel
//! over feature planes, with the forward pass's window placement
//! ([`Axis::windows`]: Caffe/PyTorch placement, ceil rounding, padding).
//!
//! Max pooling routes each output's gradient to the first input of its
//! window (in row-major order) that holds the window's maximum, so ties go
//! to one input only. Average pooling spreads it evenly over the window's
//! real inputs, divided by the same count the forward pass divides by.

use formats::Pool;
use rayon::prelude::*;

use crate::engine::pool::{Axis, Window};
use crate::engine::Tensor;

/// Gradient of max pooling `pool`, which read `input` and wrote `output`,
/// given the output gradient `d_output`, into `d_input` (of the input's
/// shape, any contents).
pub(super) fn max_pool_backward(
    input: &Tensor,
    output: &Tensor,
    pool: &Pool,
    d_output: &Tensor,
    d_input: &mut Tensor,
) {
    let windows = PlaneWindows::new(input.shape, pool, d_output.shape);
    let (in_plane, out_plane) = (
        input.shape[2] * input.shape[3],
        output.shape[2] * output.shape[3],
    );
    d_input
        .data
        .par_chunks_mut(in_plane)
        .zip(d_output.data.par_chunks(out_plane))
        .zip(input.data.par_chunks(in_plane))
        .zip(output.data.par_chunks(out_plane))
        .for_each(|(((d_in, d_out), x), y)| windows.route_to_max(x, y, d_out, d_in));
}

/// Gradient of average pooling `pool` given the output gradient
/// `d_output`, into `d_input` (of the input's shape, any contents).
pub(super) fn avg_pool_backward(pool: &Pool, d_output: &Tensor, d_input: &mut Tensor) {
    let input_shape = d_input.shape;
    let windows = PlaneWindows::new(input_shape, pool, d_output.shape);
    let [_, _, out_h, out_w] = d_output.shape;
    d_input
        .data
        .par_chunks_mut(input_shape[2] * input_shape[3])
        .zip(d_output.data.par_chunks(out_h * out_w))
        .for_each(|(d_in, d_out)| windows.spread(d_out, d_in, pool.count_include_pad));
}

fn axis(len: usize, kernel: usize, stride: usize, pad: usize) -> Axis {
    Axis {
        len,
        kernel,
        stride,
        pad,
    }
}

/// The windows of every output of a plane.
struct PlaneWindows {
    rows: Vec<Window>,
    cols: Vec<Window>,
    in_w: usize,
}

impl PlaneWindows {
    /// The windows of `pool` on an input of `input_shape` giving an output
    /// of `output_shape`.
    fn new(input_shape: [usize; 4], pool: &Pool, output_shape: [usize; 4]) -> Self {
        let [_, _, in_h, in_w] = input_shape;
        let [_, _, out_h, out_w] = output_shape;
        PlaneWindows {
            rows: axis(in_h, pool.kernel_h, pool.stride_h, pool.pad_h).windows(out_h),
            cols: axis(in_w, pool.kernel_w, pool.stride_w, pool.pad_w).windows(out_w),
            in_w,
        }
    }

    /// Call `visit(output index, row window, column window)` for every
    /// output of the plane, in order.
    fn each(&self, mut visit: impl FnMut(usize, &Window, &Window)) {
        for (oy, row) in self.rows.iter().enumerate() {
            for (ox, col) in self.cols.iter().enumerate() {
                visit(oy * self.cols.len() + ox, row, col);
            }
        }
    }

    /// The input range of row `y` of a window spanning `col`.
    fn span(&self, y: usize, col: &Window) -> std::ops::Range<usize> {
        y * self.in_w + col.start..y * self.in_w + col.end
    }

    fn route_to_max(&self, input: &[f32], output: &[f32], d_out: &[f32], d_in: &mut [f32]) {
        d_in.fill(0.0);
        self.each(|o, row, col| {
            let first_max = (row.start..row.end).find_map(|y| {
                let span = self.span(y, col);
                let x = input[span.clone()].iter().position(|&v| v == output[o])?;
                Some(span.start + x)
            });
            if let Some(cell) = first_max {
                d_in[cell] += d_out[o];
            }
        });
    }

    fn spread(&self, d_out: &[f32], d_in: &mut [f32], count_include_pad: bool) {
        d_in.fill(0.0);
        self.each(|o, row, col| {
            let cells = row.cells(count_include_pad) * col.cells(count_include_pad);
            let share = d_out[o] / cells as f32;
            for y in row.start..row.end {
                d_in[self.span(y, col)].iter_mut().for_each(|d| *d += share);
            }
        });
    }
}

/// Gradient of global average pooling, into `d_input` (of the input's
/// shape, any contents): each output's gradient divided evenly over its
/// plane.
pub(super) fn global_avg_pool_backward(d_output: &Tensor, d_input: &mut Tensor) {
    let [_, _, h, w] = d_input.shape;
    d_input
        .data
        .par_chunks_mut(h * w)
        .zip(&d_output.data)
        .for_each(|(plane, &d)| plane.fill((f64::from(d) / (h * w) as f64) as f32));
}
