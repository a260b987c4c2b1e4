//! col2im: the adjoint of im2col. Folds a gradient with respect to the
//! im2col matrix back onto the image, summing the contributions of the
//! overlapping windows each input value belongs to.

use rayon::prelude::*;

use crate::engine::conv::ConvGeometry;
use crate::engine::im2col::valid_outputs;

/// Fold `columns`, a `(channels * kh * kw) x (out_h * out_w)` row-major
/// matrix laid out as [`im2col`](crate::engine::im2col::im2col) writes it,
/// into the CHW `image` (overwritten): every input value receives the sum
/// of the entries that im2col copied it to; padding entries are dropped.
/// Channels run in parallel, each summing in a fixed order, so the result
/// does not depend on the thread count.
pub(super) fn col2im(columns: &[f32], g: &ConvGeometry, image: &mut [f32]) {
    let positions = g.out_h * g.out_w;
    image
        .par_chunks_mut(g.in_h * g.in_w)
        .zip(columns.par_chunks(g.kh * g.kw * positions))
        .for_each(|(plane, rows)| fold_channel(rows, plane, g));
}

/// Sum the `kh * kw` rows of one input channel into its plane.
fn fold_channel(rows: &[f32], plane: &mut [f32], g: &ConvGeometry) {
    plane.fill(0.0);
    for (k, row) in rows.chunks(g.out_h * g.out_w).enumerate() {
        let (ky, kx) = (k / g.kw, k % g.kw);
        let (x_lo, x_hi) = valid_outputs(g.out_w, g.in_w, g.sw, g.pw, kx);
        if x_lo == x_hi {
            continue;
        }
        let first = x_lo * g.sw + kx - g.pw;
        for (oy, out_row) in row.chunks(g.out_w).enumerate() {
            let Some(iy) = (oy * g.sh + ky).checked_sub(g.ph).filter(|&iy| iy < g.in_h) else {
                continue;
            };
            let in_row = &mut plane[iy * g.in_w..(iy + 1) * g.in_w];
            let values = &out_row[x_lo..x_hi];
            if g.sw == 1 {
                // Contiguous: a loop the compiler vectorises.
                in_row[first..first + values.len()]
                    .iter_mut()
                    .zip(values)
                    .for_each(|(sum, &v)| *sum += v);
            } else {
                in_row[first..]
                    .iter_mut()
                    .step_by(g.sw)
                    .zip(values)
                    .for_each(|(sum, &v)| *sum += v);
            }
        }
    }
}
