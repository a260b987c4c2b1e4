//! Convolution weights packed once for the micro-kernel.

use formats::Layer;

use super::kernel::MR;

/// A convolution layer's weights in the micro-kernel's order: blocks of
/// [`MR`] output channels, each block `depth x MR` (depth-major, so one
/// step of the kernel reads `MR` consecutive weights), the last block
/// padded with zero channels. Packing costs one pass over the weights and
/// is done once per model (see [`super::Session`]).
#[derive(Debug, Clone)]
pub(crate) struct PackedLayer {
    /// `[kh, kw]`.
    pub kernel: [usize; 2],
    /// Values per output channel: `in_c * kh * kw`.
    pub depth: usize,
    /// The blocks, `out_c.div_ceil(MR) * depth * MR` values.
    pub blocks: Vec<f32>,
    /// Biases, padded with zeros to a whole number of blocks.
    pub bias: Vec<f32>,
}

impl PackedLayer {
    /// Pack `layer`, whose data must fit its shape (`check_layer`).
    pub(crate) fn new(layer: &Layer) -> Self {
        let [out_c, in_c, kh, kw] = layer.shape;
        let depth = in_c * kh * kw;
        let block_count = out_c.div_ceil(MR);
        let mut blocks = vec![0.0; block_count * depth * MR];
        for (channel, weights) in layer.weights.chunks_exact(depth).enumerate() {
            let block = &mut blocks[channel / MR * depth * MR..][..depth * MR];
            for (k, &w) in weights.iter().enumerate() {
                block[k * MR + channel % MR] = w;
            }
        }
        let mut bias = layer.bias.clone();
        bias.resize(block_count * MR, 0.0);
        PackedLayer {
            kernel: [kh, kw],
            depth,
            blocks,
            bias,
        }
    }

    /// Weights and biases of the block holding output channel `row`
    /// (a multiple of [`MR`]).
    pub(crate) fn block(&self, row: usize) -> (&[f32], &[f32; MR]) {
        let index = row / MR;
        let weights = &self.blocks[index * self.depth * MR..][..self.depth * MR];
        let bias = self.bias[index * MR..][..MR]
            .try_into()
            .expect("MR biases per block");
        (weights, bias)
    }
}
