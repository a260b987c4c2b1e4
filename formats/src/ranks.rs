//! The rank each blob has in an ONNX or Caffe export, so that an export
//! looks like the files sqz reads: the engine keeps every tensor 4-D, but
//! in ONNX, Caffe and ncnn a Flatten gives `N x C` and a fully connected
//! layer (`Gemm`, `InnerProduct`) maps `N x K` to `N x C`.
//!
//! Rules, over the nodes in order: the graph input has rank 4; a Flatten
//! gives rank 2; a [`fully_connected`] convolution on a rank-2 input keeps
//! rank 2 (it is written as `Gemm` or `InnerProduct`); ReLU, Clip, Dropout and Softmax keep
//! their input's rank, Add and Concat keep rank 2 when all their inputs
//! have it; everything else gives rank 4. A rank-2 blob that an operation
//! needs 4-D is reshaped to `N x C x 1 x 1` by the writer.

use crate::{Conv, Model, Node, Op};
use std::collections::{HashMap, HashSet};

/// Whether `conv` is a fully connected layer of `model` when its input is
/// `N x K`: a 1x1 kernel, stride 1, no padding, one group (a fused ReLU
/// aside, [`Conv::unit`]), and a layer no other node of `nodes` uses (its
/// weights are then written 2-D).
fn fully_connected(conv: &Conv, model: &Model, nodes: &[Node]) -> bool {
    let [_, _, kh, kw] = model.layers[conv.layer].shape;
    let uses = nodes
        .iter()
        .filter(|n| matches!(&n.op, Op::Conv(c) if c.layer == conv.layer))
        .count();
    let unit = Conv {
        relu: conv.relu,
        ..Conv::unit(conv.layer, 1)
    };
    (kh, kw) == (1, 1) && *conv == unit && uses == 1
}

/// The rank (2 or 4) of every blob of `nodes` and of `input`, by the
/// rules of the module documentation.
pub(crate) fn blob_ranks(model: &Model, nodes: &[Node], input: &str) -> HashMap<String, usize> {
    let mut ranks = HashMap::from([(input.to_string(), 4)]);
    for node in nodes {
        let input_ranks: Vec<usize> = node
            .inputs
            .iter()
            .map(|i| ranks.get(i).copied().unwrap_or(4))
            .collect();
        let all_flat = input_ranks.iter().all(|&r| r == 2);
        let rank = match &node.op {
            Op::Flatten => 2,
            Op::Conv(c) if all_flat && fully_connected(c, model, nodes) => 2,
            Op::Relu | Op::Clip(_) | Op::Dropout | Op::Softmax | Op::Add | Op::Concat
                if all_flat =>
            {
                2
            }
            _ => 4,
        };
        for output in &node.outputs {
            ranks.insert(output.clone(), rank);
        }
    }
    ranks
}

/// Whether `node`, whose output has rank `output_rank`, needs its inputs
/// 4-D in the export: an operation that does not keep rank 2
/// ([`blob_ranks`]), except Flatten, which takes any rank.
pub(crate) fn needs_4d_inputs(node: &Node, output_rank: usize) -> bool {
    output_rank == 4 && node.op != Op::Flatten
}

/// The layers of `model` that its writers store as fully connected
/// (`Gemm`, `InnerProduct`): those of convolutions with a rank-2 output.
pub(crate) fn fully_connected_layers(model: &Model) -> HashSet<usize> {
    let nodes = &model.graph.nodes;
    let ranks = blob_ranks(model, nodes, &model.graph.input);
    nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::Conv(c) if ranks[&n.outputs[0]] == 2 => Some(c.layer),
            _ => None,
        })
        .collect()
}
