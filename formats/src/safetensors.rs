//! Hand-off of a model's weights to PyTorch and back, as safetensors
//! (layout: `formats/SAFETENSORS.md`).
//!
//! [`write_safetensors`] stores, for every layer, its dense weights, bias
//! and mask, and for a layer with at most [`MAX_SHARED_VALUES`] distinct
//! nonzero weights (a weight-shared layer) also its codes and shared values,
//! so a training job can fine-tune the shared values with mask and codes
//! fixed. The file holds no graph: [`read_safetensors`] takes the weights
//! from it and the graph, layer names and shapes from a model read
//! elsewhere, and refuses every mismatch.

use std::borrow::Cow;
use std::collections::HashSet;

use safetensors::tensor::{Dtype, SafeTensors, TensorView, View};

use crate::{FormatError, Layer, Model, Result};

/// Version of the tensor layout, stored in the metadata; files of a newer
/// version are refused.
pub const FORMAT_VERSION: u32 = 1;

/// Most distinct nonzero weights a layer may have to be written with codes
/// and shared values (8-bit codes, the widest Deep Compression uses).
pub const MAX_SHARED_VALUES: usize = 256;

/// The one `__metadata__` key sqz writes; its value is a JSON object.
/// (One key, because the safetensors crate writes several in hash order
/// and sqz's outputs must be byte-identical from run to run.)
pub const METADATA_KEY: &str = "sqz";

/// A tensor to write: little-endian bytes with their dtype and shape.
struct Tensor {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Tensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

impl Tensor {
    fn f32(shape: &[usize], values: &[f32]) -> Tensor {
        Tensor {
            dtype: Dtype::F32,
            shape: shape.to_vec(),
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    fn u8(shape: &[usize], values: Vec<u8>) -> Tensor {
        Tensor {
            dtype: Dtype::U8,
            shape: shape.to_vec(),
            data: values,
        }
    }
}

/// Serialize `model`'s weights (see the module documentation and
/// `SAFETENSORS.md`). The same model always gives the same bytes.
pub fn write_safetensors(model: &Model) -> Result<Vec<u8>> {
    model.validate()?;
    let mut tensors: Vec<(String, Tensor)> = Vec::with_capacity(5 * model.layers.len());
    for layer in &model.layers {
        let name = &layer.name;
        let shape = layer.shape;
        tensors.push((
            format!("{name}.weight"),
            Tensor::f32(&shape, &layer.weights),
        ));
        tensors.push((
            format!("{name}.bias"),
            Tensor::f32(&[shape[0]], &layer.bias),
        ));
        let mask = layer.weights.iter().map(|w| u8::from(*w != 0.0)).collect();
        tensors.push((format!("{name}.mask"), Tensor::u8(&shape, mask)));
        let shared = layer.distinct_nonzero_weights();
        if !shared.is_empty() && shared.len() <= MAX_SHARED_VALUES {
            let codes = layer
                .weights
                .iter()
                .map(|w| match shared.binary_search_by(|s| s.total_cmp(w)) {
                    Ok(index) if *w != 0.0 => index as u8,
                    _ => 0,
                })
                .collect();
            tensors.push((format!("{name}.codes"), Tensor::u8(&shape, codes)));
            let values = Tensor::f32(&[shared.len()], &shared);
            tensors.push((format!("{name}.shared_values"), values));
        }
    }
    let metadata = serde_json::json!({
        "format_version": FORMAT_VERSION,
        "producer": format!("sqz {}", env!("CARGO_PKG_VERSION")),
        "layers": model.layers.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
    });
    let info = std::collections::HashMap::from([(METADATA_KEY.to_string(), metadata.to_string())]);
    safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(info))
        .map_err(|e| FormatError::invalid(format!("cannot write safetensors: {e}")))
}

/// Read the safetensors file at `path` onto `graph`'s layers; see
/// [`read_safetensors`]. The file's size is checked before it is read.
pub fn read_safetensors_path(path: &std::path::Path, graph: Model) -> Result<Model> {
    let bytes = crate::read::read_bounded(path)?;
    read_safetensors(&bytes, graph)
}

/// The model with `graph`'s graph, layer names, shapes and preprocessing
/// and the weights in `bytes`. A layer's weights are rebuilt from mask,
/// codes and shared values when the file has codes (and must then agree
/// with its `weight` tensor, if present, to 1e-5 relative), else taken
/// from `weight` (which must be zero wherever a `mask` present is 0).
/// Tensors of no layer of the graph, missing or misshapen tensors, wrong
/// dtypes, codes out of range and files of a newer layout are refused.
pub fn read_safetensors(bytes: &[u8], graph: Model) -> Result<Model> {
    check_header_length(bytes)?;
    let file = SafeTensors::deserialize(bytes)
        .map_err(|e| FormatError::invalid(format!("not a readable safetensors file: {e}")))?;
    let (_, metadata) = SafeTensors::read_metadata(bytes)
        .map_err(|e| FormatError::invalid(format!("not a readable safetensors file: {e}")))?;
    if let Some(stored) = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get(METADATA_KEY))
    {
        check_metadata(stored)?;
    }
    let expected: HashSet<String> = graph
        .layers
        .iter()
        .flat_map(|l| SUFFIXES.iter().map(move |s| format!("{}.{s}", l.name)))
        .collect();
    let mut names = file.names();
    names.sort_unstable();
    if let Some(stray) = names.iter().find(|n| !expected.contains(**n)) {
        return Err(FormatError::invalid(format!(
            "tensor {stray} belongs to no layer of the graph (is --graph the model these weights came from?)"
        )));
    }
    let layers = graph
        .layers
        .iter()
        .map(|layer| read_layer(&file, layer))
        .collect::<Result<Vec<_>>>()?;
    let model = Model { layers, ..graph };
    model.validate()?;
    Ok(model)
}

/// The tensor names of a layer, after `<layer>.`.
const SUFFIXES: [&str; 5] = ["weight", "bias", "mask", "codes", "shared_values"];

/// Refuse a header longer than the bytes present before anything is
/// allocated for it (the length is a u64 anyone can set).
fn check_header_length(bytes: &[u8]) -> Result<()> {
    let head: [u8; 8] = bytes
        .get(..8)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| {
            FormatError::truncated("safetensors file shorter than its 8-byte header length")
        })?;
    let header = u64::from_le_bytes(head);
    if header > (bytes.len() - 8) as u64 {
        return Err(FormatError::truncated(format!(
            "safetensors header of {header} bytes, but the file has only {} after the length",
            bytes.len() - 8
        )));
    }
    Ok(())
}

