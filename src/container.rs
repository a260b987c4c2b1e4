//! Lossless conversion between a [`Model`] and the `.sqz` container.
//!
//! The encoder never changes a weight: lossy steps (pruning, k-means weight
//! sharing, rounding to float16) rewrite the in-memory model first, and this
//! module then stores exactly those values in the smallest of the storage
//! kinds it can use without loss. A layer with zeros may be stored sparse; a
//! layer with few distinct values gets a codebook (so Han's 8-bit layers and
//! our k-means layers are stored as code streams automatically); values that
//! are exactly representable in float16 are stored as float16. Decoding a
//! written file therefore rebuilds the model bit for bit.

use compress::coding::{decode_stream, encode_stream, Coded, Coding};
use compress::positions::{encode_positions, gaps_to_positions, positions_to_gaps};
use formats::sqz::{EncodedLayer, FloatVec, SqzFile, Stream, StreamCoding, WeightStorage};
use formats::{Layer, Model};
use half::f16;

/// Largest codebook the encoder will consider: the `.sqz` alphabet limit.
const MAX_CODEBOOK: usize = 1 << 16;

/// Why a `.sqz` file's streams could not be turned back into weights.
#[derive(Debug, thiserror::Error)]
#[error("layer {layer}: {message}")]
pub struct DecodeError {
    /// Name of the layer whose data is inconsistent.
    pub layer: String,
    /// What is wrong with it.
    pub message: String,
}

/// Encode every layer of `model` into a `.sqz` structure, losslessly, each
/// in its smallest storage kind.
pub fn encode_model(model: &Model) -> SqzFile {
    encode_layers_with(model, encode_layer)
}

/// Encode `model` with every layer stored dense (float16 where exact, else
/// float32): the plain, lossless form `decode` writes.
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
    use rayon::prelude::*;
    SqzFile {
        graph: model.graph.clone(),
        preprocess: model.preprocess,
        layers: model.layers.par_iter().map(encode).collect(),
    }
}

/// Rebuild the dense model stored in `file`.
pub fn decode_model(file: &SqzFile) -> Result<Model, DecodeError> {
    let layers = file
        .layers
        .iter()
        .map(decode_layer)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Model {
        graph: file.graph.clone(),
        layers,
        preprocess: file.preprocess,
    })
}

/// Encode one layer in the smallest lossless storage kind.
pub fn encode_layer(layer: &Layer) -> EncodedLayer {
    let candidates = storage_candidates(&layer.weights);
    let weights = candidates
        .into_iter()
        .min_by_key(storage_bytes)
        .expect("dense storage is always a candidate");
    EncodedLayer {
        name: layer.name.clone(),
        shape: layer.shape,
        bias: float_vec(&layer.bias),
        weights,
    }
}

/// Every lossless way to store `weights` that is worth comparing.
fn storage_candidates(weights: &[f32]) -> Vec<WeightStorage> {
    let mut out = vec![WeightStorage::Dense(float_vec(weights))];
    let positions: Vec<usize> = (0..weights.len()).filter(|&i| weights[i] != 0.0).collect();
    let sparse = positions.len() < weights.len();
    let nonzero: Vec<f32> = positions.iter().map(|&i| weights[i]).collect();
    let position_stream = sparse.then(|| {
        let (alphabet, coded) = encode_positions(&positions, weights.len());
        let count = positions_to_gaps(&positions, alphabet).len() as u64;
        stream(count, alphabet, coded)
    });
    if let Some(positions_stream) = &position_stream {
        out.push(WeightStorage::Sparse {
            positions: positions_stream.clone(),
            values: float_vec(&nonzero),
        });
    }
    if let Some((codebook, codes)) = codebook_codes(weights) {
        out.push(WeightStorage::Quantized {
            codebook: float_vec(&codebook),
            codes,
        });
    }
    if let Some(positions) = position_stream {
        if let Some((codebook, codes)) = codebook_codes(&nonzero) {
            out.push(WeightStorage::SparseQuantized {
                codebook: float_vec(&codebook),
                positions,
                codes,
            });
        }
    }
    out
}

