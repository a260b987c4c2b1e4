//! Bias correction: compensate the mean output shift of compressed weights.
//!
//! Compressing `W` to `Ŵ` shifts every output by `(W − Ŵ) x`, which has a
//! systematic part `(W − Ŵ) μ` over the calibration inputs (mean `μ`):
//! after ReLU networks, inputs are far from zero-mean, so this shift is
//! often most of the error. Adding it to the bias removes it exactly on the
//! calibration data (Nagel et al. 2019, "data-free quantization" use the
//! same correction with an estimated `μ`).

use super::hessian::check_len;
use super::{CalibError, Hessian};

/// Adds `(W − Ŵ) μ` to `bias`, where `W` is `original`, `Ŵ` is
/// `compressed` (both `rows × h.dim()`, row-major) and `μ` is the mean
/// calibration input column of `h` — with zero padding included exactly as
/// the convolution sees it, since the columns are im2col columns. The mean
/// output error over the calibration data then becomes zero up to the
/// `f32` rounding of the new bias.
pub fn correct_bias(
    bias: &mut [f32],
    original: &[f32],
    compressed: &[f32],
    rows: usize,
    h: &Hessian,
) -> Result<(), CalibError> {
    let dim = h.dim();
    check_len("bias", bias, rows, 1)?;
    check_len("original weights", original, rows, dim)?;
    check_len("compressed weights", compressed, rows, dim)?;
    shift_bias(bias, original, compressed, dim, &h.mean_input());
    Ok(())
}

/// Adds `(W − Ŵ) μ` to `bias` for row-major `rows × dim` weights and the
/// mean input `mean` (length `dim`), summing in `f64` and rounding once.
pub(crate) fn shift_bias(
    bias: &mut [f32],
    original: &[f32],
    compressed: &[f32],
    dim: usize,
    mean: &[f64],
) {
    let shifts = original
        .chunks_exact(dim)
        .zip(compressed.chunks_exact(dim))
        .map(|(w, q)| {
            w.iter()
                .zip(q)
                .zip(mean)
                .map(|((w, q), m)| (f64::from(*w) - f64::from(*q)) * m)
                .sum()
        });
    add_to_bias(bias, shifts);
}

/// Adds `W v` to `bias` for row-major `rows × dim` weights `W` and a
/// vector `v` of length `dim`, summing in `f64` and rounding once.
pub(crate) fn add_product(bias: &mut [f32], weights: &[f32], dim: usize, v: &[f64]) {
    let shifts = weights
        .chunks_exact(dim)
        .map(|w| w.iter().zip(v).map(|(w, x)| f64::from(*w) * x).sum());
    add_to_bias(bias, shifts);
}

/// Adds one `f64` shift per row to `bias`, rounding each sum once.
fn add_to_bias(bias: &mut [f32], shifts: impl Iterator<Item = f64>) {
    for (b, shift) in bias.iter_mut().zip(shifts) {
        *b = (f64::from(*b) + shift) as f32;
    }
}
