//! The sequential Optimal-Brain-Surgeon column sweep shared by SparseGPT-style
//! pruning and GPTQ-style quantization.
//!
//! Columns are fixed one at a time, in order. Fixing column `j` of a row
//! to a value `q` (zero when the weight is masked, else the rounding of
//! its current value) costs `((w_j − q) / U_jj)²` of output error, and the
//! error is minimised over the columns not fixed yet by subtracting
//! `(w_j − q) / U_jj · U[j][k]` from every later `w_k`, where `Uᵀ U` is the
//! inverse dampened Hessian (Frantar & Alistarh, GPTQ / SparseGPT). Rows
//! are independent given the mask, so they run in parallel, one task per
//! row, and results do not depend on the thread count.

use std::ops::Range;

use rayon::prelude::*;

/// Runs the sweep over the row-major `rows × dim` matrix `work` with the
/// row-major upper factor `u` (`dim × dim`, `dim ≥ 1`), fixing every entry: masked
/// entries (`mask` true) to zero, the others to `round(value)`.
///
/// Columns are processed in consecutive blocks of `block` columns; before
/// each block, `choose(columns, work, mask)` may mark further entries of
/// those columns as masked, seeing the weights as updated by all earlier
/// blocks (SparseGPT's adaptive mask selection).
pub(crate) fn sweep(
    work: &mut [f64],
    mask: &mut [bool],
    u: &[f64],
    dim: usize,
    block: usize,
    mut choose: impl FnMut(Range<usize>, &[f64], &mut [bool]),
    round: impl Fn(f64) -> f64 + Sync,
) {
    for start in (0..dim).step_by(block.max(1)) {
        let columns = start..(start + block.max(1)).min(dim);
        choose(columns.clone(), work, mask);
        work.par_chunks_mut(dim)
            .zip(mask.par_chunks(dim))
            .for_each(|(w, m)| fix_columns(w, m, u, columns.clone(), &round));
    }
}

/// Fixes `columns` of one row and spreads each column's error over the
/// rest of the row.
///
/// Compiled for the widest vectors the CPU has (chosen at run time): the
/// error spreading is most of the time of calibrating a wide layer. The
/// rounding is the same on every variant, since each update is the same
/// separate multiplication and subtraction (Rust never fuses them), so no
/// bit depends on the CPU.
fn fix_columns(
    w: &mut [f64],
    mask: &[bool],
    u: &[f64],
    columns: Range<usize>,
    round: &impl Fn(f64) -> f64,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512 F.
            return unsafe { fix_columns_avx512(w, mask, u, columns, round) };
        }
        if is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            return unsafe { fix_columns_avx2(w, mask, u, columns, round) };
        }
    }
    fix_columns_portable(w, mask, u, columns, round);
}

/// Declares `$name`: [`fix_columns_portable`] compiled for `$feature`.
macro_rules! fix_columns_for {
    ($name:ident, $feature:literal) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $feature)]
        fn $name(
            w: &mut [f64],
            mask: &[bool],
            u: &[f64],
            columns: Range<usize>,
            round: &impl Fn(f64) -> f64,
        ) {
            fix_columns_portable(w, mask, u, columns, round);
        }
    };
}

fix_columns_for!(fix_columns_avx512, "avx512f");
fix_columns_for!(fix_columns_avx2, "avx2");

/// [`fix_columns`] for the CPU the crate is compiled for.
#[inline(always)]
fn fix_columns_portable(
    w: &mut [f64],
    mask: &[bool],
    u: &[f64],
    columns: Range<usize>,
    round: &impl Fn(f64) -> f64,
) {
    let dim = w.len();
    for j in columns {
        let q = if mask[j] { 0.0 } else { round(w[j]) };
        let scaled = (w[j] - q) / u[j * dim + j];
        w[j] = q;
        if scaled != 0.0 {
            let later = &u[j * dim + j + 1..(j + 1) * dim];
            w[j + 1..]
                .iter_mut()
                .zip(later)
                .for_each(|(wk, uk)| *wk -= scaled * uk);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant gives the same bits as the portable one.
    #[test]
    fn the_vector_variants_round_exactly_like_the_portable_one() {
        let dim = 37;
        let value = |i: usize| ((i * 7919 % 1013) as f64 - 506.0) / 97.0;
        let u: Vec<f64> = (0..dim * dim)
            .map(|i| {
                if i % (dim + 1) == 0 {
                    1.5 + value(i).abs()
                } else {
                    value(i)
                }
            })
            .collect();
        let mask: Vec<bool> = (0..dim).map(|j| j % 3 == 0).collect();
        let round = |v: f64| (v * 4.0).round() / 4.0;
        let start: Vec<f64> = (0..dim).map(|i| value(i * 31)).collect();
        let mut portable = start.clone();
        fix_columns_portable(&mut portable, &mask, &u, 0..dim, &round);
        let mut dispatched = start;
        fix_columns(&mut dispatched, &mask, &u, 0..dim, &round);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&dispatched), bits(&portable));
        assert_ne!(bits(&portable), bits(&vec![0.0; dim]));
    }
}
