//! Element-wise operations: ReLU and the sum of same-shaped tensors.

use rayon::prelude::*;

use super::Tensor;

/// Values per parallel task: a fixed size, so work splitting never depends
/// on the thread count (not that it could change an element-wise result).
const CHUNK: usize = 1 << 14;

/// `x = max(x, 0)` for every value, in place.
pub(crate) fn relu_in_place(tensor: &mut Tensor) {
    tensor.data.par_chunks_mut(CHUNK).for_each(|chunk| chunk.iter_mut().for_each(|v| *v = v.max(0.0)));
}

/// Element-wise sum of `inputs`, all of one shape (checked by shape
/// inference), added left to right.
pub(crate) fn add(inputs: &[&Tensor]) -> Tensor {
    let mut sum = Tensor::clone(inputs[0]);
    for term in &inputs[1..] {
        sum.data.par_chunks_mut(CHUNK).zip(term.data.par_chunks(CHUNK)).for_each(|(acc, values)| {
            acc.iter_mut().zip(values).for_each(|(a, v)| *a += v);
        });
    }
    sum
}
