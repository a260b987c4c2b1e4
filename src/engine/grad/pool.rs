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
/// given the output gradient `d_output`.
pub(super) fn max_pool_backward(
    input: &Tensor,
    output: &Tensor,
    pool: &Pool,
    d_output: &Tensor,
) -> Tensor {
    let (windows, mut d_input) = prepare(input.shape, pool, d_output.shape);
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
    d_input
}

/// Gradient of average pooling `pool` over an input of `input_shape`,
/// given the output gradient `d_output`.
pub(super) fn avg_pool_backward(input_shape: [usize; 4], pool: &Pool, d_output: &Tensor) -> Tensor {
    let (windows, mut d_input) = prepare(input_shape, pool, d_output.shape);
    let [_, _, out_h, out_w] = d_output.shape;
    d_input
        .data
        .par_chunks_mut(input_shape[2] * input_shape[3])
        .zip(d_output.data.par_chunks(out_h * out_w))
        .for_each(|(d_in, d_out)| windows.spread(d_out, d_in));
    d_input
}

/// The windows of `pool` on an input of `input_shape` giving an output of
/// `output_shape`, and a zero input gradient.
fn prepare(
    input_shape: [usize; 4],
    pool: &Pool,
    output_shape: [usize; 4],
) -> (PlaneWindows, Tensor) {
    let [_, _, in_h, in_w] = input_shape;
    let [_, _, out_h, out_w] = output_shape;
    let windows = PlaneWindows {
        rows: axis(in_h, pool.kernel_h, pool.stride_h, pool.pad_h).windows(out_h),
        cols: axis(in_w, pool.kernel_w, pool.stride_w, pool.pad_w).windows(out_w),
        in_w,
    };
    let d_input = Tensor {
        shape: input_shape,
        data: vec![0.0; input_shape.iter().product()],
    };
    (windows, d_input)
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
    /// Every output's window, in output order, with its output index.
    fn each(&self) -> impl Iterator<Item = (usize, &Window, &Window)> {
        self.rows
            .iter()
            .flat_map(move |row| self.cols.iter().map(move |col| (row, col)))
            .enumerate()
            .map(|(o, (row, col))| (o, row, col))
    }

    /// Input positions of a window, row by row.
    fn cells(&self, row: &Window, col: &Window) -> impl Iterator<Item = usize> + '_ {
        let (cols, in_w) = (col.start..col.end, self.in_w);
        (row.start..row.end).flat_map(move |y| cols.clone().map(move |x| y * in_w + x))
    }

    fn route_to_max(&self, input: &[f32], output: &[f32], d_out: &[f32], d_in: &mut [f32]) {
        for (o, row, col) in self.each() {
            if let Some(cell) = self.cells(row, col).find(|&i| input[i] == output[o]) {
                d_in[cell] += d_out[o];
            }
        }
    }

    fn spread(&self, d_out: &[f32], d_in: &mut [f32]) {
        for (o, row, col) in self.each() {
            let share = d_out[o] / (row.size * col.size) as f32;
            self.cells(row, col).for_each(|i| d_in[i] += share);
        }
    }
}

/// Gradient of global average pooling over an input of `input_shape`:
/// each output's gradient divided evenly over its plane.
pub(super) fn global_avg_pool_backward(input_shape: [usize; 4], d_output: &Tensor) -> Tensor {
    let [_, _, h, w] = input_shape;
    let mut d_input = Tensor {
        shape: input_shape,
        data: vec![0.0; input_shape.iter().product()],
    };
    d_input
        .data
        .par_chunks_mut(h * w)
        .zip(&d_output.data)
        .for_each(|(plane, &d)| plane.fill((f64::from(d) / (h * w) as f64) as f32));
    d_input
}
