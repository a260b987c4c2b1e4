//! Direct kernel for depthwise convolutions, where every output channel
//! reads a single input channel: MobileNet's 3x3 layers (stride 1 and 2),
//! and a BatchNormalization that could not be folded into a convolution
//! (a 1x1 depthwise convolution).
//!
//! im2col + GEMM would multiply a `1 x kh*kw` matrix per channel, far from
//! what a GEMM is good at. Here each output plane is its bias plus `kh * kw`
//! scaled, shifted copies of its input plane, added row by row. The input
//! plane is first copied, zero-padded, into a [`PhasedPlane`] that splits
//! every row into its `stride` phases (the columns `x` with the same
//! `x mod stride`), so the inputs of consecutive outputs sit next to each
//! other whatever the stride: the inner loop is a contiguous multiply-add
//! that the compiler vectorises, with no bounds or padding tests. Planes run
//! in parallel, each summed in a fixed order (bias, then the kernel's cells
//! row by row), so no bit depends on the thread count or the batch.

use std::cell::RefCell;

use formats::{Conv, Layer};
use rayon::prelude::*;

use super::conv::ConvGeometry;
use super::elementwise::Activation;
use super::Tensor;

/// True when `conv` with `layer` is a depthwise convolution: several
/// groups of one input channel each (any number of output channels per
/// group).
pub(crate) fn is_depthwise(layer: &Layer, conv: &Conv) -> bool {
    conv.groups > 1 && layer.shape[1] == 1
}

thread_local! {
    /// Per-thread phased copy of the input plane being convolved.
    static PLANE: RefCell<PhasedPlane> = RefCell::default();
}

/// Convolve `input` with the depthwise `layer` (see [`is_depthwise`]) as
/// `conv` says into `output` (shape set and checked by shape inference),
/// applying `activation` to each output row as it is finished.
pub(crate) fn conv2d_depthwise(
    input: &Tensor,
    layer: &Layer,
    conv: &Conv,
    output: &mut Tensor,
    activation: Activation,
) {
    let [_, in_c, in_h, in_w] = input.shape;
    let [_, out_c, out_h, out_w] = output.shape;
    let [_, _, kh, kw] = layer.shape;
    let g = ConvGeometry::new(input.shape, [kh, kw], conv, [out_h, out_w]);
    let per_input = out_c / in_c;
    let plane = in_h * in_w;
    output
        .data
        .par_chunks_mut(out_h * out_w)
        .enumerate()
        .for_each(|(index, out)| {
            let (image, channel) = (index / out_c, index % out_c);
            let source = &input.data[(image * in_c + channel / per_input) * plane..][..plane];
            let weights = &layer.weights[channel * kh * kw..][..kh * kw];
            PLANE.with_borrow_mut(|phased| {
                phased.fill(source, &g);
                phased.convolve(out, weights, layer.bias[channel], &g, activation);
            });
        });
}

/// One zero-padded input plane with every row split into its stride
/// phases: row `y`, phase `p`, entry `j` holds padded column `j * stride +
/// p`, i.e. input column `j * stride + p - pad` (0 in the padding).
#[derive(Default)]
pub(crate) struct PhasedPlane {
    /// Entries per phase of a row.
    phase_len: usize,
    /// `in_h` rows of `stride * phase_len` values.
    data: Vec<f32>,
}

impl PhasedPlane {
    /// Size the buffer for planes of geometry `g`, every value zero.
    pub(crate) fn clear(&mut self, g: &ConvGeometry) {
        // Wide enough for every window, which floor rounding keeps inside
        // the padded input.
        self.phase_len = (g.in_w + 2 * g.pw).div_ceil(g.sw);
        self.data.clear();
        self.data.resize(g.in_h * g.sw * self.phase_len, 0.0);
    }

