//! The convolution micro-kernel: one `MR x NR` block of output values as
//! `bias + weights * patches`, with AVX-512.
//!
//! The weights of `MR` output channels come interleaved (`depth x MR`,
//! see [`super::packed`]) and up to `NR` input columns as a [`Panel`]:
//! `depth` rows a fixed stride apart (a packed `depth x NR` panel, or a
//! 1x1 convolution's input image read in place, one row per channel), so
//! every step of the depth loop reads `MR` weights and three 16-lane
//! vectors (masked past the panel's columns, so nothing past them is read), and does `MR x 3` fused multiply-adds into 24 of the 32
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
/// Output positions per panel: three 16-lane vectors.
pub(crate) const NR: usize = 48;

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

    /// `out[r][j] = start + sum over k < panel.depth of weights[k * MR + r]
    /// * panel.values[k * panel.stride + j]` for the `out.len() <= MR` rows
    /// and `j < cols <= NR`, through ReLU if `relu`, where `start` is
    /// `bias[r]` or, without `bias` (to continue a sum over more depth, as
    /// the blocked kernel's `Filters::bias` does), `out[r][j]` itself.
    /// `weights` holds `depth x MR` values; each row of `out` at least
    /// `cols` values. Rows past `out.len()` are computed and dropped;
    /// columns past `cols` are neither read nor written.
    pub(crate) fn block(
        self,
        weights: &[f32],
        panel: Panel<'_>,
        bias: Option<&[f32; MR]>,
        relu: bool,
        out: &mut [&mut [f32]],
        cols: usize,
    ) {
        let depth = panel.depth;
        assert!(weights.len() >= depth * MR && out.len() <= MR && cols <= NR);
        assert!(depth == 0 || panel.values.len() >= (depth - 1) * panel.stride + cols);
        assert!(out.iter().all(|row| row.len() >= cols));
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `Kernel` exists only if the CPU has AVX-512, and
        // the asserts above bound every read and write.
        unsafe {
            match cols {
                33.. => avx512::block::<3>(weights, panel, bias, relu, out, cols),
                17..=32 => avx512::block::<2>(weights, panel, bias, relu, out, cols),
                _ => avx512::block::<1>(weights, panel, bias, relu, out, cols),
            }
        }
    }
}

/// The input columns of [`Kernel::block`]: `depth` rows of (at least) the
/// block's columns, row `k` starting at `values[k * stride]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Panel<'a> {
    pub values: &'a [f32],
    pub stride: usize,
    pub depth: usize,
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{Panel, MR};

    /// [`super::Kernel::block`] with `V` vectors per row (`16 * V >= cols`),
    /// so narrow panels do not pay for three.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn block<const V: usize>(
        weights: &[f32],
        panel: Panel<'_>,
        bias: Option<&[f32; MR]>,
        relu: bool,
        out: &mut [&mut [f32]],
        cols: usize,
    ) {
        let masks: [__mmask16; V] = std::array::from_fn(|v| lanes(cols, v));
        let mut acc = [[_mm512_setzero_ps(); V]; MR];
        match bias {
            Some(bias) => {
                for (row, &b) in acc.iter_mut().zip(bias) {
                    *row = [_mm512_set1_ps(b); V];
                }
            }
            None => {
                for (sums, row) in acc.iter_mut().zip(out.iter()) {
                    for (v, sum) in sums.iter_mut().enumerate() {
                        *sum = _mm512_maskz_loadu_ps(masks[v], row.as_ptr().add(16 * v));
                    }
                }
            }
        }
        let (w, p) = (weights.as_ptr(), panel.values.as_ptr());
        for k in 0..panel.depth {
            let mut columns = [_mm512_setzero_ps(); V];
            for (v, column) in columns.iter_mut().enumerate() {
                *column = _mm512_maskz_loadu_ps(masks[v], p.add(k * panel.stride + 16 * v));
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
                _mm512_mask_storeu_ps(row.as_mut_ptr().add(16 * v), masks[v], sum);
            }
        }
    }

    /// The mask of the lanes of vector `v` of a row that hold one of the
    /// first `cols` values.
    fn lanes(cols: usize, v: usize) -> __mmask16 {
        super::first_lanes(cols.saturating_sub(16 * v))
    }
}

/// The AVX-512 mask of the first `min(count, 16)` lanes of a vector.
#[cfg(target_arch = "x86_64")]
pub(crate) fn first_lanes(count: usize) -> std::arch::x86_64::__mmask16 {
    ((1u32 << count.min(16)) - 1) as u16
}
