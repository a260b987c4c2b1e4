//! Grouped and depthwise convolutions against the direct loops, on every
//! path that runs them (fused session, im2col session, hooked run), their
//! fusions with ReLU and Clip, and what a hook sees of them.

use formats::{Clip, Layer, Model, Op};
use proptest::prelude::*;

use super::naive;
use super::{assert_close, conv_op, grouped, model, node, Values};
use crate::engine::fusion::{steps, Step};
use crate::engine::plan::Plan;
use crate::engine::{forward, forward_hooked, Session, Tensor};

const TOLERANCE: f32 = 1e-4;

/// One grouped convolution: input `[n, c, size, size]`, `out_c` outputs in
/// `groups` groups, kernel, stride, padding and fused ReLU.
struct GroupedCase {
    input: [usize; 4],
    out_c: usize,
    groups: usize,
    kernel: (usize, usize),
    stride: (usize, usize),
    pad: (usize, usize),
    relu: bool,
}

/// The single-convolution model of `case`, its layer and an input.
fn single_conv(case: &GroupedCase, seed: u64) -> (Model, Tensor) {
    let mut values = Values::new(seed);
    let shape = [
        case.out_c,
        case.input[1] / case.groups,
        case.kernel.0,
        case.kernel.1,
    ];
    let layer = values.layer("conv", shape);
    let op = grouped(conv_op(0, case.stride, case.pad, case.relu), case.groups);
    let m = model(
        vec![node("conv", op, &["data"], "out")],
        vec![layer],
        case.input[2],
        "out",
    );
    (m, values.tensor(case.input))
}

/// The convolution of `m`'s first node.
fn conv_of(m: &Model) -> formats::Conv {
    let Op::Conv(conv) = m.graph.nodes[0].op else {
        unreachable!("the first node is a convolution")
    };
    conv
}

fn check_grouped(case: &GroupedCase, seed: u64) {
    let (m, input) = single_conv(case, seed);
    let expected = naive::conv(&input, &m.layers[0], &conv_of(&m));
    let fused = forward(&m, &input).unwrap();
    assert_close(&fused, &expected, TOLERANCE);
    let im2col = Session::with_kernel(&m, None).unwrap().run(&input).unwrap();
    assert_close(&im2col, &expected, TOLERANCE);
    if case.groups > 1 {
        assert_eq!(im2col, fused, "the im2col session runs the same kernels");
    }
    let hooked = forward_hooked(&m, &input, &mut |_, _, _| None).unwrap();
    assert_eq!(hooked, fused);
}