    /// Lay out `source`, one `in_h x in_w` plane of the geometry's input.
    pub(crate) fn fill(&mut self, source: &[f32], g: &ConvGeometry) {
        self.clear(g);
        let phase_len = self.phase_len;
        for (row, input) in self.rows_mut(g).zip(source.chunks(g.in_w)) {
            for (values, column) in Self::real_cells(row, phase_len, g) {
                values
                    .iter_mut()
                    .zip(input[column..].iter().step_by(g.sw))
                    .for_each(|(v, &x)| *v = x);
            }
        }
    }

    /// The inverse of [`PhasedPlane::fill`]: write the entries that hold
    /// real input values back into the `in_h x in_w` `plane` (the padding
    /// is dropped).
    pub(crate) fn unfold(&mut self, plane: &mut [f32], g: &ConvGeometry) {
        let phase_len = self.phase_len;
        for (row, output) in self.rows_mut(g).zip(plane.chunks_mut(g.in_w)) {
            for (values, column) in Self::real_cells(row, phase_len, g) {
                output[column..]
                    .iter_mut()
                    .step_by(g.sw)
                    .zip(values.iter())
                    .for_each(|(x, &v)| *x = v);
            }
        }
    }

    /// The buffer's rows.
    fn rows_mut(&mut self, g: &ConvGeometry) -> std::slice::ChunksMut<'_, f32> {
        self.data.chunks_mut(g.sw * self.phase_len)
    }

    /// For each phase of `row` that holds real input columns: its entries
    /// from the first real one on, and that entry's input column (the
    /// following entries are `sw` columns apart).
    fn real_cells<'r>(
        row: &'r mut [f32],
        phase_len: usize,
        g: &ConvGeometry,
    ) -> impl Iterator<Item = (&'r mut [f32], usize)> {
        let (sw, pw, in_w) = (g.sw, g.pw, g.in_w);
        row.chunks_mut(phase_len)
            .enumerate()
            .filter_map(move |(phase, values)| {
                // Padded columns phase, phase + sw, ...: the first real one
                // is at least pw.
                let first = pw.saturating_sub(phase).div_ceil(sw);
                let column = (first * sw + phase).checked_sub(pw)?;
                (column < in_w).then(|| (&mut values[first..], column))
            })
    }

    /// The input values that kernel cell `(row, kx)` multiplies for the
    /// `out_w` outputs of an output row: row `row` of the plane, padded
    /// columns `kx, kx + stride, ...`.
    pub(crate) fn cells(&self, row: usize, kx: usize, g: &ConvGeometry) -> &[f32] {
        let start = row * g.sw * self.phase_len + kx % g.sw * self.phase_len + kx / g.sw;
        &self.data[start..start + g.out_w]
    }

    /// Mutable [`PhasedPlane::cells`], for the backward pass.
    pub(crate) fn cells_mut(&mut self, row: usize, kx: usize, g: &ConvGeometry) -> &mut [f32] {
        let start = row * g.sw * self.phase_len + kx % g.sw * self.phase_len + kx / g.sw;
        &mut self.data[start..start + g.out_w]
    }

    /// The input row that kernel row `ky` reads for output row `oy`, or
    /// `None` in the vertical padding.
    pub(crate) fn input_row(oy: usize, ky: usize, g: &ConvGeometry) -> Option<usize> {
        (oy * g.sh + ky)
            .checked_sub(g.ph)
            .filter(|&row| row < g.in_h)
    }

    /// One output plane: `bias` plus every kernel cell's weight times its
    /// shifted input, then `activation`.
    fn convolve(
        &self,
        out: &mut [f32],
        weights: &[f32],
        bias: f32,
        g: &ConvGeometry,
        activation: Activation,
    ) {
        for (oy, out_row) in out.chunks_mut(g.out_w).enumerate() {
            out_row.fill(bias);
            for (ky, kernel_row) in weights.chunks(g.kw).enumerate() {
                let Some(row) = Self::input_row(oy, ky, g) else {
                    continue;
                };
                for (kx, &weight) in kernel_row.iter().enumerate() {
                    out_row
                        .iter_mut()
                        .zip(self.cells(row, kx, g))
                        .for_each(|(o, &x)| *o += weight * x);
                }
            }
            activation.apply(out_row);
        }
    }
}
