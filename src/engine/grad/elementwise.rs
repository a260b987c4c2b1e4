//! Backward passes of the element-wise operations: ReLU (fused or not),
//! Clip, addition, dropout and flatten, and the gradient sums they need.
//!
//! Dropout is the identity in the forward pass (the engine runs networks as
//! at inference, and distillation fine-tunes them that way), so its gradient
//! passes through unchanged; flatten only reshapes, so its gradient is the
//! output gradient reshaped to the input's shape; an addition passes its
//! output gradient to every term.

use formats::Clip;
use rayon::prelude::*;

use crate::engine::Tensor;

/// Values per parallel task.
const CHUNK: usize = 1 << 14;

/// ReLU backward, in place: zero the gradient wherever the saved ReLU
/// `output` is not positive (the input was clamped there).
pub(super) fn mask_inactive(gradient: &mut Tensor, output: &Tensor) {
    gradient
        .data
        .par_chunks_mut(CHUNK)
        .zip(output.data.par_chunks(CHUNK))
        .for_each(|(g, y)| mask_inactive_values(g, y));
}

/// [`mask_inactive`] on plain slices, for kernels that mask one image at a
/// time.
pub(super) fn mask_inactive_values(gradient: &mut [f32], output: &[f32]) {
    gradient
        .iter_mut()
        .zip(output)
        .for_each(|(g, &y)| *g = if y > 0.0 { *g } else { 0.0 });
}

/// Clip backward, in place: zero the gradient wherever the saved Clip
/// `output` is not strictly inside the bounds (the input was clamped
/// there; like ReLU's, a value exactly on a bound counts as clamped).
pub(super) fn mask_clipped(gradient: &mut Tensor, output: &Tensor, clip: Clip) {
    gradient
        .data
        .par_chunks_mut(CHUNK)
        .zip(output.data.par_chunks(CHUNK))
        .for_each(|(g, y)| {
            g.iter_mut().zip(y).for_each(|(g, &y)| {
                let inside = y > clip.min && y < clip.max;
                if !inside {
                    *g = 0.0;
                }
            })
        });
}

/// `sum += term`, element-wise.
pub(super) fn add_into(sum: &mut [f32], term: &[f32]) {
    sum.par_chunks_mut(CHUNK)
        .zip(term.par_chunks(CHUNK))
        .for_each(|(s, t)| s.iter_mut().zip(t).for_each(|(s, t)| *s += t));
}

/// The element-wise sum of equally long `terms`, added in the order given
/// (so the result does not depend on the thread count).
pub(super) fn sum_in_order<'t>(terms: impl Iterator<Item = &'t [f32]>) -> Vec<f32> {
    let mut terms = terms;
    let Some(first) = terms.next() else {
        return Vec::new();
    };
    let mut sum = first.to_vec();
    terms.for_each(|term| add_into(&mut sum, term));
    sum
}

/// Lanes of [`sum_in_lanes`]: one AVX-512 vector of doubles.
const LANES: usize = 8;

/// The sum of `values` in double precision: value `i` goes to lane
/// `i % 8`, and the lanes are added in order at the end. Eight
/// independent sums vectorise, where one running sum waits for every
/// addition before the next; the order is fixed, so is every bit.
pub(super) fn sum_in_lanes(values: &[f32]) -> f64 {
    let mut lanes = [0.0f64; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        lanes
            .iter_mut()
            .zip(chunk)
            .for_each(|(lane, &v)| *lane += f64::from(v));
    }
    lanes
        .iter_mut()
        .zip(rest)
        .for_each(|(lane, &v)| *lane += f64::from(v));
    lanes.iter().sum()
}

/// The gradient of dropout or flatten: the output gradient with the
/// input's shape.
pub(super) fn pass_through(mut d_output: Tensor, input_shape: [usize; 4]) -> Tensor {
    d_output.shape = input_shape;
    d_output
}
