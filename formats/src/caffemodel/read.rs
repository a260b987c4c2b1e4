//! `.caffemodel` weights + prototxt definition -> [`Model`].

use super::proto::{BlobProto, NetParameter};
use crate::caffe_net::{self, LayerKind, LayerShape};
use crate::deep_compression::prototxt_beside;
use crate::fold;
use crate::{relu_fusion, FormatError, Model, Result};
use prost::Message;
use std::collections::HashMap;
use std::path::Path;

/// Read a `.caffemodel` with its network definition: `prototxt` when given,
/// otherwise the only `*.prototxt` in the `.caffemodel`'s folder.
pub fn read_caffemodel_path(path: &Path, prototxt: Option<&Path>) -> Result<Model> {
    let prototxt_path = match prototxt {
        Some(p) => p.to_path_buf(),
        None => prototxt_beside(path)?,
    };
    let bytes = std::fs::read(path).map_err(|e| FormatError::io(path, e))?;
    let text =
        std::fs::read_to_string(&prototxt_path).map_err(|e| FormatError::io(&prototxt_path, e))?;
    read_caffemodel(&bytes, &text)
}

/// Build a [`Model`] from the bytes of a binary `NetParameter` and the
/// prototxt text defining the network. Each convolution of the definition
/// takes the blobs of the saved layer with the same name, from `layer` or
/// legacy `layers` entries: its weights, then its biases unless the
/// definition says `bias_term: false` (a fully connected layer's weights
/// are `[out, in]`; a `BatchNorm` has mean, variance and moving-average
/// factor, a `Scale` factors and, with `bias_term`, offsets). Blob sizes
/// (and 4-D convolution weight shapes) must match the definition. A ReLU layer named `<conv>/fused_relu` that
/// [`super::write_prototxt`] made is folded back into its convolution.
pub fn read_caffemodel(model_bytes: &[u8], prototxt_text: &str) -> Result<Model> {
    let definition = caffe_net::parse_net_text(prototxt_text)?;
    let net = NetParameter::decode(model_bytes)
        .map_err(|e| FormatError::invalid(format!("not a readable .caffemodel: {e}")))?;
    let mut saved = blobs_by_layer(net)?;
    let params = definition
        .layers
        .iter()
        .map(|shape| layer_params(shape, &mut saved))
        .collect::<Result<Vec<_>>>()?;
    let mut model = definition.into_model(params)?;
    model.graph.nodes =
        relu_fusion::merge(std::mem::take(&mut model.graph.nodes), &model.graph.output);
    Ok(model)
}

/// The blobs of every saved layer that has some, by layer name. Layers
/// without blobs may share names (train and test data layers often do);
/// layers with blobs may not, or the weights would be ambiguous.
fn blobs_by_layer(net: NetParameter) -> Result<HashMap<String, Vec<BlobProto>>> {
    let modern = net.layer.into_iter().map(|l| (l.name, l.blobs));
    let legacy = net.layers.into_iter().map(|l| (l.name, l.blobs));
    let mut saved = HashMap::new();
    for (name, blobs) in modern.chain(legacy).filter(|(_, blobs)| !blobs.is_empty()) {
        let name = name.unwrap_or_default();
        if saved.contains_key(&name) {
            return Err(FormatError::invalid(format!(
                ".caffemodel has two layers named {name:?} with weights"
            )));
        }
        saved.insert(name, blobs);
    }
    Ok(saved)
}

