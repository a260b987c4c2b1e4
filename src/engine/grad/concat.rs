//! Backward pass of channel concatenation: the output gradient cut back
//! into each input's channels.

use rayon::prelude::*;

use crate::engine::Tensor;

/// Split `d_output` into one gradient per input of `input_shapes` (same
/// batch and spatial size, channels adding up to the output's), in order.
pub(super) fn concat_backward(d_output: &Tensor, input_shapes: &[[usize; 4]]) -> Vec<Tensor> {
    let out_len = d_output.image_len();
    let mut offset = 0;
    input_shapes
        .iter()
        .map(|&shape| {
            let mut d_input = Tensor {
                shape,
                data: vec![0.0; shape.iter().product()],
            };
            let len = d_input.image_len();
            d_input
                .data
                .par_chunks_mut(len)
                .zip(d_output.data.par_chunks(out_len))
                .for_each(|(d_in, d_out)| d_in.copy_from_slice(&d_out[offset..offset + len]));
            offset += len;
            d_input
        })
        .collect()
}
