//! `forward_hooked`: what the hook sees and what its replacements do.

use formats::{Layer, Node, Op};

use super::naive;
use super::{assert_close, conv_op, model, node, Values};
use crate::engine::{forward, forward_hooked, EngineError, Tensor};

fn two_convs() -> (formats::Model, Tensor) {
    let mut values = Values::new(21);
    let layers = vec![
        values.layer("first", [4, 2, 3, 3]),
        values.layer("second", [3, 4, 1, 1]),
    ];
    let nodes = vec![
        node("first", conv_op(0, (1, 1), (1, 1), false), &["data"], "a"),
        node("relu", Op::Relu, &["a"], "a"),
        node("second", conv_op(1, (1, 1), (0, 0), true), &["a"], "b"),
    ];
    (model(nodes, layers, 5, "b"), values.tensor([2, 2, 5, 5]))
}

#[test]
fn hook_sees_every_node_in_order_with_its_inputs() {
    let (m, input) = two_convs();
    let first = naive::relu(&naive::conv(&input, &m.layers[0], &conv_of(&m, 0)));
    let mut seen = Vec::new();
    forward_hooked(&m, &input, &mut |index, node: &Node, inputs: &[&Tensor]| {
        seen.push((index, node.name.clone()));
        let expected: &Tensor = if index == 0 { &input } else { &first };
        if index != 1 {
            assert_eq!(inputs.len(), 1);
            assert_close(inputs[0], expected, 1e-5);
        }
        None
    })
    .unwrap();
    assert_eq!(
        seen,
        vec![
            (0, "first".into()),
            (1, "relu".into()),
            (2, "second".into())
        ]
    );
}

fn conv_of(m: &formats::Model, index: usize) -> formats::Conv {
    match m.graph.nodes[index].op {
        Op::Conv(c) => c,
        _ => unreachable!("node {index} is a convolution"),
    }
}

#[test]
fn replacement_layer_is_used_for_that_node_only() {
    let (m, input) = two_convs();
    let replacement = Layer {
        weights: m.layers[1].weights.iter().map(|w| w * 0.5).collect(),
        ..m.layers[1].clone()
    };
    let mut swapped = m.clone();
    swapped.layers[1] = replacement.clone();
    let hooked = forward_hooked(&m, &input, &mut |index, _, _| {
        (index == 2).then(|| replacement.clone())
    })
    .unwrap();
    assert_eq!(hooked, forward(&swapped, &input).unwrap());
    assert_ne!(hooked, forward(&m, &input).unwrap());
}

#[test]
fn replacements_that_do_not_fit_are_rejected() {
    let (m, input) = two_convs();
    let wrong_shape = Values::new(5).layer("x", [3, 4, 3, 3]);
    let err = forward_hooked(&m, &input, &mut |index, _, _| {
        (index == 2).then(|| wrong_shape.clone())
    })
    .unwrap_err();
    assert!(
        matches!(&err, EngineError::Hook { node, .. } if node == "second"),
        "{err}"
    );

    let mut short = m.layers[1].clone();
    short.bias.pop();
    let err = forward_hooked(&m, &input, &mut |index, _, _| {
        (index == 2).then(|| short.clone())
    })
    .unwrap_err();
    assert!(err.to_string().contains("biases"), "{err}");

    let err = forward_hooked(&m, &input, &mut |index, _, _| {
        (index == 1).then(|| m.layers[1].clone())
    })
    .unwrap_err();
    assert!(
        matches!(&err, EngineError::Hook { node, .. } if node == "relu"),
        "{err}"
    );
}