/// The sorted distinct values of `values` and the coded index stream of
/// each value into them, when there are few enough distinct values.
fn codebook_codes(values: &[f32]) -> Option<(Vec<f32>, Stream)> {
    let mut codebook: Vec<f32> = values.to_vec();
    codebook.sort_by(f32::total_cmp);
    codebook.dedup_by(|a, b| a.to_bits() == b.to_bits());
    if codebook.is_empty() || codebook.len() > MAX_CODEBOOK || codebook.len() == values.len() {
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
    let alphabet = codebook.len() as u32;
    let coded = encode_stream(&codes, alphabet);
    Some((codebook, stream(codes.len() as u64, alphabet, coded)))
}

fn stream(count: u64, alphabet: u32, coded: Coded) -> Stream {
    let coding = match coded.coding {
        Coding::Raw { bits } => StreamCoding::Raw { bits },
        Coding::Huffman { code_lengths } => StreamCoding::Huffman { code_lengths },
    };
    Stream {
        count,
        alphabet,
        coding,
        payload: coded.payload,
    }
}

/// Store `values` as float16 when every one of them survives the round trip
/// exactly, else as float32.
fn float_vec(values: &[f32]) -> FloatVec {
    let exact_f16 = values
        .iter()
        .all(|v| f16::from_f32(*v).to_f32().to_bits() == v.to_bits());
    if exact_f16 {
        FloatVec::F16(values.iter().map(|v| f16::from_f32(*v)).collect())
    } else {
        FloatVec::F32(values.to_vec())
    }
}

/// Bytes the storage's data takes in the file, used to pick the smallest
/// kind: streams exactly as written, plus the float arrays.
pub fn storage_bytes(storage: &WeightStorage) -> usize {
    match storage {
        WeightStorage::Dense(v) => v.stored_bytes(),
        WeightStorage::Sparse { positions, values } => {
            stream_bytes(positions) + values.stored_bytes()
        }
        WeightStorage::Quantized { codebook, codes } => {
            codebook.stored_bytes() + stream_bytes(codes)
        }
        WeightStorage::SparseQuantized {
            codebook,
            positions,
            codes,
        } => codebook.stored_bytes() + stream_bytes(positions) + stream_bytes(codes),
    }
}

/// Bytes one stream takes in the file: header, code-length table, payload.
fn stream_bytes(s: &Stream) -> usize {
    s.stored_bytes().total()
}

/// Rebuild one layer's dense weights and biases.
pub fn decode_layer(layer: &EncodedLayer) -> Result<Layer, DecodeError> {
    let weights = decode_weights(layer).map_err(|message| DecodeError {
        layer: layer.name.clone(),
        message,
    })?;
    Ok(Layer {
        name: layer.name.clone(),
        shape: layer.shape,
        weights,
        bias: layer.bias.to_f32(),
    })
}

fn decode_weights(layer: &EncodedLayer) -> Result<Vec<f32>, String> {
    let len: usize = layer.shape.iter().product();
    let weights = match &layer.weights {
        WeightStorage::Dense(v) => v.to_f32(),
        WeightStorage::Sparse { positions, values } => {
            scatter(len, &decode_positions(positions, len)?, &values.to_f32())?
        }
        WeightStorage::Quantized { codebook, codes } => {
            lookup(&decode_symbols(codes)?, &codebook.to_f32())?
        }
        WeightStorage::SparseQuantized {
            codebook,
            positions,
            codes,
        } => {
            let values = lookup(&decode_symbols(codes)?, &codebook.to_f32())?;
            scatter(len, &decode_positions(positions, len)?, &values)?
        }
    };
    if weights.len() != len {
        return Err(format!(
            "{} weights decoded for shape {:?}",
            weights.len(),
            layer.shape
        ));
    }
    Ok(weights)
}

fn decode_symbols(s: &Stream) -> Result<Vec<u32>, String> {
    let count = usize::try_from(s.count)
        .map_err(|_| format!("stream of {} symbols is too long", s.count))?;
    decode_stream(&to_coding(&s.coding), &s.payload, count, s.alphabet).map_err(|e| e.to_string())
}

fn decode_positions(s: &Stream, len: usize) -> Result<Vec<usize>, String> {
    gaps_to_positions(&decode_symbols(s)?, s.alphabet, len).map_err(|e| e.to_string())
}

fn to_coding(c: &StreamCoding) -> Coding {
    match c {
        StreamCoding::Raw { bits } => Coding::Raw { bits: *bits },
        StreamCoding::Huffman { code_lengths } => Coding::Huffman {
            code_lengths: code_lengths.clone(),
        },
    }
}

/// Map code indices to codebook values.
fn lookup(codes: &[u32], codebook: &[f32]) -> Result<Vec<f32>, String> {
    codes
        .iter()
        .map(|&c| {
            codebook
                .get(c as usize)
                .copied()
                .ok_or_else(|| format!("code {c} outside a codebook of {}", codebook.len()))
        })
        .collect()
}

/// Dense array of `len` zeros with `values` placed at `positions`.
fn scatter(len: usize, positions: &[usize], values: &[f32]) -> Result<Vec<f32>, String> {
    if values.len() != positions.len() {
        return Err(format!(
            "{} values for {} positions",
            values.len(),
            positions.len()
        ));
    }
    let mut dense = vec![0.0f32; len];
    for (&p, &v) in positions.iter().zip(values) {
        *dense
            .get_mut(p)
            .ok_or_else(|| format!("position {p} outside {len} weights"))? = v;
    }
    Ok(dense)
}
