//! Convolution weights packed once for a micro-kernel.

use formats::Layer;

/// A convolution layer's weights in a micro-kernel's order: blocks of
/// `width` output channels, each block `depth x width` (depth-major, so
/// one step of the kernel reads `width` consecutive weights, one per
/// channel), the last block padded with zero channels. The NCHW kernel
/// ([`super::kernel`]) takes blocks of 8 channels, the blocked-layout one
/// ([`super::blocked`]) blocks of 16. Packing costs one pass over the
/// weights and is done once per model (see [`super::Session`]).
#[derive(Debug, Clone)]
pub(crate) struct PackedLayer {
    /// `[kh, kw]`.
    pub kernel: [usize; 2],
    /// Values per output channel: `in_c * kh * kw`.
    pub depth: usize,
    /// Output channels per block.
    pub width: usize,
    /// The blocks, `out_c.div_ceil(width) * depth * width` values.
    pub blocks: Vec<f32>,
    /// Biases, padded with zeros to a whole number of blocks.
    pub bias: Vec<f32>,
}

impl PackedLayer {
    /// Pack `layer`, whose data must fit its shape (`check_layer`), in
    /// blocks of `width` output channels.
    pub(crate) fn new(layer: &Layer, width: usize) -> Self {
        let [out_c, in_c, kh, kw] = layer.shape;
        let depth = in_c * kh * kw;
        let block_count = out_c.div_ceil(width);
        let mut blocks = vec![0.0; block_count * depth * width];
        for (channel, weights) in layer.weights.chunks_exact(depth).enumerate() {
            let block = &mut blocks[channel / width * depth * width..][..depth * width];
            for (k, &w) in weights.iter().enumerate() {
                block[k * width + channel % width] = w;
            }
        }
        let mut bias = layer.bias.clone();
        bias.resize(block_count * width, 0.0);
        PackedLayer {
            kernel: [kh, kw],
            depth,
            width,
            blocks,
            bias,
        }
    }

    /// Number of blocks.
    pub(crate) fn block_count(&self) -> usize {
        self.bias.len() / self.width
    }

    /// Weights (`depth x width`) and biases (`width`) of the block holding
    /// output channel `row` (a multiple of the width).
    pub(crate) fn block(&self, row: usize) -> (&[f32], &[f32]) {
        let (index, size) = (row / self.width, self.depth * self.width);
        let weights = &self.blocks[index * size..][..size];
        (weights, &self.bias[index * self.width..][..self.width])
    }
}
