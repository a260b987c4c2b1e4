//! [`Model`] -> ONNX (IR 7, opset 13), runnable by onnxruntime with the
//! engine's semantics.

use super::attributes::{float_attribute, int_attribute, ints_attribute};
use super::metadata;
use super::proto::{
    data_type, Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto,
    TypeProto, TypeProtoTensor, ValueInfoProto,
};
use super::tensor::{float_tensor, int64_tensor};
use crate::relu_fusion::{self, unique_name};
use crate::{Model, Node, Op, PoolKind, Result};
use prost::Message;
use std::collections::HashSet;

/// IR version written: IR 7 (ONNX 1.7), readable by every current runtime.
pub const IR_VERSION: i64 = 7;
/// Standard opset written.
pub const OPSET: i64 = 13;
/// Name of the symbolic batch dimension of the input.
const BATCH: &str = "N";

/// Serialize `model` as an ONNX model: float32 initializers `<layer>.weight`
/// and `<layer>.bias` (made unique against blob names), an input of shape
/// `N x 3 x crop x crop` with a symbolic batch `N` named as the source's
/// ([`crate::Graph::input`]), the logits blob ([`crate::Graph::output`]) as
/// the only output, of rank 2 (`N x C`) when a Flatten produces it, as in
/// the source formats, else 4, and the preprocessing in
/// `sqz.preprocess.*` metadata. Fails only on a model that does not pass
/// [`Model::validate`].
pub fn write_onnx(model: &Model) -> Result<Vec<u8>> {
    model.validate()?;
    let graph = &model.graph;
    let nodes = relu_fusion::split(&graph.nodes, &graph.input);
    let mut taken: HashSet<String> = nodes
        .iter()
        .flat_map(|n| n.outputs.iter().cloned())
        .collect();
    taken.insert(graph.input.clone());
    let mut initializer = Vec::with_capacity(2 * model.layers.len() + 1);
    let mut parameter_names = Vec::with_capacity(model.layers.len());
    for layer in &model.layers {
        let weight = unique_name(&format!("{}.weight", layer.name), &mut taken);
        let bias = unique_name(&format!("{}.bias", layer.name), &mut taken);
        initializer.push(float_tensor(&weight, &layer.shape, &layer.weights));
        initializer.push(float_tensor(&bias, &[layer.shape[0]], &layer.bias));
        parameter_names.push((weight, bias));
    }
    // Shape tensors of the Flattens: [0, -1] (N x C, what the source's
    // flatten gave) for the one producing the output, [0, -1, 1, 1] (the
    // engine's 4-D layout, which convolutions after it need) for others.
    let output_rank = if produces_output_by_flatten(&nodes, &graph.output) {
        2
    } else {
        4
    };
    let mut shape_tensor = |name: &str, dims: &[i64], used: bool| {
        used.then(|| {
            let name = unique_name(name, &mut taken);
            initializer.push(int64_tensor(&name, dims));
            name
        })
    };
    let inner_flatten = nodes
        .iter()
        .any(|n| n.op == Op::Flatten && n.outputs[0] != graph.output);
    let flatten_shapes = FlattenShapes {
        inner: shape_tensor("sqz.flatten_shape", &[0, -1, 1, 1], inner_flatten),
        output: shape_tensor("sqz.flatten_shape_2d", &[0, -1], output_rank == 2),
        output_blob: &graph.output,
    };
    let node = nodes
        .iter()
        .map(|n| {
            let mut proto = node_proto(n, model, &parameter_names, &flatten_shapes);
            // Opset 13 takes Clip's bounds as scalar inputs.
            if let Op::Clip(c) = &n.op {
                for (suffix, value) in [("min", c.min), ("max", c.max)] {
                    let name = unique_name(&format!("{}.{suffix}", n.name), &mut taken);
                    initializer.push(float_tensor(&name, &[], &[value]));
                    proto.input.push(name);
                }
            }
            proto
        })
        .collect();
    let crop = model.preprocess.crop as usize;
    let graph_proto = GraphProto {
        node,
        name: "sqz".to_string(),
        initializer,
        input: vec![value_info(
            &graph.input,
            &[
                Dim::Batch,
                Dim::Fixed(3),
                Dim::Fixed(crop),
                Dim::Fixed(crop),
            ],
        )],
        output: vec![value_info(
            &graph.output,
            &[Dim::Batch, Dim::Unknown, Dim::Unknown, Dim::Unknown][..output_rank],
        )],
        ..Default::default()
    };
    let proto = ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "sqz".to_string(),
        producer_version: env!("CARGO_PKG_VERSION").to_string(),
        graph: Some(graph_proto),
        metadata_props: metadata::to_metadata(&model.preprocess),
        ..Default::default()
    };
    Ok(proto.encode_to_vec())
}

