//! Per-layer statistics of a compressed model and the model's size after
//! each Deep Compression stage.
//!
//! The compressed model only records the end result, so the intermediate
//! sizes are recomputed from its weights with simple fixed-width layouts
//! (all floats 32-bit, every code and gap in a fixed number of bits):
//!
//! - **original**: every weight and bias dense, 4 bytes each.
//! - **pruned**: biases 4 bytes each; a layer with zeros stores its nonzero
//!   weights as 4-byte values plus their positions as fixed-width gap
//!   symbols (the narrowest total over [`GAP_ALPHABETS`], skips included,
//!   as the `.sqz` position streams use), unless dense is smaller.
//! - **quantized**: as pruned, but when the stored values have few distinct
//!   values they become a 4-byte-per-entry codebook plus one fixed-width
//!   index of `ceil(log2(k))` bits per stored value (only if smaller).
//! - **Huffman**: the real `.sqz` file: streams Huffman-coded where that is
//!   smaller, floats stored as float16 where exact, plus the graph, names
//!   and headers.
//!
//! Byte counts of bit-packed parts are rounded up to whole bytes per layer.

use formats::sqz::coding::{positions_to_gaps, raw_bits, GAP_ALPHABETS};
use formats::sqz::{LayerBytes, SizeBreakdown};
use formats::Layer;

/// Largest codebook the quantized stage considers (the `.sqz` alphabet limit).
const MAX_CODEBOOK: usize = 1 << 16;

/// What one layer of the compressed model stores, and what it costs at each
/// stage.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerStats {
    /// Layer name.
    pub name: String,
    /// Dense weight count.
    pub weights: usize,
    /// Nonzero weights.
    pub nonzeros: usize,
    /// Distinct stored values when the quantized stage uses a codebook.
    pub codebook: Option<usize>,
    /// Bits per stored weight at the quantized stage: the codebook index
    /// width, or 32 without a codebook.
    pub index_bits: u32,
    /// Bytes of the layer's weights in the `.sqz` file: values or
    /// codebook, positions and codes (no biases, no header).
    pub file_weight_bytes: usize,
    /// Bytes at each stage, see the module documentation.
    pub bytes: StageBytes,
}

impl LayerStats {
    /// Fraction of weights that are nonzero.
    pub fn density(&self) -> f64 {
        ratio(self.nonzeros, self.weights)
    }

    /// Bits per dense weight in the `.sqz` file: [`Self::file_weight_bytes`]
    /// spread over all the layer's weights, pruned ones included.
    pub fn file_bits_per_weight(&self) -> f64 {
        8.0 * ratio(self.file_weight_bytes, self.weights)
    }
}

/// Bytes after each stage, for one layer or the whole model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageBytes {
    /// Dense float32 weights and biases.
    pub original: usize,
    /// Sparse float32 values plus fixed-width positions.
    pub pruned: usize,
    /// Codebook plus fixed-width indices (and positions).
    pub quantized: usize,
    /// The real `.sqz` bytes.
    pub huffman: usize,
}

/// Statistics of one layer of the compressed model, whose `.sqz` bytes are
/// `file` (from [`formats::sqz::size_breakdown`]).
pub fn layer_stats(layer: &Layer, file: &LayerBytes) -> LayerStats {
    let n = layer.weights.len();
    let bias_bytes = 4 * layer.bias.len();
    let positions: Vec<usize> = (0..n).filter(|&i| layer.weights[i] != 0.0).collect();
    let sparse_cost = (positions.len() < n).then(|| position_bytes(&positions));
    // Stored sparse, only the nonzero values are stored; dense, the zero
    // among them too.
    let (stored, stored_zero, position_bytes) = match sparse_cost {
        Some(p) if 4 * positions.len() + p < 4 * n => (positions.len(), false, p),
        _ => (n, positions.len() < n, 0),
    };
    let plain = 4 * stored;
    let distinct = layer.distinct_nonzero_weights().len() + usize::from(stored_zero);
    let codebook = codebook_size(distinct, stored).filter(|&k| codebook_bytes(k, stored) < plain);
    let (index_bits, values_bytes) = match codebook {
        Some(k) => (u32::from(raw_bits(k as u32)), codebook_bytes(k, stored)),
        None => (32, plain),
    };
    LayerStats {
        name: layer.name.clone(),
        weights: n,
        nonzeros: positions.len(),
        codebook,
        index_bits,
        file_weight_bytes: file.values + file.positions.total() + file.codes.total(),
        bytes: StageBytes {
            original: 4 * n + bias_bytes,
            pruned: bias_bytes + position_bytes + plain,
            quantized: bias_bytes + position_bytes + values_bytes,
            huffman: file.total(),
        },
    }
}

/// Per-layer statistics of `layers`, with their `.sqz` bytes from `breakdown`
/// (matched by position, as the file stores the layers in model order).
pub fn model_stats(layers: &[Layer], breakdown: &SizeBreakdown) -> Vec<LayerStats> {
    layers
        .iter()
        .zip(&breakdown.layers)
        .map(|(layer, bytes)| layer_stats(layer, bytes))
        .collect()
}