/// Refuse metadata of a newer layout than [`FORMAT_VERSION`].
fn check_metadata(stored: &str) -> Result<()> {
    let value: serde_json::Value = serde_json::from_str(stored)
        .map_err(|e| FormatError::invalid(format!("metadata {METADATA_KEY} is not JSON: {e}")))?;
    match value
        .get("format_version")
        .and_then(serde_json::Value::as_u64)
    {
        Some(v) if v > u64::from(FORMAT_VERSION) => Err(FormatError::unsupported(format!(
            "safetensors layout version {v} (sqz reads up to {FORMAT_VERSION})"
        ))),
        _ => Ok(()),
    }
}

/// The weights and bias of `layer` (the graph's) from `file`.
fn read_layer(file: &SafeTensors, layer: &Layer) -> Result<Layer> {
    let name = &layer.name;
    let tensor = |suffix: &str| file.tensor(&format!("{name}.{suffix}")).ok();
    let shape = layer.shape.as_slice();
    let bias_tensor = tensor("bias")
        .ok_or_else(|| FormatError::invalid(format!("missing tensor {name}.bias")))?;
    let bias = floats(&bias_tensor, name, "bias", Some(&[layer.shape[0]]))?;
    let weight = tensor("weight")
        .map(|t| floats(&t, name, "weight", Some(shape)))
        .transpose()?;
    let mask = tensor("mask").map(|t| mask(&t, name, shape)).transpose()?;
    let codes = tensor("codes")
        .map(|t| codes(&t, name, shape))
        .transpose()?;
    let shared = tensor("shared_values")
        .map(|t| floats(&t, name, "shared_values", None))
        .transpose()?;
    let weights = match (codes, shared, mask, weight) {
        (Some(codes), Some(shared), Some(mask), weight) => {
            let rebuilt = rebuild(name, &mask, &codes, &shared)?;
            if let Some(weight) = weight {
                check_agree(name, &weight, &rebuilt)?;
            }
            rebuilt
        }
        (None, None, mask, Some(weight)) => {
            if let Some(mask) = mask {
                let stray = weight
                    .iter()
                    .zip(&mask)
                    .filter(|(w, m)| **m == 0 && **w != 0.0);
                let count = stray.count();
                if count > 0 {
                    return Err(FormatError::invalid(format!(
                        "layer {name}: {count} nonzero weights where the mask is 0"
                    )));
                }
            }
            weight
        }
        (None, None, _, None) => {
            return Err(FormatError::invalid(format!(
                "missing tensor {name}.weight (or {name}.mask, .codes and .shared_values)"
            )))
        }
        _ => {
            return Err(FormatError::invalid(format!(
                "layer {name}: .codes, .shared_values and .mask come together (one is missing)"
            )))
        }
    };
    Ok(Layer {
        name: name.clone(),
        shape: layer.shape,
        weights,
        bias,
    })
}