/// Whether the blob `output` is written by a Flatten: in every source
/// format (ONNX `Flatten`, Caffe and ncnn `Flatten`) that output is N x C,
/// so the export gives it rank 2 as the source did.
fn produces_output_by_flatten(nodes: &[Node], output: &str) -> bool {
    nodes
        .iter()
        .any(|n| n.op == Op::Flatten && n.outputs.iter().any(|o| o == output))
}

/// The initializers holding the target shapes of the exported Flattens.
struct FlattenShapes<'a> {
    /// `[0, -1, 1, 1]`, for Flattens inside the network.
    inner: Option<String>,
    /// `[0, -1]`, for the Flatten producing the output.
    output: Option<String>,
    /// The graph's output blob.
    output_blob: &'a str,
}

/// The ONNX node computing `node`; `parameters` are the initializer names
/// of each layer.
fn node_proto(
    node: &Node,
    model: &Model,
    parameters: &[(String, String)],
    flatten_shapes: &FlattenShapes,
) -> NodeProto {
    let mut input = node.inputs.clone();
    let (op_type, attribute) = match &node.op {
        Op::Conv(c) => {
            let (weight, bias) = &parameters[c.layer];
            input.extend([weight.clone(), bias.clone()]);
            let [_, _, kh, kw] = model.layers[c.layer].shape;
            let attributes = vec![
                ints_attribute("kernel_shape", &[kh, kw]),
                ints_attribute("strides", &[c.stride_h, c.stride_w]),
                ints_attribute("pads", &[c.pad_h, c.pad_w, c.pad_h, c.pad_w]),
                ints_attribute("dilations", &[1, 1]),
                int_attribute("group", c.groups as i64),
            ];
            ("Conv", attributes)
        }
        Op::Relu => ("Relu", vec![]),
        Op::Pool(p) => {
            let mut attributes = vec![
                ints_attribute("kernel_shape", &[p.kernel_h, p.kernel_w]),
                ints_attribute("strides", &[p.stride_h, p.stride_w]),
                ints_attribute("pads", &[p.pad_h, p.pad_w, p.pad_h, p.pad_w]),
                int_attribute("ceil_mode", i64::from(p.ceil_mode)),
            ];
            match p.kind {
                PoolKind::Max => ("MaxPool", attributes),
                PoolKind::Avg => {
                    let count_include_pad = i64::from(p.count_include_pad);
                    attributes.push(int_attribute("count_include_pad", count_include_pad));
                    ("AveragePool", attributes)
                }
            }
        }
        Op::GlobalAvgPool => ("GlobalAveragePool", vec![]),
        Op::Concat => ("Concat", vec![int_attribute("axis", 1)]),
        Op::Dropout => ("Dropout", vec![]),
        Op::Add if node.inputs.len() == 2 => ("Add", vec![]),
        Op::Add => ("Sum", vec![]),
        Op::Softmax => ("Softmax", vec![int_attribute("axis", 1)]),
        Op::Lrn(l) => (
            "LRN",
            vec![
                int_attribute("size", l.size as i64),
                float_attribute("alpha", l.alpha),
                float_attribute("beta", l.beta),
                float_attribute("bias", l.bias),
            ],
        ),
        Op::Clip(_) => ("Clip", vec![]),
        Op::Flatten => {
            let shape = if node.outputs.iter().any(|o| o == flatten_shapes.output_blob) {
                &flatten_shapes.output
            } else {
                &flatten_shapes.inner
            };
            input.extend(shape.clone());
            ("Reshape", vec![])
        }
    };
    NodeProto {
        input,
        output: node.outputs.clone(),
        name: node.name.clone(),
        op_type: op_type.to_string(),
        attribute,
        ..Default::default()
    }
}

/// One dimension of a declared tensor shape.
#[derive(Clone, Copy)]
enum Dim {
    /// The symbolic batch size.
    Batch,
    Fixed(usize),
    /// Not stated (the engine's tensors are always 4-D, but their sizes
    /// depend on the input).
    Unknown,
}

/// A float tensor value called `name` with shape `dims`.
fn value_info(name: &str, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| match d {
            Dim::Batch => Dimension {
                dim_value: None,
                dim_param: Some(BATCH.to_string()),
            },
            Dim::Fixed(v) => Dimension {
                dim_value: Some(*v as i64),
                dim_param: None,
            },
            Dim::Unknown => Dimension {
                dim_value: None,
                dim_param: None,
            },
        })
        .collect();
    let shape = Some(TensorShapeProto { dim });
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: data_type::FLOAT,
                shape,
            }),
        }),
    }
}
