//! im2col: unfold an image's convolution windows into the columns of a
//! matrix, so the convolution becomes one matrix product.

use rayon::prelude::*;

use super::conv::ConvGeometry;

/// Unfold one CHW image into `columns`, a `(channels * kh * kw) x
/// (out_h * out_w)` row-major matrix (every value is written): row
/// `(c, ky, kx)`, column `(oy, ox)` holds input
/// `(c, oy * sh + ky - ph, ox * sw + kx - pw)`, or 0 in the padding.
/// Channels are filled in parallel; the result does not depend on it.
pub(crate) fn im2col(image: &[f32], g: &ConvGeometry, columns: &mut [f32]) {
    let plane = g.in_h * g.in_w;
    let positions = g.out_h * g.out_w;
    columns
        .par_chunks_mut(g.kh * g.kw * positions)
        .zip(image.par_chunks(plane))
        .for_each(|(rows, input)| unfold_channel(input, rows, g));
}

/// Fill the `kh * kw` rows of one input channel.
fn unfold_channel(input: &[f32], rows: &mut [f32], g: &ConvGeometry) {
    let positions = g.out_h * g.out_w;
    for (k, row) in rows.chunks_mut(positions).enumerate() {
        let (ky, kx) = (k / g.kw, k % g.kw);
        let (x_lo, x_hi) = valid_outputs(g.out_w, g.in_w, g.sw, g.pw, kx);
        for (oy, out_row) in row.chunks_mut(g.out_w).enumerate() {
            let Some(iy) = (oy * g.sh + ky).checked_sub(g.ph).filter(|&iy| iy < g.in_h) else {
                out_row.fill(0.0);
                continue;
            };
            out_row[..x_lo].fill(0.0);
            out_row[x_hi..].fill(0.0);
            if x_lo == x_hi {
                continue;
            }
            let in_row = &input[iy * g.in_w..(iy + 1) * g.in_w];
            let first = x_lo * g.sw + kx - g.pw;
            if g.sw == 1 {
                out_row[x_lo..x_hi].copy_from_slice(&in_row[first..first + (x_hi - x_lo)]);
            } else {
                for (dst, src) in out_row[x_lo..x_hi]
                    .iter_mut()
                    .zip(in_row[first..].iter().step_by(g.sw))
                {
                    *dst = *src;
                }
            }
        }
    }
}

/// The range `lo..hi` of output positions whose input position
/// `o * stride + offset - pad` falls inside `0..in_len`.
pub(crate) fn valid_outputs(
    out_len: usize,
    in_len: usize,
    stride: usize,
    pad: usize,
    offset: usize,
) -> (usize, usize) {
    let lo = pad.saturating_sub(offset).div_ceil(stride);
    // Largest o with o * stride + offset - pad <= in_len - 1.
    let hi = match (in_len + pad).checked_sub(offset + 1) {
        Some(room) => (room / stride + 1).min(out_len),
        None => 0,
    };
    (lo, hi.max(lo))
}
