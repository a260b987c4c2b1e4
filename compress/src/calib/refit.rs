//! Exact least-squares refit of the surviving weights of a pruned layer.
//!
//! For a row with original weights `w` and surviving set `S` (its nonzero
//! positions), the refit solves
//! `min ‖(w − ŵ) X‖² + δ‖w − ŵ‖²  s.t.  ŵ_j = 0 for j ∉ S`,
//! i.e. `(H + δI)_SS ŵ_S = ((H + δI) w)_S`. The ridge term pulls towards the
//! original weights, so the output error `‖(w − ŵ) X‖²` can only fall below
//! that of plain masking (`ŵ_S = w_S`): the masked row is a feasible point
//! whose penalised objective equals its output error plus `δ‖w_P‖²`, which
//! every feasible point pays anyway. Rounding to `f32` or an ill-conditioned
//! solve could still break that by a hair, so each row keeps whichever of
//! the two is better, measured with the undamped `H`.

use faer::{Mat, MatRef};
use rayon::prelude::*;

use super::damped::{cholesky, cholesky_solve, dampen, spd_inverse};
use super::hessian::{check_len, quadratic_form};
use super::{CalibError, Hessian};

/// What a reconstruction did to one layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReconstructReport {
    /// Number of weights.
    pub total: usize,
    /// Number of weights equal to zero afterwards.
    pub zeros: usize,
    /// Dampening fraction `λ` actually used (raised from the requested one
    /// if the Hessian needed it).
    pub damp: f64,
    /// Output error `‖(W − Ŵ) X‖²` of plain masking: the original weights
    /// with the final zeros.
    pub masked_error: f64,
    /// Output error of the returned weights; never above `masked_error`.
    pub error: f64,
    /// Rows that kept their masked original weights because the refit was
    /// not better (numerically singular or rounding-dominated rows).
    pub fallback_rows: usize,
}

/// Refits the surviving (nonzero) weights of `weights` to minimise the
/// layer's output error against `original`, keeping the zeros of `weights`
/// zero: per row, `ŵ_S = argmin ‖(w − ŵ) X‖²` over the nonzero set `S`,
/// with dampening `damp · mean(diag H)` (see the module docs). Both are
/// `rows × h.dim()` row-major weight slices.
///
/// The output error is never worse than plain masking (`ŵ_S = w_S`), and
/// refit weights are never exactly zero, so the zero pattern is unchanged
/// unless a row falls back to masking where `original` itself is zero.
pub fn refit_masked(
    weights: &mut [f32],
    original: &[f32],
    rows: usize,
    h: &Hessian,
    damp: f64,
) -> Result<ReconstructReport, CalibError> {
    let dim = h.dim();
    check_len("weights", weights, rows, dim)?;
    check_len("original weights", original, rows, dim)?;
    if original.iter().any(|w| !w.is_finite()) {
        return Err(CalibError::NonFinite("original weights"));
    }
    let identity: Vec<usize> = (0..dim).collect();
    let damped = dampen(h, damp, &identity, spd_inverse)?;
    let system = System {
        damped: damped.matrix.as_ref(),
        inverse: damped.factor.as_ref(),
        gram: &h.gram(),
    };
    let outcomes: Vec<RowOutcome> = weights
        .par_chunks_mut(dim)
        .zip(original.par_chunks(dim))
        .map(|(w, o)| system.refit_row(w, o))
        .collect();
    Ok(ReconstructReport {
        total: weights.len(),
        zeros: weights.iter().filter(|w| **w == 0.0).count(),
        damp: damped.damp,
        masked_error: outcomes.iter().map(|o| o.masked_error).sum(),
        error: outcomes.iter().map(|o| o.error).sum(),
        fallback_rows: outcomes.iter().filter(|o| o.fell_back).count(),
    })
}

/// Output errors of one row, masked and returned, and whether the row kept
/// its masked weights.
struct RowOutcome {
    masked_error: f64,
    error: f64,
    fell_back: bool,
}

/// The matrices every row's refit uses.
struct System<'a> {
    /// `D = H + δI`.
    damped: MatRef<'a, f64>,
    /// `D⁻¹`.
    inverse: MatRef<'a, f64>,
    /// `H`, full, row-major.
    gram: &'a [f64],
}

