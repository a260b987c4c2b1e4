//! Models and inputs the engine must reject with a clear one-line error,
//! before computing anything.

use formats::{Clip, Lrn, Model, Op, PoolKind};

use super::{conv_op, grouped, model, node, pool_op, Values};
use crate::engine::{forward, infer_shapes, EngineError, Tensor};

/// Run `m` on zeros of `shape` and return the error message, checking that
/// `infer_shapes` rejects the same way and that the message is one line.
#[track_caller]
fn rejection(m: &Model, shape: [usize; 4]) -> String {
    // Checked before running, and without printing an accepted result.
    let Err(expected) = infer_shapes(m, shape) else {
        panic!("infer_shapes accepted a bad model or input");
    };
    let input = Tensor::zeros(shape).unwrap();
    let Err(err) = forward(m, &input) else {
        panic!("forward accepted a bad model or input");
    };
    assert_eq!(err, expected);
    let message = err.to_string();
    assert!(!message.contains('\n'), "multi-line message: {message}");
    message
}

#[test]
fn convolution_channels_must_match_the_input() {
    let layer = Values::new(1).layer("conv1", [4, 3, 3, 3]);
    let m = model(
        vec![node(
            "conv1",
            conv_op(0, (1, 1), (0, 0), true),
            &["data"],
            "out",
        )],
        vec![layer],
        8,
        "out",
    );
    let message = rejection(&m, [1, 1, 8, 8]);
    assert!(
        message.contains("conv1")
            && message.contains("1 channels")
            && message.contains("expects 3"),
        "{message}"
    );
}

#[test]
fn input_must_have_the_models_size() {
    let m = model(
        vec![node("relu", Op::Relu, &["data"], "out")],
        vec![],
        227,
        "out",
    );
    let message = rejection(&m, [1, 3, 224, 224]);
    assert!(
        message.contains("224x224") && message.contains("227x227"),
        "{message}"
    );
    assert!(rejection(&m, [0, 3, 227, 227]).contains("input"));
}

#[test]
fn concat_needs_equal_spatial_sizes() {
    let p = pool_op(PoolKind::Max, (2, 2), (2, 2), (0, 0), false);
    let nodes = vec![
        node("pool", Op::Pool(p), &["data"], "p"),
        node("cat", Op::Concat, &["data", "p"], "out"),
    ];
    let message = rejection(&model(nodes, vec![], 6, "out"), [1, 2, 6, 6]);
    assert!(
        message.starts_with("node cat:") && message.contains("spatial"),
        "{message}"
    );
}

#[test]
fn add_needs_equal_shapes() {
    let layer = Values::new(2).layer("c", [3, 2, 1, 1]);
    let nodes = vec![
        node("c", conv_op(0, (1, 1), (0, 0), false), &["data"], "c"),
        node("sum", Op::Add, &["data", "c"], "out"),
    ];
    let message = rejection(&model(nodes, vec![layer], 4, "out"), [1, 2, 4, 4]);
    assert!(
        message.starts_with("node sum:")
            && message.contains("[1, 2, 4, 4]")
            && message.contains("[1, 3, 4, 4]"),
        "{message}"
    );
}

#[test]
fn dangling_blobs_and_missing_outputs_are_rejected() {
    let m = model(
        vec![node("relu", Op::Relu, &["nowhere"], "out")],
        vec![],
        4,
        "out",
    );
    assert!(rejection(&m, [1, 1, 4, 4]).contains("nowhere"));
    let m = model(
        vec![node("relu", Op::Relu, &["data"], "r")],
        vec![],
        4,
        "out",
    );
    assert!(rejection(&m, [1, 1, 4, 4]).contains("out"));
    let m = model(
        vec![node("relu", Op::Relu, &["data", "data"], "r")],
        vec![],
        4,
        "r",
    );
    assert!(rejection(&m, [1, 1, 4, 4]).contains("one input"));
}