#[test]
fn grouped_and_depthwise_convolutions_match_direct_loops() {
    let case = |input, out_c, groups, kernel, stride, pad, relu| GroupedCase {
        input,
        out_c,
        groups,
        kernel,
        stride,
        pad,
        relu,
    };
    let cases = [
        // AlexNet's conv2 in small: 2 groups, 5x5, padding 2.
        case([2, 6, 9, 9], 8, 2, (5, 5), (1, 1), (2, 2), true),
        // 3 groups, 3x3 stride 2, odd size; 1x1 in 4 groups (ShuffleNet).
        case([1, 9, 11, 11], 6, 3, (3, 3), (2, 2), (1, 1), false),
        case([2, 8, 5, 5], 12, 4, (1, 1), (1, 1), (0, 0), true),
        // MobileNetV2's depthwise 3x3, stride 1 and 2, batch > 1.
        case([3, 5, 9, 9], 5, 5, (3, 3), (1, 1), (1, 1), false),
        case([2, 4, 9, 9], 4, 4, (3, 3), (2, 2), (1, 1), true),
        case([1, 3, 10, 10], 3, 3, (3, 3), (2, 2), (1, 1), false),
        // Depthwise without padding, with a multiplier of 2, 5x5 stride 3,
        // a 3x2 kernel with uneven stride and padding.
        case([1, 3, 8, 8], 3, 3, (3, 3), (1, 1), (0, 0), false),
        case([2, 3, 7, 7], 6, 3, (3, 3), (1, 1), (1, 1), true),
        case([1, 2, 13, 13], 2, 2, (5, 5), (3, 3), (2, 2), false),
        case([1, 4, 9, 9], 4, 4, (3, 2), (2, 1), (1, 2), false),
        // An unfolded BatchNormalization: depthwise 1x1.
        case([2, 6, 4, 4], 6, 6, (1, 1), (1, 1), (0, 0), false),
        // Many channels and positions: more than one tile or task.
        case([1, 130, 37, 37], 130, 130, (3, 3), (1, 1), (1, 1), true),
        case([1, 140, 33, 33], 140, 2, (3, 3), (1, 1), (1, 1), false),
    ];
    for (seed, case) in cases.iter().enumerate() {
        check_grouped(case, seed as u64);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_grouped_convolutions_match_direct_loops(
        n in 1usize..3, groups in 1usize..5, group_in in 1usize..3, group_out in 1usize..3,
        size in 1usize..12, kh in 1usize..5, kw in 1usize..5, sh in 1usize..4,
        sw in 1usize..4, ph in 0usize..5, pw in 0usize..5, relu: bool, seed: u64,
    ) {
        let (ph, pw) = (ph.min(kh), pw.min(kw));
        prop_assume!(size + 2 * ph >= kh && size + 2 * pw >= kw);
        let case = GroupedCase {
            input: [n, groups * group_in, size, size],
            out_c: groups * group_out,
            groups,
            kernel: (kh, kw),
            stride: (sh, sw),
            pad: (ph, pw),
            relu,
        };
        check_grouped(&case, seed);
    }
}

/// ReLU6 as ONNX writes it.
const RELU6: Clip = Clip { min: 0.0, max: 6.0 };

/// An inverted residual block of MobileNetV2 in small: 1x1 expansion,
/// ReLU6, depthwise 3x3, ReLU6, 1x1 projection, added to the block's input;
/// then a stride-2 depthwise convolution with a fused ReLU and a Clip.
fn inverted_residual() -> Model {
    let mut values = Values::new(51);
    let mut layers = vec![
        values.layer("expand", [12, 4, 1, 1]),
        values.layer("depthwise", [12, 1, 3, 3]),
        values.layer("project", [4, 12, 1, 1]),
        values.layer("down", [4, 1, 3, 3]),
    ];
    // Large enough weights that ReLU6 clamps at both ends.
    for layer in &mut layers {
        layer.weights.iter_mut().for_each(|w| *w *= 4.0);
    }
    let clip = Op::Clip(RELU6);
    let nodes = vec![
        node("expand", conv_op(0, (1, 1), (0, 0), false), &["data"], "e"),
        node("expand_relu6", clip.clone(), &["e"], "e6"),
        node(
            "dw",
            grouped(conv_op(1, (1, 1), (1, 1), false), 12),
            &["e6"],
            "d",
        ),
        node("dw_relu6", clip.clone(), &["d"], "d6"),
        node("project", conv_op(2, (1, 1), (0, 0), false), &["d6"], "p"),
        node("residual", Op::Add, &["p", "data"], "sum"),
        node(
            "down",
            grouped(conv_op(3, (2, 2), (1, 1), true), 4),
            &["sum"],
            "down",
        ),
        node(
            "down_clip",
            Op::Clip(Clip { min: 0.5, max: 1.0 }),
            &["down"],
            "out",
        ),
    ];
    model(nodes, layers, 9, "out")
}

#[test]
fn clip_folds_into_depthwise_convolutions_only() {
    let m = inverted_residual();
    let plan = Plan::new(&m.graph).unwrap();
    let clip = Clip { min: 0.5, max: 1.0 };
    assert_eq!(
        steps(&m, &plan),
        vec![
            Step::Run,
            Step::Run,
            Step::ConvClip(RELU6),
            Step::Pass,
            Step::Run,
            Step::Run,
            Step::ConvClip(clip),
            Step::Pass,
        ]
    );
}

#[test]
fn inverted_residual_matches_direct_loops_fused_or_not_for_any_thread_count() {
    let m = inverted_residual();
    let input = Values::new(52).tensor([2, 4, 9, 9]);
    let conv = |x: &Tensor, index: usize| {
        let Op::Conv(conv) = m.graph.nodes[index].op else {
            unreachable!("node {index} is a convolution")
        };
        naive::conv(x, &m.layers[conv.layer], &conv)
    };
    let relu6 = |x: &Tensor| naive::clip(x, &RELU6);
    let expanded = relu6(&conv(&input, 0));
    let depthwise = relu6(&conv(&expanded, 2));
    let projected = conv(&depthwise, 4);
    let sum = Tensor {
        shape: input.shape,
        data: projected
            .data
            .iter()
            .zip(&input.data)
            .map(|(p, x)| p + x)
            .collect(),
    };
    let expected = naive::clip(&conv(&sum, 6), &Clip { min: 0.5, max: 1.0 });
    let clamped = |x: &Tensor, bound: f32| x.data.iter().filter(|&&v| v == bound).count();
    assert!(
        clamped(&expanded, 0.0) > 0 && clamped(&expanded, 6.0) > 0,
        "the test must clamp at both ends"
    );
    let hooked = forward_hooked(&m, &input, &mut |_, _, _| None).unwrap();
    assert_close(&hooked, &expected, TOLERANCE);
    let session = Session::new(&m).unwrap();
    for threads in [1, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        assert_eq!(
            pool.install(|| session.run(&input)).unwrap(),
            hooked,
            "{threads} threads"
        );
    }
}

#[test]
fn grouped_convolutions_are_not_written_into_concatenations() {
    let mut values = Values::new(53);
    let layers = vec![
        values.layer("grouped", [4, 2, 3, 3]),
        values.layer("plain", [3, 4, 1, 1]),
    ];
    let nodes = vec![
        node(
            "grouped",
            grouped(conv_op(0, (1, 1), (1, 1), false), 2),
            &["data"],
            "g",
        ),
        node("relu", Op::Relu, &["g"], "g"),
        node("plain", conv_op(1, (1, 1), (0, 0), true), &["data"], "p"),
        node("cat", Op::Concat, &["g", "p"], "cat"),
    ];
    let m = model(nodes, layers, 6, "cat");
    let plan = Plan::new(&m.graph).unwrap();
    assert_eq!(
        steps(&m, &plan),
        vec![Step::ConvRelu, Step::Pass, Step::Run, Step::Run]
    );
    let input = values.tensor([2, 4, 6, 6]);
    let conv = |index: usize| {
        let Op::Conv(conv) = m.graph.nodes[index].op else {
            unreachable!("node {index} is a convolution")
        };
        naive::conv(&input, &m.layers[conv.layer], &conv)
    };
    let expected = naive::concat(&[&naive::relu(&conv(0)), &conv(2)]);
    assert_close(&forward(&m, &input).unwrap(), &expected, TOLERANCE);
}

#[test]
fn a_hook_sees_a_grouped_layer_and_may_replace_it() {
    // 3 groups of 2 channels, then depthwise.
    for groups in [3, 6] {
        let case = GroupedCase {
            input: [2, 6, 7, 7],
            out_c: 6,
            groups,
            kernel: (3, 3),
            stride: (1, 1),
            pad: (1, 1),
            relu: false,
        };
        let (m, input) = single_conv(&case, 54);
        let replacement = Layer {
            weights: m.layers[0].weights.iter().map(|w| -2.0 * w).collect(),
            ..m.layers[0].clone()
        };
        let mut seen = Vec::new();
        let out = forward_hooked(&m, &input, &mut |_, node, inputs| {
            seen.push((node.name.clone(), inputs[0].shape));
            Some(replacement.clone())
        })
        .unwrap();
        assert_eq!(seen, vec![("conv".to_string(), [2, 6, 7, 7])]);
        let expected = naive::conv(&input, &replacement, &conv_of(&m));
        assert_close(&out, &expected, TOLERANCE);
    }
}
