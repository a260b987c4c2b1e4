//! [`Model`] -> `.caffemodel` weights.

use super::proto::{BlobProto, BlobShape, LayerParameter, NetParameter};
use crate::{FormatError, Layer, Model, Result};
use prost::Message;
use std::collections::HashSet;

/// Serialize the weights of `model` as a binary `NetParameter`, as Caffe's
/// `Net::ToProto` (and Han et al.'s `decode.py`) save them: one `layer`
/// entry per learned layer, named like it, of type `Convolution`, whose
/// blobs are the weights (`[out, in, kh, kw]`) and the biases (`[out]`).
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
    let net = NetParameter {
        name: Some("sqz".to_string()),
        layer: model.layers.iter().map(layer_parameter).collect(),
        layers: vec![],
    };
    Ok(net.encode_to_vec())
}

fn layer_parameter(layer: &Layer) -> LayerParameter {
    LayerParameter {
        name: Some(layer.name.clone()),
        r#type: Some("Convolution".to_string()),
        bottom: vec![],
        top: vec![],
        blobs: vec![
            blob(&layer.shape, &layer.weights),
            blob(&[layer.shape[0]], &layer.bias),
        ],
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
