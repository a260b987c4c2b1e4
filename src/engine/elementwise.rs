//! Element-wise operations: ReLU, Clip (ReLU6 is `Clip { 0, 6 }`), the
//! activation a kernel applies as it stores its outputs, and the sum of
//! same-shaped tensors.

use formats::Clip;
use rayon::prelude::*;

use super::Tensor;

/// Values per parallel task.
const CHUNK: usize = 1 << 14;

/// `x = max(x, 0)` for every value, in place.
pub(crate) fn relu_in_place(tensor: &mut Tensor) {
    relu_values(&mut tensor.data);
}

/// `x = max(x, 0)` for every value of a tensor in any layout.
pub(crate) fn relu_values(values: &mut [f32]) {
    values
        .par_chunks_mut(CHUNK)
        .for_each(|chunk| chunk.iter_mut().for_each(|v| *v = v.max(0.0)));
}

/// `x = min(max(x, min), max)` for every value, in place (a NaN becomes
/// `min`, as ReLU turns it into 0).
pub(crate) fn clip_in_place(values: &mut [f32], clip: Clip) {
    values
        .par_chunks_mut(CHUNK)
        .for_each(|chunk| clamp_values(chunk, clip));
}

/// [`clip_in_place`] on one slice, sequentially.
#[inline(always)]
fn clamp_values(values: &mut [f32], clip: Clip) {
    values
        .iter_mut()
        .for_each(|v| *v = v.max(clip.min).min(clip.max));
}

/// What a convolution kernel applies to its outputs as it stores them: its
/// own fused ReLU, then a Clip node folded into it. Every value is the same
/// as running the ReLU and Clip nodes afterwards.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Activation {
    pub relu: bool,
    pub clip: Option<Clip>,
}

impl Activation {
    /// Apply the activation to freshly computed outputs (inlined, so that
    /// kernels compiled for wider vectors apply it with them).
    #[inline(always)]
    pub(crate) fn apply(self, values: &mut [f32]) {
        if self.relu {
            values.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        if let Some(clip) = self.clip {
            clamp_values(values, clip);
        }
    }
}

/// Element-wise sum of `inputs` into `output`, all of one shape (checked by
/// shape inference), added left to right.
pub(crate) fn add(inputs: &[&Tensor], output: &mut Tensor) {
    output.data.copy_from_slice(&inputs[0].data);
    for term in &inputs[1..] {
        output
            .data
            .par_chunks_mut(CHUNK)
            .zip(term.data.par_chunks(CHUNK))
            .for_each(|(acc, values)| {
                acc.iter_mut().zip(values).for_each(|(a, v)| *a += v);
            });
    }
}
