//! The convolution micro-kernel: one `MR x NR` block of output values as
//! `bias + weights * patches`, with AVX-512.
//!
//! The weights of `MR` output channels come interleaved (`depth x MR`,
//! see [`super::packed`]) and the `NR` input columns as a `depth x NR`
//! panel, so every step of the depth loop reads `MR` weights and two
//! 16-lane vectors, and does `MR x 2` fused multiply-adds into 16 of the 32
//! vector registers. Each output value is summed in one fixed order (bias,
//! then depth `0, 1, ...`), so it never depends on how work was split.
//!
//! The kernel exists only where the CPU has AVX-512 (checked once at run
//! time); elsewhere [`Kernel::detect`] gives `None` and the engine falls
//! back to im2col + faer, whose own kernels cover AVX2 and other CPUs.
//! (An AVX2 version of this kernel, 4 x 16 with 8 accumulators, was about
//! 20 % slower than faer on this project's Zen 4.)

/// Output channels per block.
pub(crate) const MR: usize = 8;
/// Output positions per panel: two 16-lane vectors.
pub(crate) const NR: usize = 32;

/// Proof that this CPU runs the micro-kernel; only [`Kernel::detect`]
/// makes one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kernel(());

impl Kernel {
    /// The kernel, if the CPU has AVX-512 (F).
    pub(crate) fn detect() -> Option<Kernel> {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx512f") {
            return Some(Kernel(()));
        }
        None
    }

    /// `out[r][j] = bias[r] + sum over k of weights[k * MR + r] * panel[k * NR + j]`
    /// for the `out.len() <= MR` rows and `j < cols <= NR`, through ReLU if
    /// `relu`. `weights` holds `depth x MR` values, `panel` `depth x NR`;
    /// each row of `out` at least `cols` values. Rows past `out.len()` and
    /// columns past `cols` are computed and dropped.
    pub(crate) fn block(
        self,
        weights: &[f32],
        panel: &[f32],
        bias: &[f32; MR],
        relu: bool,
        out: &mut [&mut [f32]],
        cols: usize,
    ) {
        let depth = panel.len() / NR;
        assert!(weights.len() >= depth * MR && out.len() <= MR && cols <= NR);
        assert!(out.iter().all(|row| row.len() >= cols));
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `Kernel` exists only if the CPU has AVX-512, and
        // the asserts above bound every read and write.
        unsafe {
            if cols > 16 {
                avx512::block::<2>(weights, panel, bias, relu, out, cols);
            } else {
                avx512::block::<1>(weights, panel, bias, relu, out, cols);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{MR, NR};

    /// [`super::Kernel::block`] with `V` vectors per row (`16 * V >= cols`),
    /// so narrow panels do not pay for two.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn block<const V: usize>(
        weights: &[f32],
        panel: &[f32],
        bias: &[f32; MR],
        relu: bool,
        out: &mut [&mut [f32]],
        cols: usize,
    ) {
        let depth = panel.len() / NR;
        let mut acc = [[_mm512_setzero_ps(); V]; MR];
        for (row, &b) in acc.iter_mut().zip(bias) {
            *row = [_mm512_set1_ps(b); V];
        }
        let (w, p) = (weights.as_ptr(), panel.as_ptr());
        for k in 0..depth {
            let mut columns = [_mm512_setzero_ps(); V];
            for (v, column) in columns.iter_mut().enumerate() {
                *column = _mm512_loadu_ps(p.add(k * NR + 16 * v));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let weight = _mm512_set1_ps(*w.add(k * MR + r));
                for (sum, &column) in row.iter_mut().zip(&columns) {
                    *sum = _mm512_fmadd_ps(weight, column, *sum);
                }
            }
        }
        if relu {
            let zero = _mm512_setzero_ps();
            for sum in acc.iter_mut().flatten() {
                *sum = _mm512_max_ps(*sum, zero);
            }
        }
        for (row, sums) in out.iter_mut().zip(&acc) {
            for (v, &sum) in sums.iter().enumerate() {
                let lanes = cols.saturating_sub(16 * v).min(16);
                let mask: __mmask16 = ((1u32 << lanes) - 1) as __mmask16;
                _mm512_mask_storeu_ps(row.as_mut_ptr().add(16 * v), mask, sum);
            }
        }
    }
}
