//! The matrix product behind convolutions, delegated to faer.
//!
//! faer was chosen over ndarray's `general_mat_mul` (matrixmultiply): on
//! SqueezeNet's convolution shapes it runs 15-30 % faster on one core (about
//! 110 against 90 GFLOP/s with AVX-512; `cargo bench --bench inference`
//! prints the comparison). It always runs sequentially here: the engine
//! parallelises over fixed tiles itself, so the result cannot depend on the
//! number of threads.

use faer::{Accum, MatRef, Par};

/// `c = a * b` for a row-major `a` (`m x k`), any `b` (`k x n`) and a
/// row-major `c` (`m x n`, overwritten).
pub(crate) fn matmul(a: &[f32], m: usize, k: usize, b: MatRef<'_, f32>, c: &mut [f32]) {
    let n = b.ncols();
    let a = MatRef::from_row_major_slice(a, m, k);
    let c = faer::MatMut::from_row_major_slice_mut(c, m, n);
    faer::linalg::matmul::matmul(c, Accum::Replace, a, b, 1.0, Par::Seq);
}

/// `c = a * b`, or `c += a * b` when `accumulate`, for views `a` (`m x k`)
/// and `b` (`k x n`) of any layout, such as the transposes the backward
/// pass multiplies by, and a row-major `c` (`m x n`).
pub(crate) fn matmul_views(
    a: MatRef<'_, f32>,
    b: MatRef<'_, f32>,
    c: &mut [f32],
    accumulate: bool,
) {
    let c = faer::MatMut::from_row_major_slice_mut(c, a.nrows(), b.ncols());
    let accum = if accumulate {
        Accum::Add
    } else {
        Accum::Replace
    };
    faer::linalg::matmul::matmul(c, accum, a, b, 1.0, Par::Seq);
}
