//! Asymmetric calibration: fit a layer to the *original* network's output,
//! not to its own output on the compressed network's inputs.
//!
//! Calibration runs the layers in order on the activations of the already
//! compressed layers below (`X_c`). Fitting `Ŵ` to `‖(W − Ŵ) X_c‖²` keeps
//! the layer doing what it did, but on inputs that already carry the error
//! of every layer below, so the errors add up layer after layer. The
//! original network saw `X_o` instead; fitting `‖Ŵ X_c − W X_o‖²` asks the
//! layer to undo what it can of the error below (ThiNet and He et al.'s
//! channel pruning reconstruct this way; GPTAQ, Li et al. 2025, for GPTQ).
//!
//! The asymmetric problem costs nothing extra downstream: with
//! `G = X_c X_oᵀ` and `H = X_c X_cᵀ`, the unconstrained minimiser is
//! `W* = W Gᵀ H⁻¹`, and `‖Ŵ X_c − W X_o‖² = ‖(W* − Ŵ) X_c‖² + const`. So
//! [`retarget`] computes `W*` once, and the symmetric algorithms
//! (pruning, GPTQ) run unchanged with `W*` as their "original". With the
//! ridge `δ = λ·mean(diag H)` of [`super::damped`]:
//! `W* = W (Gᵀ + δI)(H + δI)⁻¹`, which is exactly `W` when `X_c = X_o`.
//!
//! The bias follows the same target: `b̂ = b + W μ_o − Ŵ μ_c`
//! ([`correct_bias_to_original`]), which makes the mean output equal the
//! original network's on the calibration data.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};
use rayon::prelude::*;

use super::bias::{add_product, shift_bias};
use super::damped::{cholesky, cholesky_solve, dampen};
use super::hessian::{check_len, widen_columns, CHUNK, GROUP};
use super::refit::refit_masked;
use super::{CalibError, Hessian, MAX_DIM};

/// Running sums over pairs of input columns of one layer, the compressed
/// network's `x_c` and the original network's `x_o` at the same position:
/// `Σ x_c x_oᵀ`, `Σ x_o` and the number of pairs, in `f64`. They go with
/// the [`Hessian`] of the same `x_c` (the layer's), which holds
/// `Σ x_c x_cᵀ` and `Σ x_c`.
///
/// As for [`Hessian`], the sums depend only on the sequence of
/// [`accumulate`](Self::accumulate) and [`merge`](Self::merge) calls, never
/// on the number of threads.
#[derive(Debug, Clone, PartialEq)]
pub struct PairMoments {
    dim: usize,
    /// `Σ x_c x_oᵀ`, row-major `dim × dim`: entry `(i, j)` is
    /// `Σ x_c[i] · x_o[j]`.
    cross: Vec<f64>,
    /// `Σ x_o`.
    sum_original: Vec<f64>,
    samples: usize,
}

impl PairMoments {
    /// An empty accumulator for inputs of length `dim` (`1..=MAX_DIM`).
    pub fn new(dim: usize) -> Result<Self, CalibError> {
        if dim == 0 || dim > MAX_DIM {
            return Err(CalibError::Dim { dim, max: MAX_DIM });
        }
        Ok(Self {
            dim,
            cross: vec![0.0; dim * dim],
            sum_original: vec![0.0; dim],
            samples: 0,
        })
    }

    /// Adds `n` pairs of columns, each side a row-major `dim × n` matrix
    /// laid out as for [`Hessian::accumulate`]: column `c` of `compressed`
    /// and of `original` are the same input position.
    pub fn accumulate(
        &mut self,
        compressed: &[f32],
        original: &[f32],
        n: usize,
    ) -> Result<(), CalibError> {
        check_len("compressed columns", compressed, self.dim, n)?;
        check_len("original columns", original, self.dim, n)?;
        let chunks: Vec<usize> = (0..n).step_by(CHUNK).collect();
        let dim = self.dim;
        for group in chunks.chunks(GROUP) {
            let partials: Vec<(Mat<f64>, Vec<f64>)> = group
                .par_iter()
                .map(|&start| {
                    let range = start..(start + CHUNK).min(n);
                    let len = range.len();
                    let (c, _) = widen_columns(compressed, n, range.clone(), dim);
                    let (o, sum) = widen_columns(original, n, range, dim);
                    let c = MatRef::from_row_major_slice(&c, dim, len);
                    let o = MatRef::from_row_major_slice(&o, dim, len);
                    let mut cross = Mat::zeros(dim, dim);
                    matmul(
                        cross.as_mut(),
                        Accum::Replace,
                        c,
                        o.transpose(),
                        1.0,
                        Par::Seq,
                    );
                    (cross, sum)
                })
                .collect();
            for (cross, sum) in &partials {
                for i in 0..dim {
                    for j in 0..dim {
                        self.cross[i * dim + j] += cross[(i, j)];
                    }
                }
                add_into(&mut self.sum_original, sum);
            }
        }
        self.samples += n;
        Ok(())
    }

    /// Adds the sums of `other` (other pairs of the same layer).
    pub fn merge(&mut self, other: &PairMoments) -> Result<(), CalibError> {
        if other.dim != self.dim {
            return Err(CalibError::DimMismatch {
                dim: self.dim,
                other: other.dim,
            });
        }
        add_into(&mut self.cross, &other.cross);
        add_into(&mut self.sum_original, &other.sum_original);
        self.samples += other.samples;
        Ok(())
    }