/// `weight = where(mask, shared_values[codes], 0)`; codes at kept
/// positions must index `shared`.
fn rebuild(name: &str, mask: &[u8], codes: &[u32], shared: &[f32]) -> Result<Vec<f32>> {
    mask.iter()
        .zip(codes)
        .map(|(&m, &c)| match (m, shared.get(c as usize)) {
            (0, _) => Ok(0.0),
            (_, Some(&v)) => Ok(v),
            (_, None) => Err(FormatError::invalid(format!(
                "layer {name}: code {c} but only {} shared values",
                shared.len()
            ))),
        })
        .collect()
}

/// Refuse a `weight` tensor that differs from the weights rebuilt from
/// codes by more than float rounding (1e-5 relative).
fn check_agree(name: &str, weight: &[f32], rebuilt: &[f32]) -> Result<()> {
    let bad = weight
        .iter()
        .zip(rebuilt)
        .position(|(&w, &r)| w != r && (w - r).abs() > 1e-5 * r.abs());
    match bad {
        None => Ok(()),
        Some(i) => Err(FormatError::invalid(format!(
            "layer {name}: weight[{i}] = {} but mask, codes and shared values give {}",
            weight[i], rebuilt[i]
        ))),
    }
}

/// Check `view`'s dtype is one of `dtypes` and its shape is `shape`.
fn check(
    view: &TensorView,
    name: &str,
    suffix: &str,
    dtypes: &[Dtype],
    shape: Option<&[usize]>,
) -> Result<()> {
    if !dtypes.contains(&view.dtype()) {
        return Err(FormatError::invalid(format!(
            "tensor {name}.{suffix} is {:?}, expected one of {dtypes:?}",
            view.dtype()
        )));
    }
    match shape {
        Some(shape) if view.shape() != shape => Err(FormatError::invalid(format!(
            "tensor {name}.{suffix} has shape {:?}, the graph's layer needs {shape:?}",
            view.shape()
        ))),
        None if view.shape().len() != 1 => Err(FormatError::invalid(format!(
            "tensor {name}.{suffix} has shape {:?}, expected one dimension",
            view.shape()
        ))),
        _ => Ok(()),
    }
}

/// An F32 tensor's values.
fn floats(
    view: &TensorView,
    name: &str,
    suffix: &str,
    shape: Option<&[usize]>,
) -> Result<Vec<f32>> {
    check(view, name, suffix, &[Dtype::F32], shape)?;
    Ok(view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// A U8 or BOOL mask of 0s and 1s.
fn mask(view: &TensorView, name: &str, shape: &[usize]) -> Result<Vec<u8>> {
    check(view, name, "mask", &[Dtype::U8, Dtype::BOOL], Some(shape))?;
    let data = view.data();
    if let Some(bad) = data.iter().find(|&&m| m > 1) {
        return Err(FormatError::invalid(format!(
            "tensor {name}.mask holds {bad}; a mask is 0 or 1"
        )));
    }
    Ok(data.to_vec())
}

/// U8, U16 or I32 codes as indices (a negative code becomes out of range).
fn codes(view: &TensorView, name: &str, shape: &[usize]) -> Result<Vec<u32>> {
    check(
        view,
        name,
        "codes",
        &[Dtype::U8, Dtype::U16, Dtype::I32],
        Some(shape),
    )?;
    let data = view.data();
    Ok(match view.dtype() {
        Dtype::U8 => data.iter().map(|&c| u32::from(c)).collect(),
        Dtype::U16 => data
            .chunks_exact(2)
            .map(|b| u32::from(u16::from_le_bytes([b[0], b[1]])))
            .collect(),
        _ => data
            .chunks_exact(4)
            .map(|b| {
                u32::try_from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])).unwrap_or(u32::MAX)
            })
            .collect(),
    })
}
