//! Direct kernel for depthwise convolutions, where every output channel
//! reads a single input channel: MobileNet's 3x3 layers (stride 1 and 2),
//! and a BatchNormalization that could not be folded into a convolution
//! (a 1x1 depthwise convolution).
//!
//! im2col + GEMM would multiply a `1 x kh*kw` matrix per channel, far from
//! what a GEMM is good at. Here each output plane is its bias plus `kh * kw`
//! scaled, shifted copies of its input plane. The input plane is first
//! copied, zero-padded, into a [`PhasedPlane`]: its polyphase split into
//! `stride_h x stride_w` sub-planes (the rows and columns with the same
//! remainders modulo the strides), each stored row after row with the same
//! width. In that layout every kernel cell reads, for the outputs in
//! row-major order, one contiguous run of a sub-plane at a fixed offset,
//! whatever the strides and padding, if each output row is given the
//! sub-plane's width (the extra columns are computed and dropped). So a
//! whole plane is a handful of long contiguous multiply-adds
//! ([`sum_taps`]), with no bounds or padding tests, vectorised even for
//! MobileNet's 7x7 planes. Planes run in parallel, each summed in a fixed
//! order (bias, then the kernel's cells row by row, padding included), so
//! no bit depends on the thread count or the batch.

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
    /// Per-thread phased copy of the input plane being convolved, and the
    /// wide output rows computed from it.
    static WORK: RefCell<(PhasedPlane, Vec<f32>)> = RefCell::default();
}

/// Convolve `input` with the depthwise `layer` (see [`is_depthwise`]) as
/// `conv` says into `output` (shape set and checked by shape inference),
/// applying `activation` to the outputs.
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
    let cells = kh * kw;
    // The output planes of one input plane are consecutive.
    output
        .data
        .par_chunks_mut(per_input * out_h * out_w)
        .zip(input.data.par_chunks(in_h * in_w))
        .enumerate()
        .for_each(|(index, (outputs, source))| {
            let first = index % in_c * per_input;
            WORK.with_borrow_mut(|(phased, wide)| {
                phased.fill(source, &g);
                for (channel, out) in (first..).zip(outputs.chunks_mut(out_h * out_w)) {
                    let weights = &layer.weights[channel * cells..][..cells];
                    let taps = phased.taps(weights, &g);
                    wide.resize(phased.wide_len(&g), 0.0);
                    sum_taps(wide, layer.bias[channel], &taps, &phased.data, activation);
                    for (out_row, wide_row) in out.chunks_mut(out_w).zip(wide.chunks(phased.width))
                    {
                        out_row.copy_from_slice(&wide_row[..out_w]);
                    }
                }
            });
        });
}

/// One zero-padded input plane split into `sh x sw` sub-planes: sub-plane
/// `(q, p)` holds, at row `i` and column `j`, padded row `i * sh + q` and
/// column `j * sw + p` (input row and column `pad` less; 0 in the padding).
/// Every sub-plane is `height x width`, row after row.
#[derive(Default)]
pub(crate) struct PhasedPlane {
    /// Columns of a sub-plane: `ceil(padded width / sw)`.
    pub width: usize,
    /// Rows of a sub-plane: `ceil(padded height / sh)`.
    height: usize,
    /// The `sh * sw` sub-planes, sub-plane `(q, p)` at `q * sw + p`.
    pub data: Vec<f32>,
    /// The input size, padding and strides whose zero padding `data`
    /// holds, if [`PhasedPlane::fill`] laid it out.
    padded_for: Option<[usize; 6]>,
}

/// One kernel cell's term of every wide output: `weight` times the phased
/// plane's values from `start` on (see [`PhasedPlane::taps`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tap {
    pub weight: f32,
    pub start: usize,
}

impl PhasedPlane {
    /// Size the buffer for planes of geometry `g`, every value zero.
    pub(crate) fn clear(&mut self, g: &ConvGeometry) {
        self.width = (g.in_w + 2 * g.pw).div_ceil(g.sw);
        self.height = (g.in_h + 2 * g.ph).div_ceil(g.sh);
        self.data.clear();
        self.data
            .resize(g.sh * g.sw * self.height * self.width, 0.0);
        self.padded_for = None;
    }

    /// Lay out `source`, one `in_h x in_w` plane of the geometry's input.
    /// Only the real values are written when the buffer already holds a
    /// plane of the same layout, whose padding is zero.
    pub(crate) fn fill(&mut self, source: &[f32], g: &ConvGeometry) {
        let layout = [g.in_h, g.in_w, g.ph, g.pw, g.sh, g.sw];
        if self.padded_for != Some(layout) {
            self.clear(g);
            self.padded_for = Some(layout);
        }
        for (y, input) in source.chunks(g.in_w).enumerate() {
            for (column, run) in self.runs(y, g) {
                let run = &mut self.data[run];
                if g.sw == 1 {
                    run.copy_from_slice(&input[column..column + run.len()]);
                } else {
                    let inputs = input[column..].iter().step_by(g.sw);
                    run.iter_mut().zip(inputs).for_each(|(v, &x)| *v = x);
                }
            }
        }
    }

