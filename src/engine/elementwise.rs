//! Element-wise operations: ReLU and the sum of same-shaped tensors.

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
