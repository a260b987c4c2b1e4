//! Backward passes of max, average and global average pooling, parallel
//! over feature planes, with the forward pass's window placement
//! ([`Axis::windows`]: Caffe/PyTorch placement, ceil rounding, padding),
//! and the training forward pass of max pooling, which records where each
//! maximum came from.
//!
//! Max pooling routes each output's gradient to the first input of its
//! window (in row-major order) that holds the window's maximum, so ties go
//! to one input only: the forward pass stores that input's index in its
//! plane ([`max_pool_with_argmax`]), and the backward pass scatters each
//! output gradient to it. Average pooling spreads it evenly over the
//! window's real inputs, divided by the same count the forward pass
//! divides by.

use formats::Pool;
use rayon::prelude::*;

use crate::engine::kernel::Kernel;
use crate::engine::pool::{Axis, Window};
use crate::engine::Tensor;

/// The argmax of a window with no input that holds its maximum (every
/// input NaN): its output gets no gradient.
const NO_INPUT: u32 = u32::MAX;

/// Max-pool `input` into `output` (shape set and checked by shape
/// inference) and write into `argmax` (one per output value) the index,
/// within its input plane, of the first input of each window in row-major
/// order that holds the window's maximum. The values are those of
/// [`crate::engine::pool`]'s max pooling (NaN skipped; a window whose
/// maximum is a zero that ties with a zero of the other sign may come out
/// with the other sign).
///
/// With `kernel` (the CPU has AVX-512) each plane is pooled 16 values at a
/// time; the maxima and indices are the same as without, since the
/// maximum of a window and the first index holding it do not depend on
/// how the window is cut.
pub(super) fn max_pool_with_argmax(
    kernel: Option<Kernel>,
    input: &Tensor,
    pool: &Pool,
    output: &mut Tensor,
    argmax: &mut [u32],
) {
    assert_eq!(argmax.len(), output.data.len());
    let windows = PlaneWindows::new(input.shape, pool, output.shape);
    let (in_plane, out_plane) = (
        input.shape[2] * input.shape[3],
        output.shape[2] * output.shape[3],
    );
    assert!(u32::try_from(in_plane).is_ok_and(|len| len < NO_INPUT));
    output
        .data
        .par_chunks_mut(out_plane)
        .zip(argmax.par_chunks_mut(out_plane))
        .zip(input.data.par_chunks(in_plane))
        .for_each(|((y, at), x)| match kernel {
            // SAFETY: a `Kernel` proves AVX-512F.
            #[cfg(target_arch = "x86_64")]
            Some(_) => unsafe { avx512::max_with_argmax(&windows, x, y, at) },
            _ => windows.max_with_argmax(x, y, at),
        });
}

/// Gradient of max pooling given the output gradient `d_output` and the
/// forward pass's `argmax`, into `d_input` (of the input's shape, any
/// contents). Each input sums the gradients routed to it in output order.
pub(super) fn max_pool_backward(argmax: &[u32], d_output: &Tensor, d_input: &mut Tensor) {
    let in_plane = d_input.shape[2] * d_input.shape[3];
    let out_plane = d_output.shape[2] * d_output.shape[3];
    d_input
        .data
        .par_chunks_mut(in_plane)
        .zip(d_output.data.par_chunks(out_plane))
        .zip(argmax.par_chunks(out_plane))
        .for_each(|((d_in, d_out), at)| {
            d_in.fill(0.0);
            for (&d, &cell) in d_out.iter().zip(at) {
                if cell != NO_INPUT {
                    d_in[cell as usize] += d;
                }
            }
        });
}

