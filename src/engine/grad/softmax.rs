//! Backward pass of the softmax over channels.

use rayon::prelude::*;

use crate::engine::Tensor;

/// Turn the output gradient `gradient` of a softmax that wrote `output`
/// into its input gradient, in place: at every position,
/// `dx_c = y_c · (dy_c − Σ_k y_k dy_k)` (the Jacobian of softmax is
/// `diag(y) − y yᵀ`). The inner sum is accumulated in f64.
pub(super) fn softmax_backward(output: &Tensor, gradient: &mut Tensor) {
    let [_, channels, h, w] = output.shape;
    let plane = h * w;
    let image_len = output.image_len();
    gradient
        .data
        .par_chunks_mut(image_len)
        .zip(output.data.par_chunks(image_len))
        .for_each(|(d, y)| {
            for position in 0..plane {
                let index = |c: usize| c * plane + position;
                let dot: f64 = (0..channels)
                    .map(|c| f64::from(y[index(c)]) * f64::from(d[index(c)]))
                    .sum();
                for c in 0..channels {
                    let i = index(c);
                    d[i] = (f64::from(y[i]) * (f64::from(d[i]) - dot)) as f32;
                }
            }
        });
}
