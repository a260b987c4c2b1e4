//! A layer section (`SQZ.md`, "Layer section"): name reference, shape, a
//! flags byte (storage kind and float widths), bias, then the storage's
//! float values and streams.

use super::breakdown::LayerBytes;
use super::container;
use super::strings::StringTable;
use super::wire::{put_floats, put_varint, Reader};
use super::{stream, EncodedLayer, FloatVec, WeightStorage, MAX_WEIGHTS_PER_LAYER};
use crate::Result;

/// Flags bit 2: the bias is float16.
const BIAS_F16: u8 = 0b0100;
/// Flags bit 3: the dense weights, sparse values or codebook are float16.
const VALUES_F16: u8 = 0b1000;
/// Flags bits 0-1: the storage kind.
const KIND_MASK: u8 = 0b0011;

/// Storage kind code of the flags byte.
fn kind_code(weights: &WeightStorage) -> u8 {
    match weights {
        WeightStorage::Dense(_) => 0,
        WeightStorage::Sparse { .. } => 1,
        WeightStorage::Quantized { .. } => 2,
        WeightStorage::SparseQuantized { .. } => 3,
    }
}

/// The float values every storage kind carries.
fn values(weights: &WeightStorage) -> &FloatVec {
    match weights {
        WeightStorage::Dense(v) | WeightStorage::Sparse { values: v, .. } => v,
        WeightStorage::Quantized { codebook, .. }
        | WeightStorage::SparseQuantized { codebook, .. } => codebook,
    }
}

fn is_f16(v: &FloatVec) -> bool {
    matches!(v, FloatVec::F16(_))
}

impl EncodedLayer {
    /// Bytes this layer takes in a `.sqz` file: its section body and its
    /// directory entry, with the name reference counted at its smallest
    /// (one byte; the real index depends on the other names of the file
    /// but is the same whichever way the weights are stored). This is the
    /// cost the encoder minimises when it picks a layer's storage kind.
    pub fn stored_bytes(&self) -> usize {
        let (body, _) = encode(self, 0);
        body.len() + container::entry_len(&body)
    }
}

/// Encode `layer`'s section body, its name given as a string table index.
pub(crate) fn encode(layer: &EncodedLayer, name: u64) -> (Vec<u8>, LayerBytes) {
    let mut out = Vec::new();
    put_varint(&mut out, name);
    layer
        .shape
        .iter()
        .for_each(|&d| put_varint(&mut out, d as u64));
    let values = values(&layer.weights);
    let mut flags = kind_code(&layer.weights);
    if is_f16(&layer.bias) {
        flags |= BIAS_F16;
    }
    if is_f16(values) {
        flags |= VALUES_F16;
    }
    out.push(flags);
    let mut bytes = LayerBytes {
        name: layer.name.clone(),
        header: out.len(),
        ..LayerBytes::default()
    };
    let mark = out.len();
    put_floats(&mut out, &layer.bias);
    bytes.bias = out.len() - mark;
    let mark = out.len();
    put_floats(&mut out, values);
    bytes.values = out.len() - mark;
    match &layer.weights {
        WeightStorage::Dense(_) => {}
        WeightStorage::Sparse { positions, .. } => {
            bytes.positions = stream::encode(positions, &mut out)
        }
        WeightStorage::Quantized { codes, .. } => bytes.codes = stream::encode(codes, &mut out),
        WeightStorage::SparseQuantized {
            positions, codes, ..
        } => {
            bytes.positions = stream::encode(positions, &mut out);
            bytes.codes = stream::encode(codes, &mut out);
        }
    }
    (out, bytes)
}

/// Decode the body of layer section `index`.
pub(crate) fn decode(body: &[u8], strings: &StringTable, index: usize) -> Result<EncodedLayer> {
    let mut r = Reader::new(body, format!("layer {index}"));
    let name_index = r.varint("layer name")?;
    let name = strings.get(&r, name_index, "layer name")?.to_string();
    r.set_context(format!("layer {index} ({name})"));
    let mut shape = [0usize; 4];
    for d in &mut shape {
        *d = r.bounded("shape dimension", MAX_WEIGHTS_PER_LAYER as u64)?;
    }
    let flags = r.u8("flags")?;
    if flags & !(KIND_MASK | BIAS_F16 | VALUES_F16) != 0 {
        return Err(r.invalid(format!("unknown flag bits in {flags:#04x}")));
    }
    let bias = r.floats(flags & BIAS_F16 != 0, "bias")?;
    let values = r.floats(flags & VALUES_F16 != 0, "weight values")?;
    let weights = match flags & KIND_MASK {
        0 => WeightStorage::Dense(values),
        1 => WeightStorage::Sparse {
            positions: stream::decode(&mut r, "positions")?,
            values,
        },
        2 => WeightStorage::Quantized {
            codebook: values,
            codes: stream::decode(&mut r, "codes")?,
        },
        _ => WeightStorage::SparseQuantized {
            codebook: values,
            positions: stream::decode(&mut r, "positions")?,
            codes: stream::decode(&mut r, "codes")?,
        },
    };
    r.finish()?;
    Ok(EncodedLayer {
        name,
        shape,
        bias,
        weights,
    })
}
