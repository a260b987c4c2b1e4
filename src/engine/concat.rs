//! Concatenation along the channel axis.

use rayon::prelude::*;

use super::Tensor;

/// Join `inputs` (same batch and spatial size, checked by shape inference)
/// along channels into `output`, whose shape is set.
pub(crate) fn concat(inputs: &[&Tensor], output: &mut Tensor) {
    let inputs: Vec<&[f32]> = inputs.iter().map(|input| input.data.as_slice()).collect();
    concat_images(&inputs, output.batch(), &mut output.data);
}

/// Join images: each of the `batch` images of `output` is the images of
/// `inputs` (each `batch` images of equal length) one after the other.
/// Also the concatenation of blocked tensors whose channels fill whole
/// blocks (but the last).
pub(crate) fn concat_images(inputs: &[&[f32]], batch: usize, output: &mut [f32]) {
    output
        .par_chunks_mut(output.len() / batch)
        .enumerate()
        .for_each(|(n, out)| {
            let mut offset = 0;
            for input in inputs {
                let len = input.len() / batch;
                out[offset..offset + len].copy_from_slice(&input[n * len..(n + 1) * len]);
                offset += len;
            }
        });
}
