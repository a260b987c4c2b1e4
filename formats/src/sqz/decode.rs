//! Rebuilding the dense [`Model`] a [`SqzFile`] stores: decode each layer's
//! streams and place its values, validating everything a corrupt or
//! hostile file could get wrong.

use super::coding::{decode_positions, decode_stream};
use super::{EncodedLayer, SqzFile, Stream, WeightStorage};
use crate::{FormatError, Layer, Model, Result};

/// Rebuild the dense model stored in `file`. Errors name the layer.
pub fn decode_model(file: &SqzFile) -> Result<Model> {
    let layers = file
        .layers
        .iter()
        .map(decode_layer)
        .collect::<Result<Vec<_>>>()?;
    Ok(Model {
        graph: file.graph.clone(),
        layers,
        preprocess: file.preprocess,
    })
}

/// Rebuild one layer's dense weights and biases, after checking the layer
/// ([`EncodedLayer::validate`], which bounds its size) so that a layer not
/// read from a file is safe to decode too.
pub fn decode_layer(layer: &EncodedLayer) -> Result<Layer> {
    layer.validate()?;
    let weights = decode_weights(layer).map_err(|e| in_layer(&layer.name, e))?;
    Ok(Layer {
        name: layer.name.clone(),
        shape: layer.shape,
        weights,
        bias: layer.bias.to_f32(),
    })
}

/// `error` with the layer named in front, keeping its kind.
fn in_layer(name: &str, error: FormatError) -> FormatError {
    match error {
        FormatError::Truncated(m) => FormatError::truncated(format!("layer {name}: {m}")),
        FormatError::Invalid(m) => FormatError::invalid(format!("layer {name}: {m}")),
        other => other,
    }
}

fn decode_weights(layer: &EncodedLayer) -> Result<Vec<f32>> {
    let len: usize = layer.shape.iter().product();
    let weights = match &layer.weights {
        WeightStorage::Dense(v) => v.to_f32(),
        WeightStorage::Sparse { positions, values } => {
            scatter(len, &decode_positions(positions, len)?, &values.to_f32())?
        }
        WeightStorage::Quantized { codebook, codes } => lookup(codes, &codebook.to_f32())?,
        WeightStorage::SparseQuantized {
            codebook,
            positions,
            codes,
        } => {
            let values = lookup(codes, &codebook.to_f32())?;
            scatter(len, &decode_positions(positions, len)?, &values)?
        }
    };
    if weights.len() != len {
        return Err(FormatError::invalid(format!(
            "{} weights decoded for shape {:?}",
            weights.len(),
            layer.shape
        )));
    }
    Ok(weights)
}

/// Decode the code stream `codes` and map each code to its codebook value.
fn lookup(codes: &Stream, codebook: &[f32]) -> Result<Vec<f32>> {
    decode_stream(codes)?
        .iter()
        .map(|&c| {
            codebook.get(c as usize).copied().ok_or_else(|| {
                FormatError::invalid(format!("code {c} outside a codebook of {}", codebook.len()))
            })
        })
        .collect()
}

/// Dense array of `len` zeros with `values` placed at `positions` (each
/// already checked to lie below `len`).
fn scatter(len: usize, positions: &[usize], values: &[f32]) -> Result<Vec<f32>> {
    if values.len() != positions.len() {
        return Err(FormatError::invalid(format!(
            "{} values for {} positions",
            values.len(),
            positions.len()
        )));
    }
    let mut dense = vec![0.0f32; len];
    for (&p, &v) in positions.iter().zip(values) {
        dense[p] = v;
    }
    Ok(dense)
}
