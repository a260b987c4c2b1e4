//! Softmax over the channel axis.

use rayon::prelude::*;

use super::Tensor;

/// Replace each image's values at every spatial position by the softmax of
/// its channels, in place. The maximum is subtracted first so large logits
/// cannot overflow `exp`.
pub(crate) fn softmax_in_place(tensor: &mut Tensor) {
    let [_, channels, h, w] = tensor.shape;
    let plane = h * w;
    let image_len = tensor.image_len();
    tensor.data.par_chunks_mut(image_len).for_each(|image| {
        for position in 0..plane {
            let index = |c: usize| c * plane + position;
            let max = (0..channels)
                .map(|c| image[index(c)])
                .fold(f32::NEG_INFINITY, f32::max);
            let mut total = 0.0;
            for c in 0..channels {
                let e = (image[index(c)] - max).exp();
                image[index(c)] = e;
                total += e;
            }
            for c in 0..channels {
                image[index(c)] /= total;
            }
        }
    });
}