#[test]
fn broken_layers_and_windows_are_rejected() {
    // One convolution node `conv` of `layer` on a `side`-pixel square
    // input of one channel, and the message its run must give.
    let mut short = Values::new(3).layer("c", [2, 1, 3, 3]);
    short.weights.pop();
    let big = Values::new(4).layer("big", [1, 1, 5, 5]);
    let wide = Values::new(5).layer("wide", [1 << 23, 1, 1, 1]);
    let cases = [
        (conv_op(0, (1, 1), (0, 0), false), &short, 4, "17 weights"),
        (
            conv_op(1, (1, 1), (0, 0), false),
            &short,
            4,
            "missing layer 1",
        ),
        (conv_op(0, (1, 1), (0, 0), false), &big, 4, "larger than"),
        (conv_op(0, (0, 1), (0, 0), false), &big, 8, "zero stride"),
        (conv_op(0, (1, 1), (6, 0), false), &big, 8, "padding"),
        (
            conv_op(0, (1, 1), (0, 0), false),
            &wide,
            8,
            "implausibly large",
        ),
    ];
    for (conv, layer, side, expected) in cases {
        let m = model(
            vec![node("c", conv, &["data"], "out")],
            vec![layer.clone()],
            side,
            "out",
        );
        let message = rejection(&m, [1, 1, side, side]);
        assert!(message.contains(expected), "{expected}: {message}");
    }

    let p = pool_op(PoolKind::Avg, (3, 3), (1, 1), (3, 0), true);
    let m = model(
        vec![node("p", Op::Pool(p), &["data"], "out")],
        vec![],
        8,
        "out",
    );
    assert!(rejection(&m, [1, 1, 8, 8]).contains("padding"));
}

#[test]
fn groups_must_split_both_channel_counts() {
    let single = |layer_shape, groups| {
        let layer = Values::new(6).layer("g", layer_shape);
        let op = grouped(conv_op(0, (1, 1), (1, 1), false), groups);
        model(vec![node("g", op, &["data"], "out")], vec![layer], 6, "out")
    };
    // 3 input channels per group in 2 groups, but the input has 4.
    let message = rejection(&single([4, 3, 3, 3], 2), [1, 4, 6, 6]);
    assert!(
        message.contains("g:") && message.contains("3 per group in 2 groups"),
        "{message}"
    );
    // 5 output channels cannot be split into 2 groups.
    let message = rejection(&single([5, 2, 3, 3], 2), [1, 4, 6, 6]);
    assert!(message.contains("do not divide the 5 output"), "{message}");
    // Zero groups, in a model built without validation.
    let message = rejection(&single([4, 2, 3, 3], 0), [1, 4, 6, 6]);
    assert!(message.contains("0 groups"), "{message}");
}

#[test]
fn lrn_and_clip_parameters_must_be_usable() {
    let single = |op| model(vec![node("n", op, &["data"], "out")], vec![], 4, "out");
    let lrn = Lrn {
        size: 0,
        alpha: 1e-4,
        beta: 0.75,
        bias: 1.0,
    };
    assert!(rejection(&single(Op::Lrn(lrn)), [1, 3, 4, 4]).contains("LRN size 0"));
    let lrn = Lrn {
        size: 5,
        beta: f32::NAN,
        ..lrn
    };
    assert!(rejection(&single(Op::Lrn(lrn)), [1, 3, 4, 4]).contains("beta NaN"));
    for (min, max) in [(1.0, 0.0), (f32::NAN, 6.0), (0.0, f32::NAN)] {
        let message = rejection(&single(Op::Clip(Clip { min, max })), [1, 3, 4, 4]);
        assert!(message.contains("not an interval"), "{message}");
    }
}

#[test]
fn tensors_must_match_their_shape() {
    assert!(matches!(
        Tensor::new([1, 2, 2, 2], vec![0.0; 7]),
        Err(EngineError::Tensor(_))
    ));
    assert!(Tensor::zeros([usize::MAX, 2, 1, 1]).is_err());
    let m = model(
        vec![node("relu", Op::Relu, &["data"], "out")],
        vec![],
        2,
        "out",
    );
    let lying = Tensor {
        shape: [1, 1, 2, 2],
        data: vec![0.0; 3],
    };
    assert!(matches!(forward(&m, &lying), Err(EngineError::Tensor(_))));
}

#[test]
fn tensor_indexing_is_checked() {
    let t = Tensor::new([2, 3, 4, 5], (0..120).map(|v| v as f32).collect()).unwrap();
    assert_eq!(t.get(1, 2, 3, 4), Some(119.0));
    assert_eq!(t.get(1, 0, 1, 2), Some(67.0));
    assert_eq!(t.get(2, 0, 0, 0), None);
    assert_eq!(t.get(0, 0, 0, 5), None);
    assert_eq!(t.image(1).map(|i| i[0]), Some(60.0));
    assert!(t.image(2).is_none());
    assert_eq!(t.image_len(), 60);
}
