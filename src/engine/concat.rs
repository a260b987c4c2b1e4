//! Concatenation along the channel axis.

use rayon::prelude::*;

use super::{EngineError, Tensor};

/// Join `inputs` (same batch and spatial size, checked by shape inference)
/// along channels into `out_shape`: each output image is the inputs' images
/// one after the other.
pub(crate) fn concat(inputs: &[&Tensor], out_shape: [usize; 4]) -> Result<Tensor, EngineError> {
    let mut output = Tensor::zeros(out_shape)?;
    let out_len = output.image_len();
    output.data.par_chunks_mut(out_len).enumerate().for_each(|(n, out)| {
        let mut offset = 0;
        for input in inputs {
            let len = input.image_len();
            out[offset..offset + len].copy_from_slice(&input.data[n * len..(n + 1) * len]);
            offset += len;
        }
    });
    Ok(output)
}