/// The larger of two (value, input index) pairs, the smaller index on a
/// tie: so the first input holding the maximum wins, and an input beats
/// [`NO_INPUT`] even at -inf (NaN never wins). The choice is made with bit
/// masks, not branches: which pair wins is data, and the mispredicted
/// branches the compiler made of `if` made pooling several times slower.
#[inline(always)]
fn first_max((max, at): (f32, u32), (v, cell): (f32, u32)) -> (f32, u32) {
    let first = (v > max) | ((v == max) & (cell < at));
    let take = u32::from(first).wrapping_neg();
    let pick = |new: u32, old: u32| (new & take) | (old & !take);
    (
        f32::from_bits(pick(v.to_bits(), max.to_bits())),
        pick(cell, at),
    )
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

    /// Each output of the plane is the maximum of its window of `input`;
    /// `argmax` gets the index of the first input (row-major) holding it.
    /// Row by row of outputs: first every input column's first maximum
    /// over the window's rows (a loop over consecutive values that
    /// vectorises), then every output's first over its columns, where the
    /// smaller index (the earlier row, then the earlier column) wins a tie.
    fn max_with_argmax(&self, input: &[f32], output: &mut [f32], argmax: &mut [u32]) {
        let out_w = self.cols.len();
        let (mut column_max, mut column_at) = (vec![0.0; self.in_w], vec![NO_INPUT; self.in_w]);
        for ((out, at), row) in output
            .chunks_mut(out_w)
            .zip(argmax.chunks_mut(out_w))
            .zip(&self.rows)
        {
            column_max.fill(f32::NEG_INFINITY);
            column_at.fill(NO_INPUT);
            for y in row.start..row.end {
                let first = (y * self.in_w) as u32;
                let values = &input[y * self.in_w..(y + 1) * self.in_w];
                for (x, ((m, a), &v)) in column_max
                    .iter_mut()
                    .zip(&mut column_at)
                    .zip(values)
                    .enumerate()
                {
                    (*m, *a) = first_max((*m, *a), (v, first + x as u32));
                }
            }
            for ((out, at), col) in out.iter_mut().zip(at.iter_mut()).zip(&self.cols) {
                let mut best = (f32::NEG_INFINITY, NO_INPUT);
                for x in col.start..col.end {
                    best = first_max(best, (column_max[x], column_at[x]));
                }
                (*out, *at) = best;
            }
        }
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

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{PlaneWindows, NO_INPUT};
    use crate::engine::kernel::first_lanes;

    /// Values per vector.
    const LANES: usize = 16;

    /// [`PlaneWindows::max_with_argmax`] 16 values at a time, in the same
    /// two passes: each input column's first maximum over the window's
    /// rows (16 columns per vector), then each output's over its columns
    /// (16 outputs per vector, the window's columns gathered).
    #[target_feature(enable = "avx512f")]
    pub(super) fn max_with_argmax(
        windows: &PlaneWindows,
        input: &[f32],
        output: &mut [f32],
        argmax: &mut [u32],
    ) {
        let (in_w, out_w) = (windows.in_w, windows.cols.len());
        assert!(input.len() >= windows.rows.last().map_or(0, |row| row.end) * in_w);
        assert!(i32::try_from(in_w).is_ok());
        let (mut column_max, mut column_at) = (vec![0.0; in_w], vec![NO_INPUT; in_w]);
        let starts: Vec<i32> = windows.cols.iter().map(|c| c.start as i32).collect();
        let lens: Vec<i32> = windows
            .cols
            .iter()
            .map(|c| (c.end - c.start) as i32)
            .collect();
        let widest = lens.iter().copied().max().unwrap_or(0);
        let lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        for ((out, at), row) in output
            .chunks_mut(out_w)
            .zip(argmax.chunks_mut(out_w))
            .zip(&windows.rows)
        {
            for x in (0..in_w).step_by(LANES) {
                let mask = first_lanes(in_w - x);
                let mut best = nothing();
                for y in row.start..row.end {
                    let first = y * in_w + x;
                    // SAFETY: the masked lanes are columns `x..in_w` of
                    // row `y`, inside `input` (checked above).
                    let values = unsafe { _mm512_maskz_loadu_ps(mask, input.as_ptr().add(first)) };
                    let cells = _mm512_add_epi32(_mm512_set1_epi32(first as i32), lane);
                    best = first_max(best, (values, cells));
                }
                // SAFETY: the masked lanes are `x..in_w`.
                unsafe {
                    _mm512_mask_storeu_ps(column_max.as_mut_ptr().add(x), mask, best.0);
                    _mm512_mask_storeu_epi32(column_at.as_mut_ptr().add(x).cast(), mask, best.1);
                }
            }
            for o in (0..out_w).step_by(LANES) {
                let mask = first_lanes(out_w - o);
                // SAFETY: the masked lanes are outputs `o..out_w`.
                let (start, len) = unsafe {
                    (
                        _mm512_maskz_loadu_epi32(mask, starts.as_ptr().add(o)),
                        _mm512_maskz_loadu_epi32(mask, lens.as_ptr().add(o)),
                    )
                };
                let mut best = nothing();
                for step in 0..widest {
                    let step = _mm512_set1_epi32(step);
                    let inside = mask & _mm512_cmplt_epi32_mask(step, len);
                    let column = _mm512_add_epi32(start, step);
                    // SAFETY: the lanes gathered are columns of their
                    // output's window, inside the plane's `in_w` columns.
                    let candidate = unsafe {
                        (
                            _mm512_mask_i32gather_ps::<4>(
                                nothing().0,
                                inside,
                                column,
                                column_max.as_ptr(),
                            ),
                            _mm512_mask_i32gather_epi32::<4>(
                                nothing().1,
                                inside,
                                column,
                                column_at.as_ptr().cast(),
                            ),
                        )
                    };
                    best = first_max(best, candidate);
                }
                // SAFETY: the masked lanes are outputs `o..out_w`.
                unsafe {
                    _mm512_mask_storeu_ps(out.as_mut_ptr().add(o), mask, best.0);
                    _mm512_mask_storeu_epi32(at.as_mut_ptr().add(o).cast(), mask, best.1);
                }
            }
        }
    }

    /// Lanes holding no input yet: `-inf` at [`NO_INPUT`], which no input
    /// ever loses to.
    #[target_feature(enable = "avx512f")]
    fn nothing() -> (__m512, __m512i) {
        (
            _mm512_set1_ps(f32::NEG_INFINITY),
            _mm512_set1_epi32(NO_INPUT as i32),
        )
    }

    /// [`super::first_max`] lane by lane.
    #[target_feature(enable = "avx512f")]
    fn first_max(
        (max, at): (__m512, __m512i),
        (values, cells): (__m512, __m512i),
    ) -> (__m512, __m512i) {
        let greater = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(values, max);
        let tie =
            _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(values, max) & _mm512_cmplt_epu32_mask(cells, at);
        let take = greater | tie;
        (
            _mm512_mask_mov_ps(max, take, values),
            _mm512_mask_mov_epi32(at, take, cells),
        )
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
