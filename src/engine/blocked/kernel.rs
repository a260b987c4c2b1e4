//! The direct convolution micro-kernel on the blocked layout: up to
//! [`BLOCKS`] blocks of 16 output channels at up to [`POSITIONS`]
//! consecutive output positions of one row, with AVX-512.
//!
//! Each step of the depth (`(input channel, ky, kx)`, in that order) loads
//! one vector of 16 weights per output block and broadcasts the input
//! value of that step at each position, then does `BLOCKS x POSITIONS`
//! fused multiply-adds into 24 of the 32 vector registers. A 1x1 window
//! runs whole input blocks as 16 unrolled steps, and larger windows read
//! through one pointer per position, so the loop adds few instructions to
//! the multiply-adds: a core with two 512-bit FMA units (Skylake-SP) is
//! otherwise limited by instruction issue, not arithmetic. Each output
//! value is its bias plus the products in depth order `0, 1, ...`, each
//! added with one fused multiply-add: the same order and the same roundings
//! as the NCHW micro-kernel ([`crate::engine::kernel`]), so both layouts
//! give the same bits, and no split of the work can change them.

use super::LANES;

/// Output blocks per call at most.
pub(super) const BLOCKS: usize = 4;
/// Output positions per call at most.
pub(super) const POSITIONS: usize = 6;

/// Where a call reads its inputs: `values[0]` is channel 0 of the corner
/// of the first position's window in a zero-padded input (every window
/// lies inside it).
#[derive(Debug, Clone, Copy)]
pub(super) struct Source<'a> {
    pub values: &'a [f32],
    /// Input channels, all of them summed.
    pub channels: usize,
    /// Channels per input block.
    pub lanes: usize,
    /// Values between input blocks (a plane).
    pub block_stride: usize,
    /// Values between input rows.
    pub row_stride: usize,
    /// Values between the windows of consecutive positions.
    pub position_stride: usize,
    /// `[kh, kw]`.
    pub kernel: [usize; 2],
}

impl Source<'_> {
    /// One past the last value read at `positions` positions.
    fn reach(&self, positions: usize) -> usize {
        let last = self.channels - 1;
        last / self.lanes * self.block_stride
            + last % self.lanes
            + (self.kernel[0] - 1) * self.row_stride
            + (self.kernel[1] - 1) * self.lanes
            + (positions - 1) * self.position_stride
            + 1
    }
}

/// Packed weights of `blocks` consecutive output blocks: block `b`'s
/// `depth x 16` weights start at `weights[b * stride]`. With `bias`
/// (`16 * blocks` values) the sums start at the bias; without, they go on
/// from the partial sums already in the target (a later part of the depth,
/// see [`super::conv`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Filters<'a> {
    pub weights: &'a [f32],
    pub bias: Option<&'a [f32]>,
    pub depth: usize,
    /// Values between the weights of consecutive blocks (at least `depth * 16`).
    pub stride: usize,
    pub blocks: usize,
}

/// Where a call writes: `blocks` planes `block_stride` values apart, each
/// receiving `positions` consecutive pixels of 16 values from
/// `pointer`'s.
#[derive(Debug, Clone, Copy)]
pub(super) struct Target {
    pub pointer: *mut f32,
    pub block_stride: usize,
    pub positions: usize,
}

