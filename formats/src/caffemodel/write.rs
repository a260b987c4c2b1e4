//! [`Model`] -> `.caffemodel` weights.

use super::proto::{BlobProto, BlobShape, LayerParameter, NetParameter};
use crate::{ranks, FormatError, Layer, Model, Result};
use prost::Message;
use std::collections::HashSet;

/// Serialize the weights of `model` as a binary `NetParameter`, as Caffe's
/// `Net::ToProto` (and Han et al.'s `decode.py`) save them: one `layer`
/// entry per learned layer, named like it, of type `Convolution` (blobs:
/// weights `[out, in / groups, kh, kw]`, biases `[out]`) or, for a fully
/// connected layer on an `N x K` blob, `InnerProduct` (weights `[out, K]`).
/// Biases are always written, so the definition used to read the file back
/// must keep Caffe's default `bias_term: true` ([`super::write_prototxt`]
/// does). Fails on a model that does not pass [`Model::validate`] or whose
/// layer names repeat, since Caffe matches weights by name.
pub fn write_caffemodel(model: &Model) -> Result<Vec<u8>> {
    model.validate()?;
    let mut names = HashSet::new();
    if let Some(repeated) = model.layers.iter().find(|l| !names.insert(l.name.as_str())) {
        return Err(FormatError::invalid(format!(
            "two layers are named {:?}; Caffe matches weights by layer name",
            repeated.name
        )));
    }
    let fully_connected = ranks::fully_connected_layers(model);
    let net = NetParameter {
        name: Some("sqz".to_string()),
        layer: model
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| layer_parameter(l, fully_connected.contains(&i)))
            .collect(),
        layers: vec![],
    };
    Ok(net.encode_to_vec())
}

/// The saved layer of `layer`: an `InnerProduct` with `[out, in]` weights
/// when it is `fully_connected`, else a `Convolution`.
fn layer_parameter(layer: &Layer, fully_connected: bool) -> LayerParameter {
    let [out, inputs, _, _] = layer.shape;
    let (kind, dims): (&str, &[usize]) = match fully_connected {
        true => ("InnerProduct", &[out, inputs]),
        false => ("Convolution", &layer.shape),
    };
    LayerParameter {
        name: Some(layer.name.clone()),
        r#type: Some(kind.to_string()),
        bottom: vec![],
        top: vec![],
        blobs: vec![blob(dims, &layer.weights), blob(&[out], &layer.bias)],
    }
}

fn blob(dims: &[usize], data: &[f32]) -> BlobProto {
    BlobProto {
        shape: Some(BlobShape {
            dim: dims.iter().map(|&d| d as i64).collect(),
        }),
        data: data.to_vec(),
        ..Default::default()
    }
}
