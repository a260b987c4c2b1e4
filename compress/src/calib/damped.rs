//! The dampened Hessian `H + δ·I` and the Cholesky-based factorisations the
//! reconstructions need, with a retry at stronger dampening when a
//! factorisation fails.
//!
//! `δ = λ · mean(diag H)`: a ridge penalty `δ‖Δw‖²` on weight changes,
//! scaled to the Hessian so `λ` means the same for every layer. It keeps
//! `H` invertible when inputs are correlated, rank-deficient (fewer
//! columns than inputs) or dead: an input that is zero on every column
//! has a zero row and column in `H`, gets the diagonal `δ` alone and
//! decouples from the others, so its weights are never changed by a
//! refit and never receive error from other columns (GPTQ sets such a
//! diagonal to 1 for the same purpose; adding `δ` keeps the damped problem
//! an exact ridge regression, which the refit's guarantee relies on). If
//! no input carries any signal the scale falls back to 1.
//!
//! Every factorisation runs sequentially (`Par::Seq`), so results never
//! depend on the thread count.

use faer::dyn_stack::{MemBuffer, MemStack, StackReq};
use faer::linalg::cholesky::llt;
use faer::{Mat, MatMut, MatRef, Par};

use super::{CalibError, Hessian};

/// Default dampening fraction λ (1 % of the mean diagonal, as in GPTQ).
pub const DEFAULT_DAMP: f64 = 0.01;

/// Smallest base for the retry schedule, so that `λ = 0` can still be
/// retried with a positive dampening.
const MIN_RETRY_DAMP: f64 = 1e-4;

/// Factor by which each retry multiplies the dampening, and how many
/// retries follow the first attempt.
const RETRY_FACTOR: f64 = 10.0;
const RETRIES: i32 = 3;

/// A dampened Hessian in a chosen column order, with whatever a caller
/// derived from it.
pub(crate) struct Dampened<T> {
    /// `H + δ·I`, full symmetric, rows and columns in the requested order.
    pub matrix: Mat<f64>,
    /// The caller's factorisation of `matrix`.
    pub factor: T,
    /// The dampening fraction `λ` that made the factorisation succeed.
    pub damp: f64,
    /// The `δ = λ · scale` that was added to the diagonal.
    pub shift: f64,
}

/// Builds `H + λ·scale·I` with rows and columns permuted by `order`
/// (`order[i]` is the Hessian index of position `i`) and applies
/// `factorise`; if that fails (returns `None`), retries with `λ` raised
/// tenfold, three times, then gives up with
/// [`CalibError::NotPositiveDefinite`].
pub(crate) fn dampen<T>(
    h: &Hessian,
    damp: f64,
    order: &[usize],
    factorise: impl Fn(MatRef<'_, f64>) -> Option<T>,
) -> Result<Dampened<T>, CalibError> {
    if !damp.is_finite() || damp < 0.0 {
        return Err(CalibError::Damp(damp));
    }
    let dim = h.dim();
    let gram = h.gram();
    if gram.iter().any(|g| !g.is_finite()) {
        return Err(CalibError::NonFinite("Hessian"));
    }
    let mean_diag = (0..dim).map(|i| gram[i * dim + i]).sum::<f64>() / dim.max(1) as f64;
    let scale = if mean_diag > 0.0 { mean_diag } else { 1.0 };
    let base = damp.max(MIN_RETRY_DAMP);
    let mut tried = damp;
    for attempt in 0..=RETRIES {
        let lambda = if attempt == 0 {
            damp
        } else {
            base * RETRY_FACTOR.powi(attempt)
        };
        tried = lambda;
        let shift = lambda * scale;
        let matrix = Mat::from_fn(dim, dim, |i, j| {
            let g = gram[order[i] * dim + order[j]];
            if i == j {
                g + shift
            } else {
                g
            }
        });
        if let Some(factor) = factorise(matrix.as_ref()) {
            return Ok(Dampened {
                matrix,
                factor,
                damp: lambda,
                shift,
            });
        }
    }
    Err(CalibError::NotPositiveDefinite { damp: tried })
}

/// The lower Cholesky factor `L` of a symmetric positive definite `a`
/// (`a = L Lᵀ`, upper triangle zeroed), or `None` if a pivot is not
/// positive.
pub(crate) fn cholesky(a: MatRef<'_, f64>) -> Option<Mat<f64>> {
    let n = a.nrows();
    let mut l = a.to_owned();
    let mut mem = MemBuffer::new(llt::factor::cholesky_in_place_scratch::<f64>(
        n,
        Par::Seq,
        Default::default(),
    ));
    llt::factor::cholesky_in_place(
        l.as_mut(),
        Default::default(),
        Par::Seq,
        MemStack::new(&mut mem),
        Default::default(),
    )
    .ok()?;
    for j in 1..n {
        for i in 0..j {
            l[(i, j)] = 0.0;
        }
    }
    l.as_ref().is_all_finite().then_some(l)
}

/// Solves `L Lᵀ x = rhs` in place, given the Cholesky factor `L`.
pub(crate) fn cholesky_solve(l: MatRef<'_, f64>, rhs: MatMut<'_, f64>) {
    let mut mem = MemBuffer::new(StackReq::EMPTY);
    llt::solve::solve_in_place(l, rhs, Par::Seq, MemStack::new(&mut mem));
}

/// The inverse of a symmetric positive definite `a` (full, symmetric), or
/// `None` if its Cholesky factorisation fails.
pub(crate) fn spd_inverse(a: MatRef<'_, f64>) -> Option<Mat<f64>> {
    let n = a.nrows();
    let l = cholesky(a)?;
    let mut inverse = Mat::<f64>::zeros(n, n);
    let mut mem = MemBuffer::new(llt::inverse::inverse_scratch::<f64>(n, Par::Seq));
    llt::inverse::inverse(
        inverse.as_mut(),
        l.as_ref(),
        Par::Seq,
        MemStack::new(&mut mem),
    );
    // Only the lower triangle is written; mirror it.
    for j in 1..n {
        for i in 0..j {
            inverse[(i, j)] = inverse[(j, i)];
        }
    }
    inverse.as_ref().is_all_finite().then_some(inverse)
}

/// The upper triangular `U` with `Uᵀ U = a⁻¹`, row-major, for a symmetric
/// positive definite `a`: row `j` of `U`, scaled by `1 / U[j][j]`, is how
/// the OBS update spreads the error of fixing column `j` over the later
/// columns (GPTQ, SparseGPT). `None` if a factorisation fails.
pub(crate) fn inverse_upper_factor(a: MatRef<'_, f64>) -> Option<Vec<f64>> {
    let n = a.nrows();
    let lower = cholesky(spd_inverse(a)?.as_ref())?;
    // U = Lᵀ: row j of U is column j of L.
    let mut upper = vec![0.0; n * n];
    for j in 0..n {
        for k in j..n {
            upper[j * n + k] = lower[(k, j)];
        }
    }
    Some(upper)
}