impl System<'_> {
    /// Refits one row in place (see [`refit_masked`]).
    fn refit_row(&self, w: &mut [f32], original: &[f32]) -> RowOutcome {
        let (support, pruned): (Vec<usize>, Vec<usize>) = (0..w.len()).partition(|&j| w[j] != 0.0);
        let original: Vec<f64> = original.iter().map(|o| f64::from(*o)).collect();
        let error_of = |w: &[f32]| {
            let delta: Vec<f64> = original
                .iter()
                .zip(w)
                .map(|(o, q)| o - f64::from(*q))
                .collect();
            quadratic_form(self.gram, &delta)
        };
        support.iter().for_each(|&j| w[j] = original[j] as f32);
        let masked_error = error_of(w);
        let mut outcome = RowOutcome {
            masked_error,
            error: masked_error,
            fell_back: false,
        };
        if support.is_empty() || pruned.is_empty() {
            // Nothing to fit, or nothing pruned: masking is exact.
            return outcome;
        }
        let fitted = if support.len() <= pruned.len() {
            self.solve_on_support(&support, &original)
        } else {
            self.solve_by_pruned(&support, &pruned, &original)
        };
        if let Some(fitted) = fitted {
            support
                .iter()
                .zip(&fitted)
                .for_each(|(&j, &v)| w[j] = nonzero_f32(v));
            let error = error_of(w);
            if error <= masked_error {
                outcome.error = error;
                return outcome;
            }
            support.iter().for_each(|&j| w[j] = original[j] as f32);
        }
        outcome.fell_back = true;
        outcome
    }

    /// `ŵ_S` from the normal equations `D_SS ŵ_S = (D w)_S`: one
    /// `|S| × |S|` Cholesky solve, the cheaper form when few weights
    /// survive.
    fn solve_on_support(&self, support: &[usize], original: &[f64]) -> Option<Vec<f64>> {
        let s = support.len();
        let block = Mat::from_fn(s, s, |a, b| self.damped[(support[a], support[b])]);
        let mut rhs = Mat::from_fn(s, 1, |a, _| {
            let i = support[a];
            // Column i (= row i, by symmetry) is contiguous.
            (0..original.len())
                .map(|k| self.damped[(k, i)] * original[k])
                .sum::<f64>()
        });
        cholesky_solve(cholesky(block.as_ref())?.as_ref(), rhs.as_mut());
        finite_f32((0..s).map(|a| rhs[(a, 0)]).collect())
    }

    /// `ŵ_S` from the equivalent Optimal-Brain-Surgeon form
    /// `ŵ = w − D⁻¹_{·P} (D⁻¹_PP)⁻¹ w_P`: one `|P| × |P|` Cholesky solve,
    /// the cheaper form when few weights are pruned.
    fn solve_by_pruned(
        &self,
        support: &[usize],
        pruned: &[usize],
        original: &[f64],
    ) -> Option<Vec<f64>> {
        let p = pruned.len();
        let block = Mat::from_fn(p, p, |a, b| self.inverse[(pruned[a], pruned[b])]);
        let mut z = Mat::from_fn(p, 1, |a, _| original[pruned[a]]);
        cholesky_solve(cholesky(block.as_ref())?.as_ref(), z.as_mut());
        let fitted = support
            .iter()
            .map(|&i| {
                original[i]
                    - (0..p)
                        .map(|a| self.inverse[(pruned[a], i)] * z[(a, 0)])
                        .sum::<f64>()
            })
            .collect();
        finite_f32(fitted)
    }
}

/// `values` if every one of them fits in `f32`.
fn finite_f32(values: Vec<f64>) -> Option<Vec<f64>> {
    values
        .iter()
        .all(|v| v.is_finite() && v.abs() <= f64::from(f32::MAX))
        .then_some(values)
}

/// `v` rounded to `f32`, but never to zero: a surviving weight that
/// underflows becomes the smallest subnormal of its sign, so the zero
/// pattern (the mask) stays exact.
pub(crate) fn nonzero_f32(v: f64) -> f32 {
    let rounded = v as f32;
    if rounded == 0.0 {
        f32::from_bits(1).copysign(if v < 0.0 { -1.0 } else { 1.0 })
    } else {
        rounded
    }
}
