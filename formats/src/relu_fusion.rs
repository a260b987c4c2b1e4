//! Writing a convolution with a fused ReLU ([`Conv::relu`]) to formats that
//! have no such flag (ONNX, Caffe), and recognising it again on reading.
//!
//! [`split`] turns each fused convolution `C` writing blob `B` into a plain
//! convolution `C` writing `B/pre_relu` and a ReLU node named
//! `C/fused_relu` writing `B`. [`merge`] undoes exactly that: a ReLU named
//! `<conv>/fused_relu` whose input only that convolution writes and only
//! the ReLU reads is folded back into the convolution. Fusing is
//! numerically neutral, so a file that happens to use the name merely
//! loads with one node fewer.

use crate::blob_use::BlobUse;
use crate::{Conv, Node, Op};
use std::collections::{HashMap, HashSet};

/// Suffix of the ReLU node that [`split`] creates for convolution `C`.
pub(crate) const FUSED_RELU_SUFFIX: &str = "/fused_relu";

/// Suffix of the intermediate blob between the convolution and its ReLU.
const PRE_RELU_SUFFIX: &str = "/pre_relu";

/// `nodes` with every fused ReLU made a separate node (see the module
/// documentation). Intermediate blob names are made unique among all blobs.
pub(crate) fn split(nodes: &[Node], input: &str) -> Vec<Node> {
    let mut taken: HashSet<String> = nodes
        .iter()
        .flat_map(|n| n.outputs.iter().cloned())
        .collect();
    taken.insert(input.to_string());
    let mut out = Vec::with_capacity(nodes.len());
    for node in nodes {
        let (Op::Conv(conv), [output]) = (&node.op, node.outputs.as_slice()) else {
            out.push(node.clone());
            continue;
        };
        if !conv.relu {
            out.push(node.clone());
            continue;
        }
        let pre_relu = unique_name(&format!("{output}{PRE_RELU_SUFFIX}"), &mut taken);
        out.push(Node {
            name: node.name.clone(),
            op: Op::Conv(Conv {
                relu: false,
                ..*conv
            }),
            inputs: node.inputs.clone(),
            outputs: vec![pre_relu.clone()],
        });
        out.push(Node {
            name: format!("{}{FUSED_RELU_SUFFIX}", node.name),
            op: Op::Relu,
            inputs: vec![pre_relu],
            outputs: vec![output.clone()],
        });
    }
    out
}

/// `nodes` with the ReLUs that [`split`] made folded back into their
/// convolutions. `output` (the graph's output blob) is never folded away.
pub(crate) fn merge(nodes: Vec<Node>, output: &str) -> Vec<Node> {
    let blobs = BlobUse::of(&nodes);
    // relu index -> conv index
    let mut folds: HashMap<usize, usize> = HashMap::new();
    for (r, relu) in nodes.iter().enumerate() {
        let (Op::Relu, [input]) = (&relu.op, relu.inputs.as_slice()) else {
            continue;
        };
        let Some(c) = blobs.private_producer(input, output) else {
            continue;
        };
        let conv = &nodes[c];
        let plain_conv = matches!(conv.op, Op::Conv(Conv { relu: false, .. }));
        let marked = relu.name.strip_suffix(FUSED_RELU_SUFFIX) == Some(conv.name.as_str());
        if plain_conv && marked {
            folds.insert(r, c);
        }
    }
    let fused_outputs: HashMap<usize, Vec<String>> = folds
        .iter()
        .map(|(&r, &c)| (c, nodes[r].outputs.clone()))
        .collect();
    let mut out = Vec::with_capacity(nodes.len() - folds.len());
    for (i, mut node) in nodes.into_iter().enumerate() {
        if folds.contains_key(&i) {
            continue;
        }
        if let (Some(outputs), Op::Conv(conv)) = (fused_outputs.get(&i), &mut node.op) {
            conv.relu = true;
            node.outputs = outputs.clone();
        }
        out.push(node);
    }
    out
}

/// `base`, or `base#2`, `base#3`, ... : the first not in `taken`, which it
/// is then added to.
pub(crate) fn unique_name(base: &str, taken: &mut HashSet<String>) -> String {
    let mut name = base.to_string();
    let mut suffix = 2;
    while taken.contains(&name) {
        name = format!("{base}#{suffix}");
        suffix += 1;
    }
    taken.insert(name.clone());
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, op: Op, inputs: &[&str], outputs: &[&str]) -> Node {
        Node {
            name: name.into(),
            op,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn conv(relu: bool) -> Op {
        Op::Conv(Conv {
            layer: 0,
            stride_h: 1,
            stride_w: 1,
            pad_h: 0,
            pad_w: 0,
            groups: 1,
            relu,
        })
    }

    #[test]
    fn split_then_merge_is_the_identity() {
        let nodes = vec![
            node("c", conv(true), &["x"], &["a"]),
            node("d", conv(false), &["a"], &["b"]),
            node("r", Op::Relu, &["b"], &["b/r"]),
            node("e", conv(true), &["b/r"], &["a/pre_relu"]),
        ];
        let split_nodes = split(&nodes, "x");
        assert_eq!(split_nodes.len(), 6);
        assert_eq!(
            split_nodes[0],
            node("c", conv(false), &["x"], &["a/pre_relu#2"]),
            "the obvious name is taken"
        );
        assert_eq!(
            split_nodes[1],
            node("c/fused_relu", Op::Relu, &["a/pre_relu#2"], &["a"])
        );
        assert_eq!(split_nodes[5].inputs, ["a/pre_relu/pre_relu"]);
        assert_eq!(merge(split_nodes, "a/pre_relu"), nodes);
    }

    #[test]
    fn only_marked_private_relus_are_merged() {
        let shared = vec![
            node("c", conv(false), &["x"], &["a"]),
            node("c/fused_relu", Op::Relu, &["a"], &["b"]),
            node("s", Op::Add, &["a", "b"], &["y"]),
        ];
        assert_eq!(
            merge(shared.clone(), "y"),
            shared,
            "the conv output has another reader"
        );
        let unmarked = vec![
            node("c", conv(false), &["x"], &["a"]),
            node("relu", Op::Relu, &["a"], &["b"]),
        ];
        assert_eq!(merge(unmarked.clone(), "b"), unmarked);
        let marked = vec![
            node("c", conv(false), &["x"], &["a"]),
            node("c/fused_relu", Op::Relu, &["a"], &["b"]),
        ];
        assert_eq!(merge(marked.clone(), "a"), marked, "the output blob stays");
        assert_eq!(merge(marked, "b"), [node("c", conv(true), &["x"], &["b"])]);
    }
}