    /// The inverse of [`PhasedPlane::fill`]: write the entries that hold
    /// real input values back into the `in_h x in_w` `plane` (the padding
    /// is dropped).
    pub(crate) fn unfold(&self, plane: &mut [f32], g: &ConvGeometry) {
        for (y, output) in plane.chunks_mut(g.in_w).enumerate() {
            for (column, run) in self.runs(y, g) {
                let outputs = output[column..].iter_mut().step_by(g.sw);
                outputs.zip(&self.data[run]).for_each(|(x, &v)| *x = v);
            }
        }
    }

    /// Where input row `y` lives: for each column phase that holds some of
    /// its values, the first input column there and the range of the
    /// buffer holding that column and every `sw`-th one after it.
    fn runs(
        &self,
        y: usize,
        g: &ConvGeometry,
    ) -> impl Iterator<Item = (usize, std::ops::Range<usize>)> {
        let row = y + g.ph;
        let (q, i) = (row % g.sh, row / g.sh);
        let (width, height) = (self.width, self.height);
        let (sw, pw, in_w) = (g.sw, g.pw, g.in_w);
        (0..sw).filter_map(move |p| {
            // Padded columns p, p + sw, ...: the first real one is >= pw.
            let first = pw.saturating_sub(p).div_ceil(sw);
            let column = (first * sw + p).checked_sub(pw)?;
            let count = (in_w.checked_sub(column)?).div_ceil(sw);
            let start = ((q * sw + p) * height + i) * width + first;
            (count > 0).then_some((column, start..start + count))
        })
    }

    /// The terms of each kernel cell of `weights` (`kh x kw`). Output
    /// `(oy, ox)` has the wide index `oy * width + ox`; kernel cell
    /// `(ky, kx)` adds its weight times the buffer at the wide index plus
    /// the tap's `start`.
    pub(crate) fn taps(&self, weights: &[f32], g: &ConvGeometry) -> Vec<Tap> {
        let plane = self.height * self.width;
        (0..g.kh)
            .flat_map(|ky| (0..g.kw).map(move |kx| (ky, kx)))
            .zip(weights)
            .map(|((ky, kx), &weight)| {
                let sub_plane = (ky % g.sh * g.sw + kx % g.sw) * plane;
                Tap {
                    weight,
                    start: sub_plane + ky / g.sh * self.width + kx / g.sw,
                }
            })
            .collect()
    }

    /// Wide outputs a plane needs: `out_h` rows of `width` values, the last
    /// one cut after its `out_w` real outputs (so no tap reads past its
    /// sub-plane).
    pub(crate) fn wide_len(&self, g: &ConvGeometry) -> usize {
        (g.out_h - 1) * self.width + g.out_w
    }
}

/// `out[i] = then(bias + taps[0] + taps[1] + ...)` (tap `t` adding
/// `weight * data[start + i]`), summed in that order for every `i`.
///
/// The values are summed in blocks held in vector registers rather than
/// through memory once per tap. Compiled for the widest vectors the CPU has
/// (chosen at run time); the rounding is the same on every variant, since
/// each value is the same sequence of separate multiplications and
/// additions (Rust never fuses them), so no bit depends on the CPU's vector
/// width.
pub(crate) fn sum_taps(out: &mut [f32], bias: f32, taps: &[Tap], data: &[f32], then: Activation) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512 F.
            return unsafe { sum_taps_avx512(out, bias, taps, data, then) };
        }
        if is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            return unsafe { sum_taps_avx2(out, bias, taps, data, then) };
        }
    }
    sum_taps_portable(out, bias, taps, data, then);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn sum_taps_avx512(out: &mut [f32], bias: f32, taps: &[Tap], data: &[f32], then: Activation) {
    sum_taps_portable(out, bias, taps, data, then);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn sum_taps_avx2(out: &mut [f32], bias: f32, taps: &[Tap], data: &[f32], then: Activation) {
    sum_taps_portable(out, bias, taps, data, then);
}

/// [`sum_taps`] in blocks of 32, then 8, then one value at a time, for
/// the CPU the crate is compiled for.
#[inline(always)]
pub(crate) fn sum_taps_portable(
    out: &mut [f32],
    bias: f32,
    taps: &[Tap],
    data: &[f32],
    then: Activation,
) {
    let done = sum_blocks::<32>(out, 0, bias, taps, data, then);
    let done = sum_blocks::<8>(out, done, bias, taps, data, then);
    sum_blocks::<1>(out, done, bias, taps, data, then);
}

/// [`sum_taps`] for the whole blocks of `N` values of `out` from `first`
/// on; returns where they end.
#[inline(always)]
fn sum_blocks<const N: usize>(
    out: &mut [f32],
    first: usize,
    bias: f32,
    taps: &[Tap],
    data: &[f32],
    then: Activation,
) -> usize {
    let mut position = first;
    for block in out[first..].chunks_exact_mut(N) {
        let mut sums = [bias; N];
        for tap in taps {
            let values: &[f32; N] = data[tap.start + position..][..N]
                .try_into()
                .expect("a block of N values");
            for (sum, &value) in sums.iter_mut().zip(values) {
                *sum += tap.weight * value;
            }
        }
        block.copy_from_slice(&sums);
        then.apply(block);
        position += N;
    }
    position
}
