//! Backward pass of channel concatenation: the output gradient cut back
//! into each input's channels.

use rayon::prelude::*;

use crate::engine::Tensor;

/// Split `d_output` into the gradients `d_inputs` of the inputs, in
/// order (shaped like them, any contents: every value is written).
pub(super) fn concat_backward(d_output: &Tensor, d_inputs: &mut [Tensor]) {
    let out_len = d_output.image_len();
    let mut offset = 0;
    for d_input in d_inputs {
        let len = d_input.image_len();
        d_input
            .data
            .par_chunks_mut(len)
            .zip(d_output.data.par_chunks(out_len))
            .for_each(|(d_in, d_out)| d_in.copy_from_slice(&d_out[offset..offset + len]));
        offset += len;
    }
}