/// Whole-model bytes per stage: the layers' sums for the first three
/// stages, and the whole file (graph and headers included) for Huffman.
pub fn model_stage_bytes(stats: &[LayerStats], file_bytes: usize) -> StageBytes {
    let sum = |f: fn(&StageBytes) -> usize| stats.iter().map(|s| f(&s.bytes)).sum();
    StageBytes {
        original: sum(|b| b.original),
        pruned: sum(|b| b.pruned),
        quantized: sum(|b| b.quantized),
        huffman: file_bytes,
    }
}

/// Bytes of the positions as fixed-width gap symbols, with the gap
/// alphabet that makes them smallest.
fn position_bytes(positions: &[usize]) -> usize {
    GAP_ALPHABETS
        .iter()
        .map(|&alphabet| {
            let symbols = positions_to_gaps(positions, alphabet).len();
            bits_to_bytes(symbols * usize::from(raw_bits(alphabet)))
        })
        .min()
        .unwrap_or(0)
}

/// `distinct` stored values need a codebook of that size, when one could
/// hold them (at most [`MAX_CODEBOOK`] and fewer than the `count` values
/// themselves).
fn codebook_size(distinct: usize, count: usize) -> Option<usize> {
    (distinct > 0 && distinct <= MAX_CODEBOOK && distinct < count).then_some(distinct)
}

/// Bytes of a float32 codebook of `k` entries plus `count` fixed-width indices.
fn codebook_bytes(k: usize, count: usize) -> usize {
    4 * k + bits_to_bytes(count * usize::from(raw_bits(k as u32)))
}

fn bits_to_bytes(bits: usize) -> usize {
    bits.div_ceil(8)
}

/// `part / whole`, 0 for an empty whole.
fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use formats::sqz::StreamBytes;

    fn layer(weights: Vec<f32>, bias: Vec<f32>) -> Layer {
        let shape = [bias.len(), 1, 1, weights.len() / bias.len()];
        Layer {
            name: "l".into(),
            shape,
            weights,
            bias,
        }
    }

    fn file_bytes(values: usize, codes: usize) -> LayerBytes {
        LayerBytes {
            name: "l".into(),
            header: 10,
            bias: 3,
            values,
            positions: StreamBytes::default(),
            codes: StreamBytes {
                header: 2,
                payload: codes,
            },
        }
    }

    #[test]
    fn sparse_shared_layer_costs_match_a_hand_count() {
        // Nonzeros at positions 2, 6, 7. With 2-bit gap symbols (skip
        // symbol 3): gap 2 -> [2]; gap 3 -> [3, 0]; gap 0 -> [0]: 4 symbols,
        // 8 bits = 1 byte; wider alphabets need at least 3 symbols of 3+
        // bits = 2 bytes. Two distinct stored values: 1-bit indices.
        let l = layer(
            vec![0.0, 0.0, 0.5, 0.0, 0.0, 0.0, -0.5, 0.5],
            vec![1.0, 2.0],
        );
        let stats = layer_stats(&l, &file_bytes(4, 1));
        assert_eq!(stats.nonzeros, 3);
        assert_eq!(stats.codebook, Some(2));
        assert_eq!(stats.index_bits, 1);
        assert_eq!(stats.file_weight_bytes, 4 + 3);
        assert_eq!(
            stats.bytes,
            StageBytes {
                original: 4 * 8 + 4 * 2,
                pruned: 4 * 2 + 1 + 4 * 3,
                quantized: 4 * 2 + 1 + (4 * 2 + 1),
                huffman: 10 + 3 + 4 + 3,
            }
        );
        assert!((stats.density() - 3.0 / 8.0).abs() < 1e-12);
        assert!((stats.file_bits_per_weight() - 8.0 * 7.0 / 8.0).abs() < 1e-12);
    }

    #[test]
    fn dense_distinct_layer_stays_dense_at_every_stage() {
        let l = layer(vec![0.1, 0.2, 0.3, 0.4], vec![0.0]);
        let stats = layer_stats(&l, &file_bytes(16, 0));
        assert_eq!(stats.codebook, None);
        assert_eq!(stats.index_bits, 32);
        assert_eq!(stats.bytes.original, 20);
        assert_eq!(stats.bytes.pruned, 20);
        assert_eq!(stats.bytes.quantized, 20);
    }

    #[test]
    fn model_totals_sum_layers_and_take_the_file_size_last() {
        let a = layer_stats(
            &layer(vec![0.0, 1.0, 1.0, 0.0], vec![0.0]),
            &file_bytes(2, 1),
        );
        let b = layer_stats(&layer(vec![0.1, 0.2], vec![0.0, 0.0]), &file_bytes(8, 0));
        let total = model_stage_bytes(&[a.clone(), b.clone()], 999);
        assert_eq!(total.original, a.bytes.original + b.bytes.original);
        assert_eq!(total.pruned, a.bytes.pruned + b.bytes.pruned);
        assert_eq!(total.quantized, a.bytes.quantized + b.bytes.quantized);
        assert_eq!(total.huffman, 999);
    }
}
