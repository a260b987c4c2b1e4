//! Tests of the engine: every operation against naive direct loops on small
//! hand-made graphs, shape checks, hooks and determinism.

mod blocked;
mod determinism;
mod errors;
mod fusion;
mod grouped_conv;
mod hooks;
mod kernel;
pub(super) mod naive;
mod ops;
mod plan;
mod shapes;

use formats::{Clip, Conv, Graph, Layer, Lrn, Model, Node, Op, Pool, PoolKind, Preprocess};

use super::Tensor;

/// Deterministic pseudo-random values in [-1, 1) (xorshift), so tests need no
/// random-number dependency and always see the same data.
pub(super) struct Values(u64);

impl Values {
    pub fn new(seed: u64) -> Self {
        Values(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    pub fn vec(&mut self, len: usize) -> Vec<f32> {
        (0..len).map(|_| self.next()).collect()
    }

    pub fn tensor(&mut self, shape: [usize; 4]) -> Tensor {
        Tensor::new(shape, self.vec(shape.iter().product())).expect("consistent test tensor")
    }

    pub fn layer(&mut self, name: &str, shape: [usize; 4]) -> Layer {
        Layer {
            name: name.into(),
            shape,
            weights: self.vec(shape.iter().product()),
            bias: self.vec(shape[0]),
        }
    }
}

/// A node reading `inputs` and writing `output`.
pub(super) fn node(name: &str, op: Op, inputs: &[&str], output: &str) -> Node {
    Node {
        name: name.into(),
        op,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: vec![output.into()],
    }
}

/// A model over blob `data` taking `crop x crop` images, with output `output`.
pub(super) fn model(nodes: Vec<Node>, layers: Vec<Layer>, crop: usize, output: &str) -> Model {
    Model {
        graph: Graph {
            nodes,
            input: "data".into(),
            output: output.into(),
        },
        layers,
        preprocess: Preprocess {
            crop: crop as u32,
            ..Preprocess::torchvision()
        },
    }
}

pub(super) fn conv_op(layer: usize, stride: (usize, usize), pad: (usize, usize), relu: bool) -> Op {
    Op::Conv(Conv {
        layer,
        stride_h: stride.0,
        stride_w: stride.1,
        pad_h: pad.0,
        pad_w: pad.1,
        groups: 1,
        relu,
    })
}

/// `op`, a convolution, with its channels split into `groups`.
pub(super) fn grouped(op: Op, groups: usize) -> Op {
    match op {
        Op::Conv(conv) => Op::Conv(Conv { groups, ..conv }),
        other => other,
    }
}

pub(super) fn pool_op(
    kind: PoolKind,
    kernel: (usize, usize),
    stride: (usize, usize),
    pad: (usize, usize),
    ceil_mode: bool,
) -> Pool {
    Pool {
        kind,
        kernel_h: kernel.0,
        kernel_w: kernel.1,
        stride_h: stride.0,
        stride_w: stride.1,
        pad_h: pad.0,
        pad_w: pad.1,
        ceil_mode,
        count_include_pad: true,
    }
}

/// AlexNet's and MobileNetV2's operations: a grouped convolution, LRN,
/// padded max pooling, a depthwise convolution between ReLU6 clips, and
/// average pooling that does not count its padding.
pub(super) fn new_ops_model() -> (Model, Tensor) {
    let mut v = Values::new(43);
    let layers = vec![
        v.layer("conv1", [24, 3, 3, 3]),
        v.layer("conv2", [32, 12, 3, 3]),
        v.layer("dw", [32, 1, 3, 3]),
        v.layer("project", [10, 32, 1, 1]),
    ];
    let lrn = Lrn {
        size: 5,
        alpha: 0.5,
        beta: 0.75,
        bias: 1.0,
    };
    let relu6 = Op::Clip(Clip { min: 0.0, max: 6.0 });
    let nodes = vec![
        node("conv1", conv_op(0, (2, 2), (1, 1), true), &["data"], "c1"),
        node("lrn", Op::Lrn(lrn), &["c1"], "n1"),
        node(
            "pool",
            Op::Pool(pool_op(PoolKind::Max, (3, 3), (2, 2), (1, 1), true)),
            &["n1"],
            "p",
        ),
        node(
            "conv2",
            grouped(conv_op(1, (1, 1), (1, 1), false), 2),
            &["p"],
            "c2",
        ),
        node("relu6", relu6.clone(), &["c2"], "c2"),
        node(
            "dw",
            grouped(conv_op(2, (2, 2), (1, 1), false), 32),
            &["c2"],
            "d",
        ),
        node("dw_relu6", relu6, &["d"], "d"),
        node(
            "avg",
            Op::Pool(Pool {
                count_include_pad: false,
                ..pool_op(PoolKind::Avg, (3, 3), (1, 1), (1, 1), false)
            }),
            &["d"],
            "avg",
        ),
        node(
            "project",
            conv_op(3, (1, 1), (0, 0), false),
            &["avg"],
            "logits",
        ),
        node("gap", Op::GlobalAvgPool, &["logits"], "gap"),
        node("prob", Op::Softmax, &["gap"], "prob"),
    ];
    (model(nodes, layers, 33, "prob"), v.tensor([9, 3, 33, 33]))
}

/// Assert same shape and every value within `tolerance` of the expected one.
#[track_caller]
pub(super) fn assert_close(actual: &Tensor, expected: &Tensor, tolerance: f32) {
    assert_eq!(actual.shape, expected.shape, "shapes differ");
    for (i, (a, e)) in actual.data.iter().zip(&expected.data).enumerate() {
        assert!(
            (a - e).abs() <= tolerance,
            "value {i}: got {a}, expected {e}"
        );
    }
}
