//! Concatenation along the channel axis.

use rayon::prelude::*;

use super::Tensor;

/// Join `inputs` (same batch and spatial size, checked by shape inference)
/// along channels into `output`, whose shape is set: each output image is
/// the inputs' images one after the other.
pub(crate) fn concat(inputs: &[&Tensor], output: &mut Tensor) {
    let out_len = output.image_len();
    output
        .data
        .par_chunks_mut(out_len)
        .enumerate()
        .for_each(|(n, out)| {
            let mut offset = 0;
            for input in inputs {
                let len = input.image_len();
                out[offset..offset + len].copy_from_slice(&input.data[n * len..(n + 1) * len]);
                offset += len;
            }
        });
}