/// Compute `target` from `source` and `filters` (through ReLU if `relu`):
/// the bias (or the target's partial sums) plus the products in depth order.
///
/// # Safety
/// The CPU must have AVX-512F ([`crate::engine::kernel::Kernel`] proves
/// it), and `target` must be valid for writes of
/// `(blocks - 1) * block_stride + positions * 16` values that no other
/// thread touches during the call. Reads are checked.
pub(super) unsafe fn convolve(
    source: Source<'_>,
    filters: Filters<'_>,
    relu: bool,
    target: Target,
) {
    let (blocks, positions) = (filters.blocks, target.positions);
    assert!((1..=BLOCKS).contains(&blocks) && (1..=POSITIONS).contains(&positions));
    assert!(
        source.channels >= 1 && source.lanes >= 1 && source.values.len() >= source.reach(positions)
    );
    assert_eq!(
        filters.depth,
        source.channels * source.kernel[0] * source.kernel[1]
    );
    assert!(filters.stride >= filters.depth * LANES);
    assert!(filters.weights.len() >= (blocks - 1) * filters.stride + filters.depth * LANES);
    assert!(filters.bias.is_none_or(|bias| bias.len() >= blocks * LANES));
    #[cfg(target_arch = "x86_64")]
    macro_rules! dispatch {
        ($($b:literal),*) => {
            match (blocks, positions) {
                $(
                    ($b, 1) => avx512::convolve::<$b, 1>(source, filters, relu, target),
                    ($b, 2) => avx512::convolve::<$b, 2>(source, filters, relu, target),
                    ($b, 3) => avx512::convolve::<$b, 3>(source, filters, relu, target),
                    ($b, 4) => avx512::convolve::<$b, 4>(source, filters, relu, target),
                    ($b, 5) => avx512::convolve::<$b, 5>(source, filters, relu, target),
                    ($b, _) => avx512::convolve::<$b, 6>(source, filters, relu, target),
                )*
                _ => unreachable!("checked above"),
            }
        };
    }
    #[cfg(target_arch = "x86_64")]
    dispatch!(1, 2, 3, 4);
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{Filters, Source, Target, LANES};

    /// [`super::convolve`] for `B` blocks and `P` positions.
    // Index loops, not iterators over `acc`: see the comment inside.
    #[allow(clippy::needless_range_loop)]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn convolve<const B: usize, const P: usize>(
        source: Source<'_>,
        filters: Filters<'_>,
        relu: bool,
        target: Target,
    ) {
        // Index loops only (no iterator adaptors over `acc`), so that the
        // unrolled accumulators live in registers and never in memory.
        let mut acc = [[_mm512_setzero_ps(); P]; B];
        for b in 0..B {
            match filters.bias {
                Some(bias) => {
                    let bias = _mm512_loadu_ps(bias.as_ptr().add(b * LANES));
                    for p in 0..P {
                        acc[b][p] = bias;
                    }
                }
                None => {
                    let out = target.pointer.add(b * target.block_stride);
                    for p in 0..P {
                        acc[b][p] = _mm512_loadu_ps(out.add(p * LANES));
                    }
                }
            }
        }
        let [kh, kw] = source.kernel;
        let (stride, block_weights) = (source.position_stride, filters.stride);
        // One step of the depth: the weights of `B` blocks at `$step` times
        // the input of each position `$p` at `$input`.
        macro_rules! step {
            ($step:expr, |$p:ident| $input:expr) => {{
                let step = $step;
                let mut weights = [_mm512_setzero_ps(); B];
                for b in 0..B {
                    weights[b] = _mm512_loadu_ps(step.add(b * block_weights));
                }
                for $p in 0..P {
                    let value = _mm512_set1_ps(*$input);
                    for b in 0..B {
                        acc[b][$p] = _mm512_fmadd_ps(weights[b], value, acc[b][$p]);
                    }
                }
            }};
        }
        let mut step = filters.weights.as_ptr();
        let mut block = source.values.as_ptr();
        let mut channel = 0;
        if [kh, kw] == [1, 1] && source.lanes == LANES {
            // Pointwise over whole blocks: a fixed count of steps with no
            // window loops, which the compiler unrolls (the general loop
            // below costs more instructions than the multiply-adds can hide
            // on a CPU with two 512-bit FMA units).
            while source.channels - channel >= LANES {
                for lane in 0..LANES {
                    step!(step.add(lane * LANES), |p| block.add(lane + p * stride));
                }
                step = step.add(LANES * LANES);
                channel += LANES;
                block = block.add(source.block_stride);
            }
        }
        while channel < source.channels {
            let lanes = source.lanes.min(source.channels - channel);
            for lane in 0..lanes {
                for ky in 0..kh {
                    // Each position's row of the window, so that the loop
                    // over it needs no address arithmetic per position.
                    let rows: [*const f32; P] = std::array::from_fn(|p| {
                        block.add(lane + ky * source.row_stride + p * stride)
                    });
                    for kx in 0..kw {
                        step!(step, |p| rows[p].add(kx * source.lanes));
                        step = step.add(LANES);
                    }
                }
            }
            channel += lanes;
            block = block.add(source.block_stride);
        }
        let zero = _mm512_setzero_ps();
        for b in 0..B {
            let out = target.pointer.add(b * target.block_stride);
            for p in 0..P {
                let sum = if relu {
                    _mm512_max_ps(acc[b][p], zero)
                } else {
                    acc[b][p]
                };
                _mm512_storeu_ps(out.add(p * LANES), sum);
            }
        }
    }
}
