//! Lossless conversion of a [`Model`] into a [`SqzFile`].
//!
//! The encoder never changes a weight: lossy steps (pruning, k-means weight
//! sharing, rounding to float16) rewrite the in-memory model first, and this
//! module then stores exactly those values in the smallest of the storage
//! kinds it can use without loss. A layer with zeros may be stored sparse; a
//! layer with few distinct values gets a codebook (so Han's 8-bit layers and
//! our k-means layers are stored as code streams automatically); values that
//! are exactly representable in float16 are stored as float16.
//! [`decode_model`](super::decode_model) therefore rebuilds the model bit
//! for bit.
//!
//! Every choice — raw or Huffman per stream, the gap alphabet, the storage
//! kind per layer — is made on the bytes the file really stores
//! ([`Stream::stored_bytes`], [`EncodedLayer::stored_bytes`]).

use super::coding::{encode_positions, encode_stream};
use super::{EncodedLayer, FloatVec, SqzFile, Stream, WeightStorage, MAX_ALPHABET};
use crate::model::distinct_values;
use crate::{Layer, Model};
use half::f16;
use rayon::prelude::*;

/// Encode every layer of `model` into a `.sqz` structure, losslessly, each
/// in its smallest storage kind. Layers are encoded in parallel; the result
/// does not depend on the thread count.
pub fn encode_model(model: &Model) -> SqzFile {
    encode_layers_with(model, encode_layer)
}

/// Encode `model` with every layer stored dense (float16 where exact, else
/// float32): the plain, lossless form for exporting a decoded model.
pub fn encode_model_dense(model: &Model) -> SqzFile {
    encode_layers_with(model, |layer| EncodedLayer {
        name: layer.name.clone(),
        shape: layer.shape,
        bias: float_vec(&layer.bias),
        weights: WeightStorage::Dense(float_vec(&layer.weights)),
    })
}

fn encode_layers_with(
    model: &Model,
    encode: impl Fn(&Layer) -> EncodedLayer + Sync + Send,
) -> SqzFile {
    SqzFile {
        graph: model.graph.clone(),
        preprocess: model.preprocess,
        layers: model.layers.par_iter().map(encode).collect(),
    }
}

/// Encode one layer in the storage kind that takes the fewest bytes in the
/// file (the first candidate on ties: dense, sparse, quantized,
/// sparse+quantized).
///
/// The sparse kinds, which touch only the nonzero weights, are built
/// first; a kind that stores every weight is built only if its least
/// possible size (every value as stored, or one bit per code) could still
/// beat or tie the best so far. So a pruned layer of 100 M weights is never
/// copied whole, and the choice is the same as building every candidate.
pub fn encode_layer(layer: &Layer) -> EncodedLayer {
    let weights = &layer.weights;
    let mut best = Best::default();
    let with = |storage: WeightStorage| EncodedLayer {
        name: layer.name.clone(),
        shape: layer.shape,
        bias: float_vec(&layer.bias),
        weights: storage,
    };
    let positions: Vec<usize> = (0..weights.len()).filter(|&i| weights[i] != 0.0).collect();
    if positions.len() < weights.len() {
        let nonzero: Vec<f32> = positions.iter().map(|&i| weights[i]).collect();
        let positions = encode_positions(&positions, weights.len());
        best.offer(
            1,
            with(WeightStorage::Sparse {
                positions: positions.clone(),
                values: float_vec(&nonzero),
            }),
        );
        if let Some((codebook, codes)) = codebook_codes(&nonzero) {
            best.offer(
                3,
                with(WeightStorage::SparseQuantized {
                    codebook,
                    positions,
                    codes,
                }),
            );
        }
    }
    drop(positions);
    let value_bytes = if all_f16(weights) { 2 } else { 4 };
    if best.could_take(0, value_bytes * weights.len()) {
        best.offer(0, with(WeightStorage::Dense(float_vec(weights))));
    }
    // Codes of two or more distinct values take at least a bit each.
    let single_value = weights.iter().all(|w| w.to_bits() == weights[0].to_bits());
    let least_codes = if single_value {
        0
    } else {
        weights.len().div_ceil(8)
    };
    if best.could_take(2, least_codes) {
        if let Some((codebook, codes)) = codebook_codes(weights) {
            best.offer(2, with(WeightStorage::Quantized { codebook, codes }));
        }
    }
    best.layer
        .expect("dense storage is built when nothing else was")
}

/// The smallest candidate so far, by stored bytes and then by its order
/// among the storage kinds.
#[derive(Default)]
struct Best {
    key: Option<(usize, usize)>,
    layer: Option<EncodedLayer>,
}

impl Best {
    /// Keep `layer` (candidate number `order`) if it is smaller, or as
    /// small and earlier.
    fn offer(&mut self, order: usize, layer: EncodedLayer) {
        let key = (layer.stored_bytes(), order);
        if self.key.is_none_or(|best| key < best) {
            self.key = Some(key);
            self.layer = Some(layer);
        }
    }

    /// Whether candidate number `order`, of at least `least_bytes` stored
    /// bytes, could be kept.
    fn could_take(&self, order: usize, least_bytes: usize) -> bool {
        self.key.is_none_or(|best| (least_bytes, order) < best)
    }
}

/// The sorted distinct values of `values` and the coded index stream of
/// each value into them, when there are few enough distinct values.
fn codebook_codes(values: &[f32]) -> Option<(FloatVec, Stream)> {
    let codebook = distinct_values(values.iter().copied());
    if codebook.is_empty()
        || codebook.len() > MAX_ALPHABET as usize
        || codebook.len() == values.len()
    {
        return None;
    }
    let codes: Vec<u32> = values
        .iter()
        .map(|v| {
            codebook
                .binary_search_by(|c| c.total_cmp(v))
                .expect("every value is in its own codebook") as u32
        })
        .collect();
    let stream = encode_stream(&codes, codebook.len() as u32);
    Some((float_vec(&codebook), stream))
}

/// Store `values` as float16 when every one of them survives the round trip
/// exactly, else as float32.
fn float_vec(values: &[f32]) -> FloatVec {
    if all_f16(values) {
        FloatVec::F16(values.iter().map(|v| f16::from_f32(*v)).collect())
    } else {
        FloatVec::F32(values.to_vec())
    }
}

/// Whether every value survives a round trip through float16 exactly.
fn all_f16(values: &[f32]) -> bool {
    values
        .iter()
        .all(|v| f16::from_f32(*v).to_f32().to_bits() == v.to_bits())
}
