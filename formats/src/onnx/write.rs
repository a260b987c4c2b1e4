//! [`Model`] -> ONNX (IR 7, opset 13), runnable by onnxruntime with the
//! engine's semantics.

use super::attributes::{float_attribute, int_attribute, ints_attribute};
use super::metadata;
use super::proto::{
    data_type, Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto,
    TypeProto, TypeProtoTensor, ValueInfoProto,
};
use super::tensor::{float_tensor, int64_tensor};
use crate::ranks;
use crate::relu_fusion::{self, unique_name};
use crate::{Model, Node, Op, PoolKind, Result};
use prost::Message;
use std::collections::{HashMap, HashSet};

/// IR version written: IR 7 (ONNX 1.7), readable by every current runtime.
pub const IR_VERSION: i64 = 7;
/// Standard opset written.
pub const OPSET: i64 = 13;
/// Name of the symbolic batch dimension of the input.
const BATCH: &str = "N";

/// Serialize `model` as an ONNX model: float32 initializers `<layer>.weight`
/// and `<layer>.bias` (made unique against blob names), an input of shape
/// `N x 3 x crop x crop` with a symbolic batch `N` named as the source's
/// ([`crate::Graph::input`]), and one output: the logits blob
/// ([`crate::Graph::output`]), or the output of a final Softmax that reads
/// it (so a source ending in Softmax keeps its output name), of the rank
/// `crate::ranks` gives it (2, `N x C`, after a Flatten or a fully connected
/// layer, as in the source formats; else 4). The preprocessing goes into
/// `sqz.preprocess.*` metadata. Fails only on a model that does not pass
/// [`Model::validate`].
pub fn write_onnx(model: &Model) -> Result<Vec<u8>> {
    model.validate()?;
    let graph = &model.graph;
    let nodes = relu_fusion::split(&graph.nodes, &graph.input);
    let ranks = ranks::blob_ranks(model, &nodes, &graph.input);
    let gemm_layers = ranks::fully_connected_layers(model);
    let mut taken: HashSet<String> = nodes
        .iter()
        .flat_map(|n| n.outputs.iter().cloned())
        .collect();
    taken.insert(graph.input.clone());
    let mut initializer = Vec::with_capacity(2 * model.layers.len() + 1);
    let mut parameter_names = Vec::with_capacity(model.layers.len());
    for (index, layer) in model.layers.iter().enumerate() {
        let weight = unique_name(&format!("{}.weight", layer.name), &mut taken);
        let bias = unique_name(&format!("{}.bias", layer.name), &mut taken);
        let [out, inputs, _, _] = layer.shape;
        let dims: &[usize] = match gemm_layers.contains(&index) {
            true => &[out, inputs],
            false => &layer.shape,
        };
        initializer.push(float_tensor(&weight, dims, &layer.weights));
        initializer.push(float_tensor(&bias, &[out], &layer.bias));
        parameter_names.push((weight, bias));
    }
    let mut node = Vec::with_capacity(nodes.len() + 1);
    // Rank-2 blob -> its N x C x 1 x 1 reshape, made when first needed.
    let mut as_4d: HashMap<String, String> = HashMap::new();
    let mut shape_4d: Option<String> = None;
    for n in &nodes {
        let output_rank = ranks[&n.outputs[0]];
        let mut n = n.clone();
        if ranks::needs_4d_inputs(&n, output_rank) {
            for input in n.inputs.iter_mut().filter(|i| ranks[i.as_str()] == 2) {
                if !as_4d.contains_key(input.as_str()) {
                    let shape = shape_4d.get_or_insert_with(|| {
                        let name = unique_name("sqz.shape_n_c_1_1", &mut taken);
                        initializer.push(int64_tensor(&name, &[0, -1, 1, 1]));
                        name
                    });
                    let reshaped = unique_name(&format!("{input}/4d"), &mut taken);
                    node.push(NodeProto {
                        input: vec![input.clone(), shape.clone()],
                        output: vec![reshaped.clone()],
                        name: reshaped.clone(),
                        op_type: "Reshape".to_string(),
                        ..Default::default()
                    });
                    as_4d.insert(input.clone(), reshaped);
                }
                *input = as_4d[input.as_str()].clone();
            }
        }
        let mut proto = node_proto(&n, model, &parameter_names, output_rank);
        // Opset 13 takes Clip's bounds as scalar inputs.
        if let Op::Clip(c) = &n.op {
            for (suffix, value) in [("min", c.min), ("max", c.max)] {
                let name = unique_name(&format!("{}.{suffix}", n.name), &mut taken);
                initializer.push(float_tensor(&name, &[], &[value]));
                proto.input.push(name);
            }
        }
        node.push(proto);
    }
    let output = final_softmax_output(&nodes, &graph.output).unwrap_or(&graph.output);
    let output_rank = ranks[&graph.output];
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
            output,
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

/// The output of the Softmax that reads `logits`, when nothing reads that
/// output: the source's own output (sqz itself works on the logits).
fn final_softmax_output<'n>(nodes: &'n [Node], logits: &str) -> Option<&'n String> {
    let softmax = nodes
        .iter()
        .find(|n| n.op == Op::Softmax && n.inputs.iter().any(|i| i == logits))?;
    let output = softmax.outputs.first()?;
    let read = nodes.iter().any(|n| n.inputs.contains(output));
    (!read).then_some(output)
}

/// The ONNX node computing `node`, whose output has rank `output_rank`;
/// `parameters` are the initializer names of each layer.
fn node_proto(
    node: &Node,
    model: &Model,
    parameters: &[(String, String)],
    output_rank: usize,
) -> NodeProto {
    let mut input = node.inputs.clone();
    let (op_type, attribute) = match &node.op {
        Op::Conv(c) if output_rank == 2 => {
            let (weight, bias) = &parameters[c.layer];
            input.extend([weight.clone(), bias.clone()]);
            ("Gemm", vec![int_attribute("transB", 1)])
        }
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
        Op::Flatten => ("Flatten", vec![int_attribute("axis", 1)]),
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