/// The `(weights, biases)` of the learned layer `shape`, taken out of
/// `saved`; for `BatchNorm` and `Scale` layers, the per-channel scale and
/// shift of their affine map.
fn layer_params(
    shape: &LayerShape,
    saved: &mut HashMap<String, Vec<BlobProto>>,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let name = &shape.name;
    let blobs = saved.remove(name).ok_or_else(|| {
        FormatError::invalid(format!(".caffemodel has no weights for layer {name}"))
    })?;
    let out = shape.shape[0];
    let (expected, meaning) = match shape.kind {
        LayerKind::BatchNorm { .. } => (3, "mean, variance and scale factor"),
        _ if shape.bias_term => (2, "weights and biases"),
        LayerKind::Scale => (1, "factors, bias_term: false"),
        _ => (1, "weights, bias_term: false"),
    };
    if blobs.len() != expected {
        return Err(FormatError::invalid(format!(
            "layer {name}: {} blobs in the .caffemodel, the prototxt needs {expected} ({meaning})",
            blobs.len(),
        )));
    }
    let mut blobs = blobs.into_iter();
    let mut next = |what: &str, count: usize, dims: Option<[usize; 4]>| match blobs.next() {
        Some(blob) => blob_values(blob, count, dims)
            .map_err(|m| FormatError::invalid(format!("layer {name}: {what} blob {m}"))),
        // Only the bias blob can be missing: bias_term is false.
        None => Ok(vec![0.0; out]),
    };
    match shape.kind {
        LayerKind::Convolution => {
            let weights = next("weight", shape.weight_count(), Some(shape.shape))?;
            Ok((weights, next("bias", out, None)?))
        }
        LayerKind::InnerProduct => {
            let weights = next("weight", shape.weight_count(), None)?;
            Ok((weights, next("bias", out, None)?))
        }
        LayerKind::Scale => {
            let factors = next("factor", out, None)?;
            Ok((factors, next("bias", out, None)?))
        }
        LayerKind::BatchNorm { eps } => {
            let mean = next("mean", out, None)?;
            let variance = next("variance", out, None)?;
            let [factor] = next("scale factor", 1, None)?[..] else {
                unreachable!("blob_values checked the count");
            };
            // As Caffe: statistics are sums divided by the factor, 0 for 0.
            let unscale = if factor == 0.0 { 0.0 } else { 1.0 / factor };
            let mean: Vec<f32> = mean.iter().map(|m| m * unscale).collect();
            let variance: Vec<f32> = variance.iter().map(|v| v * unscale).collect();
            let (ones, zeros) = (vec![1.0; out], vec![0.0; out]);
            fold::batch_norm_affine(&ones, &zeros, &mean, &variance, eps)
                .map_err(|e| FormatError::invalid(format!("layer {name}: {e}")))
        }
    }
}

/// The values of `blob`, which must hold `count` of them; when `dims` is
/// given and the blob has four dimensions they must equal it. Errors are
/// the message tail for the caller to prefix.
fn blob_values(
    blob: BlobProto,
    count: usize,
    dims: Option<[usize; 4]>,
) -> std::result::Result<Vec<f32>, String> {
    if blob.data.is_empty() && !blob.double_data.is_empty() {
        return Err("holds double-precision data (only float)".to_string());
    }
    // As Caffe does: `shape` if present, else the legacy 4-D fields if any.
    let legacy = [blob.num, blob.channels, blob.height, blob.width];
    let stored: Option<Vec<i64>> = match &blob.shape {
        Some(shape) => Some(shape.dim.clone()),
        None if legacy.iter().any(Option::is_some) => {
            Some(legacy.iter().map(|d| d.unwrap_or(0)).collect())
        }
        None => None,
    };
    if let Some(stored) = &stored {
        let product = stored.iter().try_fold(1usize, |acc, &d| {
            usize::try_from(d).ok().and_then(|d| acc.checked_mul(d))
        });
        if product != Some(blob.data.len()) {
            return Err(format!(
                "has shape {stored:?} but {} values",
                blob.data.len()
            ));
        }
        if let Some(expected) = dims.filter(|_| stored.len() == 4) {
            if stored.iter().zip(expected).any(|(&s, e)| s != e as i64) {
                return Err(format!(
                    "has shape {stored:?}, the prototxt says {expected:?}"
                ));
            }
        }
    }
    if blob.data.len() != count {
        return Err(format!(
            "has {} values, the prototxt needs {count}",
            blob.data.len()
        ));
    }
    Ok(blob.data)
}