    /// The original network's mean input column `Σ x_o / n`.
    pub fn mean_original(&self) -> Vec<f64> {
        let n = self.samples.max(1) as f64;
        self.sum_original.iter().map(|s| s / n).collect()
    }

    /// Checks that `h` is the Hessian of the same compressed columns (as
    /// far as dimension and count tell).
    pub(crate) fn check_hessian(&self, h: &Hessian) -> Result<(), CalibError> {
        if h.dim() != self.dim {
            return Err(CalibError::DimMismatch {
                dim: h.dim(),
                other: self.dim,
            });
        }
        if h.samples() != self.samples {
            return Err(CalibError::Length {
                what: "pairs",
                len: self.samples,
                expected: h.samples(),
            });
        }
        Ok(())
    }
}

/// `a += b`, element by element.
fn add_into(a: &mut [f64], b: &[f64]) {
    a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
}

/// The weights `W* = W (Gᵀ + δI)(H + δI)⁻¹` that the compressed network's
/// inputs behind `h` need to reproduce what `original` (`W`, `rows × dim`
/// row-major) computed on the original network's inputs paired with them
/// in `pairs` (see the module docs). `damp` is the dampening fraction `λ`
/// of `δ`.
pub fn retarget(
    original: &[f32],
    rows: usize,
    h: &Hessian,
    pairs: &PairMoments,
    damp: f64,
) -> Result<Vec<f32>, CalibError> {
    pairs.check_hessian(h)?;
    let dim = pairs.dim;
    check_len("original weights", original, rows, dim)?;
    if original.iter().any(|w| !w.is_finite()) {
        return Err(CalibError::NonFinite("original weights"));
    }
    if pairs.cross.iter().any(|g| !g.is_finite()) {
        return Err(CalibError::NonFinite("cross moments"));
    }
    let identity: Vec<usize> = (0..dim).collect();
    let damped = dampen(h, damp, &identity, cholesky)?;
    let g = Mat::from_fn(dim, dim, |i, j| {
        pairs.cross[i * dim + j] + if i == j { damped.shift } else { 0.0 }
    });
    let w = Mat::from_fn(dim, rows, |i, r| f64::from(original[r * dim + i]));
    // (G + δI) Wᵀ, then (H + δI)⁻¹ of that: W*ᵀ.
    let mut target = Mat::zeros(dim, rows);
    matmul(
        target.as_mut(),
        Accum::Replace,
        g.as_ref(),
        w.as_ref(),
        1.0,
        Par::Seq,
    );
    cholesky_solve(damped.factor.as_ref(), target.as_mut());
    let out: Vec<f32> = (0..rows)
        .flat_map(|r| (0..dim).map(move |i| (r, i)))
        .map(|(r, i)| target[(i, r)] as f32)
        .collect();
    if out.iter().any(|w| !w.is_finite()) {
        return Err(CalibError::NonFinite("retargeted weights"));
    }
    Ok(out)
}

/// Replaces `weights` (`rows × dim`, the original `W` with whatever zeros
/// it already has) by the best fit to [`retarget`]'s `W*` that keeps those
/// zeros: `W*` itself for a dense `W`, the exact masked least-squares fit
/// ([`refit_masked`]) otherwise, so an already pruned layer stays pruned.
pub fn retarget_in_place(
    weights: &mut [f32],
    rows: usize,
    h: &Hessian,
    pairs: &PairMoments,
    damp: f64,
) -> Result<(), CalibError> {
    let target = retarget(weights, rows, h, pairs, damp)?;
    if weights.contains(&0.0) {
        refit_masked(weights, &target, rows, h, damp)?;
    } else {
        weights.copy_from_slice(&target);
    }
    Ok(())
}

/// Adds `W μ_o − Ŵ μ_c` to `bias`, where `W` is `original`, `Ŵ` is
/// `compressed` (both `rows × h.dim()`), `μ_c` the mean input behind `h`
/// and `μ_o` the original network's behind `pairs`: the compressed layer's
/// mean output becomes the original network's on the calibration data.
pub fn correct_bias_to_original(
    bias: &mut [f32],
    original: &[f32],
    compressed: &[f32],
    rows: usize,
    h: &Hessian,
    pairs: &PairMoments,
) -> Result<(), CalibError> {
    pairs.check_hessian(h)?;
    let dim = h.dim();
    check_len("bias", bias, rows, 1)?;
    check_len("original weights", original, rows, dim)?;
    check_len("compressed weights", compressed, rows, dim)?;
    shift_bias_to_original(
        bias,
        original,
        compressed,
        dim,
        &h.mean_input(),
        &pairs.mean_original(),
    );
    Ok(())
}

/// Adds `W μ_o − Ŵ μ_c` to `bias` (`W` = `original`, `Ŵ` = `compressed`,
/// row-major `rows × dim`): `(W − Ŵ) μ_c`, then `W (μ_o − μ_c)`.
pub(crate) fn shift_bias_to_original(
    bias: &mut [f32],
    original: &[f32],
    compressed: &[f32],
    dim: usize,
    compressed_mean: &[f64],
    original_mean: &[f64],
) {
    shift_bias(bias, original, compressed, dim, compressed_mean);
    let drift: Vec<f64> = original_mean
        .iter()
        .zip(compressed_mean)
        .map(|(o, c)| o - c)
        .collect();
    add_product(bias, original, dim, &drift);
}
