//! [`Model`] -> Caffe deploy prototxt, so a written `.caffemodel` can be
//! read back without the network's original definition.

use crate::{ranks, relu_fusion};
use crate::{FormatError, Graph, Model, Node, Op, PoolKind, Result};
use std::collections::HashSet;
use std::fmt::Write;

/// A deploy prototxt for `model` that [`super::read_caffemodel`] (through
/// [`crate::caffe_net`]) reads back into the same graph.
///
/// Limits, all from Caffe's format or sqz's prototxt reader:
/// - a convolution's Caffe layer takes its [`crate::Layer`]'s name, since
///   weights are matched by name; every layer name must then be unique;
/// - a ReLU fused into a convolution becomes a ReLU layer named
///   `<conv>/fused_relu` writing to the convolution's output blob, the
///   convolution writing `<blob>/pre_relu` (folded back on reading);
/// - the preprocessing is not stored: reading gives Caffe's preset
///   ([`crate::Preprocess::caffe`]) with the crop of the input shape;
/// - a fully connected layer (a 1x1 convolution on the `N x K` output of a
///   Flatten, see `crate::ranks`) is an `InnerProduct`;
/// - average pooling that leaves padding out of its divisor is refused:
///   Caffe's counts it;
/// - the output must be the graph's only final blob, or the input of a
///   final Softmax, since a prototxt cannot name its output.
pub fn write_prototxt(model: &Model) -> Result<String> {
    model.validate()?;
    let graph = &model.graph;
    let renamed: Vec<Node> = graph
        .nodes
        .iter()
        .map(|n| match &n.op {
            Op::Conv(c) => Node {
                name: model.layers[c.layer].name.clone(),
                ..n.clone()
            },
            _ => n.clone(),
        })
        .collect();
    let nodes = relu_fusion::split(&renamed, &graph.input);
    let mut names = HashSet::new();
    if let Some(repeated) = nodes.iter().find(|n| !names.insert(n.name.as_str())) {
        return Err(FormatError::invalid(format!(
            "two Caffe layers would be named {:?}",
            repeated.name
        )));
    }
    if Graph::logits_blob(&nodes)? != graph.output {
        return Err(FormatError::unsupported(format!(
            "output {} is not the graph's only final blob, and a prototxt cannot name its output",
            graph.output
        )));
    }
    let crop = model.preprocess.crop;
    let mut text = format!(
        "name: \"sqz\"\ninput: {}\ninput_shape {{ dim: 1 dim: 3 dim: {crop} dim: {crop} }}\n",
        quote(&graph.input)
    );
    let fully_connected = ranks::fully_connected_layers(model);
    for node in &nodes {
        let (kind, params) = layer_text(node, model, &fully_connected)?;
        let _ = write!(
            text,
            "layer {{\n  name: {}\n  type: \"{kind}\"\n",
            quote(&node.name)
        );
        for bottom in &node.inputs {
            let _ = writeln!(text, "  bottom: {}", quote(bottom));
        }
        for top in &node.outputs {
            let _ = writeln!(text, "  top: {}", quote(top));
        }
        if !params.is_empty() {
            let _ = writeln!(text, "  {params}");
        }
        text.push_str("}\n");
    }
    Ok(text)
}

/// The Caffe layer type of `node` and its parameter message, if any;
/// convolutions of `fully_connected` layers are InnerProduct layers.
fn layer_text(
    node: &Node,
    model: &Model,
    fully_connected: &HashSet<usize>,
) -> Result<(&'static str, String)> {
    Ok(match &node.op {
        Op::Conv(c) if fully_connected.contains(&c.layer) => {
            let out = model.layers[c.layer].shape[0];
            let params = format!("inner_product_param {{ num_output: {out} }}");
            ("InnerProduct", params)
        }
        Op::Conv(c) => {
            let [out, _, kh, kw] = model.layers[c.layer].shape;
            let params = format!(
                "convolution_param {{ num_output: {out} kernel_h: {kh} kernel_w: {kw} stride_h: {} stride_w: {} pad_h: {} pad_w: {} group: {} }}",
                c.stride_h, c.stride_w, c.pad_h, c.pad_w, c.groups
            );
            ("Convolution", params)
        }
        Op::Pool(p) => {
            if p.kind == PoolKind::Avg && (p.pad_h, p.pad_w) != (0, 0) && !p.count_include_pad {
                return Err(FormatError::unsupported(format!(
                    "node {}: average pooling that leaves the padding out of the divisor (Caffe counts it)",
                    node.name
                )));
            }
            let method = if p.kind == PoolKind::Max {
                "MAX"
            } else {
                "AVE"
            };
            let round = if p.ceil_mode {
                ""
            } else {
                " round_mode: FLOOR"
            };
            let params = format!(
                "pooling_param {{ pool: {method} kernel_h: {} kernel_w: {} stride_h: {} stride_w: {} pad_h: {} pad_w: {}{round} }}",
                p.kernel_h, p.kernel_w, p.stride_h, p.stride_w, p.pad_h, p.pad_w
            );
            ("Pooling", params)
        }
        Op::GlobalAvgPool => (
            "Pooling",
            "pooling_param { pool: AVE global_pooling: true }".to_string(),
        ),
        Op::Relu => ("ReLU", String::new()),
        Op::Concat => ("Concat", String::new()),
        Op::Dropout => ("Dropout", String::new()),
        Op::Add => ("Eltwise", String::new()),
        Op::Softmax => ("Softmax", String::new()),
        Op::Flatten => ("Flatten", String::new()),
        Op::Lrn(l) => (
            "LRN",
            format!(
                "lrn_param {{ local_size: {} alpha: {} beta: {} k: {} }}",
                l.size, l.alpha, l.beta, l.bias
            ),
        ),
        Op::Clip(c) => (
            "Clip",
            format!("clip_param {{ min: {} max: {} }}", c.min, c.max),
        ),
    })
}

/// `s` as a prototxt string literal: quotes, backslashes and control
/// characters escaped (octal), other characters as they are.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() && c.is_ascii() => {
                let _ = write!(out, "\\{:03o}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_for_the_prototxt_reader() {
        let tricky = "a\"b\\c\nd\u{7f}é/x";
        let parsed = crate::prototxt::parse(&format!("s: {}", quote(tricky))).unwrap();
        assert_eq!(parsed.get_str("s").unwrap(), Some(tricky));
    }
}
