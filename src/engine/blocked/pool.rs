//! Max and global average pooling on the blocked layout, parallel over
//! channel blocks. Window placement is [`crate::engine::pool`]'s; every
//! value comes out with the same bits as there: a maximum does not depend
//! on the order its values are compared in, and a global average sums
//! each channel's plane in the same order.

use rayon::prelude::*;

use super::{Blocked, LANES};
use crate::engine::kernel::Kernel;
use crate::engine::pool::{Axis, Window};
use crate::engine::Tensor;
use formats::Pool;

/// Max-pool `input` (in [`LANES`] lanes) into `output` (same lanes;
/// spatial shape set and checked by shape inference), one AVX-512 vector
/// per pixel (`_proof`: the CPU has it).
pub(crate) fn max_pool(_proof: Kernel, input: &Blocked, pool: &Pool, output: &mut Blocked) {
    assert_eq!((input.lanes, output.lanes), (LANES, LANES));
    let [_, _, in_h, in_w] = input.shape;
    let [_, _, out_h, out_w] = output.shape;
    let [rows, cols] = Axis::of(pool, [in_h, in_w]);
    let (rows, cols) = (rows.windows(out_h), cols.windows(out_w));
    let (in_plane, out_plane) = (input.plane_len(), output.plane_len());
    output
        .data
        .par_chunks_mut(out_plane)
        .zip(input.data.par_chunks(in_plane))
        .for_each(|(out, plane)| {
            let windows = Windows {
                rows: &rows,
                cols: &cols,
                in_w,
            };
            // SAFETY: a `Kernel` proves AVX-512F.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                avx512::max_pool_plane(plane.as_chunks().0, out.as_chunks_mut().0, &windows)
            };
        });
}

/// The pooling windows of one plane of `in_w` pixels per row.
struct Windows<'a> {
    rows: &'a [Window],
    cols: &'a [Window],
    in_w: usize,
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{Windows, LANES};

    /// Each pixel of `out` is the lane-wise maximum of its window's pixels
    /// of `plane`. A NaN is skipped, as [`crate::engine::pool`] does:
    /// `_mm512_max_ps(cell, max)` returns its second operand unless the
    /// first is larger.
    #[target_feature(enable = "avx512f")]
    pub(super) fn max_pool_plane(
        plane: &[[f32; LANES]],
        out: &mut [[f32; LANES]],
        windows: &Windows<'_>,
    ) {
        let out_w = windows.cols.len();
        for (out_row, row) in out.chunks_mut(out_w).zip(windows.rows) {
            for (pixel, col) in out_row.iter_mut().zip(windows.cols) {
                let mut max = _mm512_set1_ps(f32::NEG_INFINITY);
                for y in row.start..row.end {
                    let first = y * windows.in_w;
                    for cell in &plane[first + col.start..first + col.end] {
                        // SAFETY: `cell` holds 16 values.
                        max = _mm512_max_ps(unsafe { _mm512_loadu_ps(cell.as_ptr()) }, max);
                    }
                }
                // SAFETY: `pixel` holds 16 values.
                unsafe { _mm512_storeu_ps(pixel.as_mut_ptr(), max) };
            }
        }
    }
}

/// Average every channel's plane of `input` into `output` (NCHW, `[n, c,
/// 1, 1]`), summing in double precision in pixel order from -0.0, as
/// `Iterator::sum` does; parallel over the blocks of every image, so even
/// one image's is shared between threads.
pub(crate) fn global_avg_pool(input: &Blocked, output: &mut Tensor) {
    let [_, c, h, w] = input.shape;
    let (lanes, blocks) = (input.lanes, input.blocks());
    let sums: Vec<[f64; LANES]> = input
        .data
        .par_chunks(input.plane_len())
        .map(|plane| plane_sums(plane, lanes))
        .collect();
    for (index, sums) in sums.iter().enumerate() {
        let (image, block) = (index / blocks, index % blocks);
        let first = block * lanes;
        let channels = &mut output.data[image * c..][first..c.min(first + lanes)];
        for (value, sum) in channels.iter_mut().zip(sums) {
            *value = (sum / (h * w) as f64) as f32;
        }
    }
}

/// The sum of each lane of a plane of `lanes`-lane pixels, in pixel order
/// from -0.0; with [`LANES`] lanes a fixed-width loop the compiler turns
/// into vector adds.
fn plane_sums(plane: &[f32], lanes: usize) -> [f64; LANES] {
    let mut sums = [-0.0f64; LANES];
    let mut add = |pixel: &[f32]| {
        for (sum, &value) in sums.iter_mut().zip(pixel) {
            *sum += f64::from(value);
        }
    };
    match lanes {
        LANES => plane.as_chunks::<LANES>().0.iter().for_each(|p| add(p)),
        _ => plane.chunks_exact(lanes).for_each(add),
    }
    sums
}
