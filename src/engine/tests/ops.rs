//! Every operation, run through `forward` on small graphs, against the
//! naive loops.

use formats::{Clip, Conv, Lrn, Op, PoolKind};
use proptest::prelude::*;

use super::naive;
use super::{assert_close, conv_op, model, node, pool_op, Values};
use crate::engine::blocked::winograd::WinogradLayer;
use crate::engine::{forward, forward_hooked, Session, Tensor};

/// Sums of up to a few hundred products of values in [-1, 1): float
/// rounding differences stay far below this.
const TOLERANCE: f32 = 1e-4;

/// One convolution geometry: input `[n, c, size, size]`, kernel, stride,
/// padding, output channels and fused ReLU.
struct ConvCase {
    input: [usize; 4],
    out_c: usize,
    kernel: (usize, usize),
    stride: (usize, usize),
    pad: (usize, usize),
    relu: bool,
}

fn check_conv(case: &ConvCase, seed: u64) {
    let mut values = Values::new(seed);
    let layer = values.layer(
        "conv",
        [case.out_c, case.input[1], case.kernel.0, case.kernel.1],
    );
    let input = values.tensor(case.input);
    let op = conv_op(0, case.stride, case.pad, case.relu);
    let Op::Conv(conv) = op else { unreachable!() };
    let expected = naive::conv(&input, &layer, &conv);
    let m = model(
        vec![node("conv", op, &["data"], "out")],
        vec![layer],
        case.input[2],
        "out",
    );
    let output = forward(&m, &input).unwrap();
    assert_close(&output, &expected, TOLERANCE);
    // A hooked run computes in NCHW with the other micro-kernel: the
    // blocked layout must give the very same bits, but where it runs
    // Winograd's algorithm, which rounds differently (see
    // `blocked::winograd`): there both lie within float rounding of the
    // exact sum, checked against the naive loops above.
    let nchw = forward_hooked(&m, &input, &mut |_, _, _| None).unwrap();
    if WinogradLayer::fits(&m.layers[0], &conv) {
        assert_close(&output, &nchw, TOLERANCE);
    } else {
        assert_eq!(output, nchw, "blocked and NCHW runs differ");
    }
    let im2col = Session::with_kernel(&m, None).unwrap().run(&input).unwrap();
    assert_close(&im2col, &expected, TOLERANCE);
}

#[test]
fn convolution_matches_direct_loops() {
    let cases = [
        // 3x3 "same" convolution, fused ReLU.
        ConvCase {
            input: [1, 3, 9, 9],
            out_c: 5,
            kernel: (3, 3),
            stride: (1, 1),
            pad: (1, 1),
            relu: true,
        },
        // Non-square kernel, different strides and paddings per axis, batch > 1.
        ConvCase {
            input: [2, 4, 11, 11],
            out_c: 6,
            kernel: (3, 2),
            stride: (2, 1),
            pad: (1, 0),
            relu: false,
        },
        ConvCase {
            input: [3, 2, 10, 10],
            out_c: 3,
            kernel: (1, 4),
            stride: (1, 3),
            pad: (0, 2),
            relu: true,
        },
        // conv1 of SqueezeNet v1.0 in small: 7x7 stride 2, odd input.
        ConvCase {
            input: [2, 3, 23, 23],
            out_c: 8,
            kernel: (7, 7),
            stride: (2, 2),
            pad: (0, 0),
            relu: true,
        },
        // 1x1, stride 1, no padding: the im2col-free path.
        ConvCase {
            input: [2, 7, 5, 5],
            out_c: 9,
            kernel: (1, 1),
            stride: (1, 1),
            pad: (0, 0),
            relu: true,
        },
        // 1x1 with padding 1 (v1.0's conv_final) and 1x1 stride 2.
        ConvCase {
            input: [1, 4, 6, 6],
            out_c: 5,
            kernel: (1, 1),
            stride: (1, 1),
            pad: (1, 1),
            relu: false,
        },
        ConvCase {
            input: [1, 4, 7, 7],
            out_c: 5,
            kernel: (1, 1),
            stride: (2, 2),
            pad: (0, 0),
            relu: false,
        },
        // Kernel as large as the padded input: a single output position.
        ConvCase {
            input: [2, 2, 4, 4],
            out_c: 3,
            kernel: (6, 5),
            stride: (3, 2),
            pad: (1, 1),
            relu: false,
        },
        // Winograd F(2x2, 3x3): input channels a block and a bit, odd and
        // even outputs (a last row and column of half tiles), padding 0 to
        // 2, more output blocks than one group of the kernel (65), more
        // tiles than one task (19 x 19 = 361 tiles of a 37 x 37 output).
        ConvCase {
            input: [2, 17, 13, 13],
            out_c: 65,
            kernel: (3, 3),
            stride: (1, 1),
            pad: (1, 1),
            relu: true,
        },
        ConvCase {
            input: [1, 32, 8, 8],
            out_c: 20,
            kernel: (3, 3),
            stride: (1, 1),
            pad: (0, 0),
            relu: false,
        },
        ConvCase {
            input: [2, 16, 5, 5],
            out_c: 16,
            kernel: (3, 3),
            stride: (1, 1),
            pad: (2, 2),
            relu: true,
        },
        ConvCase {
            input: [1, 40, 37, 37],
            out_c: 33,
            kernel: (3, 3),
            stride: (1, 1),
            pad: (1, 1),
            relu: false,
        },
        ConvCase {
            input: [1, 16, 1, 1],
            out_c: 7,
            kernel: (3, 3),
            stride: (1, 1),
            pad: (1, 1),
            relu: false,
        },
        // More output channels and positions than one tile (64 x 1024) or
        // task (128 x 96) holds, none a multiple of the kernel's 4 x 16.
        ConvCase {
            input: [2, 3, 37, 37],
            out_c: 70,
            kernel: (3, 3),
            stride: (1, 1),
            pad: (1, 1),
            relu: true,
        },
        ConvCase {
            input: [1, 130, 33, 33],
            out_c: 131,
            kernel: (1, 1),
            stride: (1, 1),
            pad: (0, 0),
            relu: false,
        },
        // Deeper than one depth chunk of the packed path (640), so sums
        // continue through the output and ReLU waits for the last chunk;
        // 64 positions end in a 16-column tail.
        ConvCase {
            input: [2, 700, 8, 8],
            out_c: 19,
            kernel: (1, 1),
            stride: (1, 1),
            pad: (0, 0),
            relu: true,
        },
        ConvCase {
            input: [1, 75, 7, 7],
            out_c: 21,
            kernel: (3, 3),
            stride: (1, 1),
            pad: (1, 1),
            relu: true,
        },
        // Blocked layout: input channels a block and a bit (17, 33) or
        // exactly blocks (32), output channels filling 1 to 4 blocks of a
        // kernel call and more than one call (65), stride 2 with padding,
        // 7x7 with padding, rows of 1 to 13 positions.
        ConvCase {
            input: [2, 17, 13, 13],
            out_c: 65,
            kernel: (3, 3),
            stride: (2, 2),
            pad: (1, 1),
            relu: true,
        },
        ConvCase {
            input: [1, 33, 9, 9],
            out_c: 48,
            kernel: (1, 1),
            stride: (1, 1),
            pad: (0, 0),
            relu: false,
        },
        ConvCase {
            input: [2, 32, 6, 6],
            out_c: 17,
            kernel: (1, 1),
            stride: (2, 2),
            pad: (1, 1),
            relu: true,
        },
        ConvCase {
            input: [1, 3, 19, 19],
            out_c: 33,
            kernel: (7, 7),
            stride: (2, 2),
            pad: (3, 3),
            relu: false,
        },
        ConvCase {
            input: [1, 5, 1, 1],
            out_c: 16,
            kernel: (3, 3),
            stride: (1, 1),
            pad: (1, 1),
            relu: true,
        },
    ];
    for (seed, case) in cases.iter().enumerate() {
        check_conv(case, seed as u64);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_convolutions_match_direct_loops(
        n in 1usize..3, c in 1usize..40, out_c in 1usize..70, size in 1usize..12,
        kh in 1usize..5, kw in 1usize..5, sh in 1usize..4, sw in 1usize..4,
        ph in 0usize..5, pw in 0usize..5, relu: bool, seed: u64,
    ) {
        let (ph, pw) = (ph.min(kh), pw.min(kw));
        prop_assume!(size + 2 * ph >= kh && size + 2 * pw >= kw);
        let case = ConvCase { input: [n, c, size, size], out_c, kernel: (kh, kw), stride: (sh, sw), pad: (ph, pw), relu };
        check_conv(&case, seed);
    }
}

#[test]
fn pooling_matches_direct_loops() {
    let cases = [
        // SqueezeNet's max pool: 3x3 stride 2, ceil rounding, odd size.
        (PoolKind::Max, [2, 3, 13, 13], (3, 3), (2, 2), (0, 0), true),
        (PoolKind::Max, [1, 2, 12, 12], (3, 3), (2, 2), (0, 0), true),
        (PoolKind::Max, [1, 2, 12, 12], (3, 3), (2, 2), (0, 0), false),
        // Padding, with the last ceil window dropped (it would start in the padding).
        (PoolKind::Max, [1, 2, 5, 5], (2, 2), (2, 2), (1, 1), true),
        (PoolKind::Avg, [1, 2, 5, 5], (2, 2), (2, 2), (1, 1), true),
        // Average: padding counts, the ceil overhang does not.
        (PoolKind::Avg, [2, 3, 10, 10], (3, 3), (2, 2), (1, 1), true),
        (PoolKind::Avg, [2, 3, 10, 10], (3, 3), (2, 2), (1, 1), false),
        (PoolKind::Avg, [1, 2, 9, 9], (3, 3), (2, 2), (0, 0), true),
        // Non-square windows, strides and paddings.
        (PoolKind::Avg, [1, 2, 11, 11], (2, 3), (1, 2), (1, 0), true),
        (PoolKind::Max, [2, 1, 11, 11], (3, 2), (2, 3), (0, 1), true),
        (PoolKind::Max, [1, 1, 7, 7], (1, 1), (3, 3), (0, 0), true),
        // Padding on every side, ceil and floor: padded cells never win,
        // even over negative values (ONNX/PyTorch MaxPool with pads).
        (PoolKind::Max, [2, 3, 10, 10], (3, 3), (2, 2), (1, 1), true),
        (PoolKind::Max, [1, 2, 9, 9], (3, 3), (2, 2), (1, 1), false),
        (PoolKind::Max, [1, 2, 8, 8], (4, 4), (3, 3), (2, 1), true),
    ];
    let mut values = Values::new(7);
    for (kind, shape, kernel, stride, pad, ceil_mode) in cases {
        let p = pool_op(kind, kernel, stride, pad, ceil_mode);
        check_pool(&p, &values.tensor(shape));
    }
    // All-negative planes: a padded zero would win if padding took part.
    let mut negative = values.tensor([1, 2, 7, 7]);
    negative.data.iter_mut().for_each(|v| *v = -1.0 - v.abs());
    check_pool(
        &pool_op(PoolKind::Max, (3, 3), (2, 2), (1, 1), true),
        &negative,
    );
}

#[test]
fn average_pooling_without_counting_padding_divides_by_real_values() {
    let cases = [
        ([2, 3, 10, 10], (3, 3), (2, 2), (1, 1), true),
        ([2, 3, 10, 10], (3, 3), (2, 2), (1, 1), false),
        ([1, 2, 5, 5], (2, 2), (2, 2), (1, 1), true),
        ([1, 2, 11, 11], (2, 3), (1, 2), (1, 0), true),
        // GoogLeNet's 3x3 stride 1 "same" average pooling.
        ([1, 4, 7, 7], (3, 3), (1, 1), (1, 1), false),
    ];
    let mut values = Values::new(8);
    for (shape, kernel, stride, pad, ceil_mode) in cases {
        let p = formats::Pool {
            count_include_pad: false,
            ..pool_op(PoolKind::Avg, kernel, stride, pad, ceil_mode)
        };
        check_pool(&p, &values.tensor(shape));
    }
    // A constant plane stays constant, borders included.
    let p = formats::Pool {
        count_include_pad: false,
        ..pool_op(PoolKind::Avg, (3, 3), (1, 1), (1, 1), false)
    };
    let ones = Tensor::new([1, 1, 5, 5], vec![1.0; 25]).unwrap();
    let m = model(
        vec![node("pool", Op::Pool(p), &["data"], "out")],
        vec![],
        5,
        "out",
    );
    assert_eq!(forward(&m, &ones).unwrap(), ones);
}

/// Pool `input` with `p` through `forward` and compare with the direct
/// loops.
fn check_pool(p: &formats::Pool, input: &Tensor) {
    let m = model(
        vec![node("pool", Op::Pool(*p), &["data"], "out")],
        vec![],
        input.shape[2],
        "out",
    );
    assert_close(&forward(&m, input).unwrap(), &naive::pool(input, p), 1e-6);
}

#[test]
fn global_average_pooling_matches_direct_loops() {
    let input = Values::new(8).tensor([3, 5, 9, 9]);
    let m = model(
        vec![node("gap", Op::GlobalAvgPool, &["data"], "out")],
        vec![],
        9,
        "out",
    );
    assert_close(
        &forward(&m, &input).unwrap(),
        &naive::global_avg_pool(&input),
        1e-6,
    );
}

#[test]
fn concat_add_and_relu_match_direct_loops() {
    let mut values = Values::new(9);
    let layers = vec![
        values.layer("a", [2, 3, 1, 1]),
        values.layer("b", [5, 3, 3, 3]),
        values.layer("c", [2, 3, 3, 3]),
    ];
    let nodes = vec![
        node("a", conv_op(0, (1, 1), (0, 0), false), &["data"], "a"),
        node("b", conv_op(1, (1, 1), (1, 1), false), &["data"], "b"),
        node("c", conv_op(2, (1, 1), (1, 1), false), &["data"], "c"),
        node("cat", Op::Concat, &["a", "b", "data"], "cat"),
        node("sum", Op::Add, &["a", "c", "a"], "sum"),
        node("relu", Op::Relu, &["sum"], "relu"),
        node("all", Op::Concat, &["relu", "cat"], "all"),
    ];
    let m = model(nodes, layers.clone(), 7, "all");
    let input = values.tensor([2, 3, 7, 7]);
    let conv = |l: usize, pad: usize| {
        naive::conv(
            &input,
            &layers[l],
            &Conv {
                layer: l,
                stride_h: 1,
                stride_w: 1,
                pad_h: pad,
                pad_w: pad,
                groups: 1,
                relu: false,
            },
        )
    };
    let (a, b, c) = (conv(0, 0), conv(1, 1), conv(2, 1));
    let sum = Tensor {
        shape: a.shape,
        data: (0..a.data.len())
            .map(|i| a.data[i] + c.data[i] + a.data[i])
            .collect(),
    };
    let expected = naive::concat(&[&naive::relu(&sum), &naive::concat(&[&a, &b, &input])]);
    assert_close(&forward(&m, &input).unwrap(), &expected, TOLERANCE);
}

#[test]
fn softmax_matches_direct_loops_even_for_large_logits() {
    let mut input = Values::new(10).tensor([3, 6, 2, 2]);
    input.data.iter_mut().for_each(|v| *v *= 60.0);
    let m = model(
        vec![node("prob", Op::Softmax, &["data"], "prob")],
        vec![],
        2,
        "prob",
    );
    let out = forward(&m, &input).unwrap();
    assert_close(&out, &naive::softmax(&input), 1e-6);
    let first_position_total: f32 = (0..6).map(|c| out.get(1, c, 0, 0).unwrap()).sum();
    assert!((first_position_total - 1.0).abs() < 1e-6);
}

#[test]
fn dropout_is_identity_and_flatten_only_reshapes() {
    let input = Values::new(11).tensor([2, 3, 4, 4]);
    let nodes = vec![
        node("drop", Op::Dropout, &["data"], "d"),
        node("flat", Op::Flatten, &["d"], "f"),
    ];
    let out = forward(&model(nodes, vec![], 4, "f"), &input).unwrap();
    assert_eq!(out.shape, [2, 48, 1, 1]);
    assert_eq!(out.data, input.data);
}

/// A Caffe-style fire module: in-place ReLUs reuse blob names, the squeeze
/// output feeds two convolutions, and everything ends in max pooling over a
/// non-square map, global pooling and softmax.
#[test]
fn caffe_style_graph_with_reused_blob_names_matches_direct_loops() {
    let mut values = Values::new(12);
    let layers = vec![
        values.layer("conv1", [4, 3, 3, 2]),
        values.layer("squeeze", [2, 4, 1, 1]),
        values.layer("expand1x1", [3, 2, 1, 1]),
        values.layer("expand3x3", [3, 2, 3, 3]),
    ];
    let pool = pool_op(PoolKind::Max, (3, 3), (2, 2), (0, 0), true);
    let nodes = vec![
        node(
            "conv1",
            conv_op(0, (2, 1), (0, 1), false),
            &["data"],
            "conv1",
        ),
        node("relu1", Op::Relu, &["conv1"], "conv1"),
        node("pool1", Op::Pool(pool), &["conv1"], "pool1"),
        node(
            "squeeze",
            conv_op(1, (1, 1), (0, 0), false),
            &["pool1"],
            "squeeze",
        ),
        node("relu_s", Op::Relu, &["squeeze"], "squeeze"),
        node(
            "expand1x1",
            conv_op(2, (1, 1), (0, 0), true),
            &["squeeze"],
            "e1",
        ),
        node(
            "expand3x3",
            conv_op(3, (1, 1), (1, 1), true),
            &["squeeze"],
            "e3",
        ),
        node("concat", Op::Concat, &["e1", "e3"], "fire"),
        node("drop", Op::Dropout, &["fire"], "fire"),
        node("gap", Op::GlobalAvgPool, &["fire"], "gap"),
        node("prob", Op::Softmax, &["gap"], "prob"),
    ];
    let m = model(nodes, layers.clone(), 15, "prob");
    let input = values.tensor([2, 3, 15, 15]);
    let conv = |x: &Tensor, l: usize, stride: (usize, usize), pad: (usize, usize), relu: bool| {
        let c = Conv {
            layer: l,
            stride_h: stride.0,
            stride_w: stride.1,
            pad_h: pad.0,
            pad_w: pad.1,
            groups: 1,
            relu,
        };
        naive::conv(x, &layers[l], &c)
    };
    let conv1 = naive::relu(&conv(&input, 0, (2, 1), (0, 1), false));
    assert_eq!(
        conv1.shape,
        [2, 4, 7, 16],
        "the test must exercise a non-square map"
    );
    let pool1 = naive::pool(&conv1, &pool);
    let squeeze = naive::relu(&conv(&pool1, 1, (1, 1), (0, 0), false));
    let fire = naive::concat(&[
        &conv(&squeeze, 2, (1, 1), (0, 0), true),
        &conv(&squeeze, 3, (1, 1), (1, 1), true),
    ]);
    let expected = naive::softmax(&naive::global_avg_pool(&fire));
    assert_close(&forward(&m, &input).unwrap(), &expected, 1e-5);
}

#[test]
fn output_may_be_an_intermediate_blob_and_the_input_is_left_untouched() {
    let input = Values::new(13).tensor([1, 2, 3, 3]);
    let nodes = vec![
        node("relu", Op::Relu, &["data"], "r"),
        node("sm", Op::Softmax, &["r"], "s"),
    ];
    let original = input.clone();
    let out = forward(&model(nodes, vec![], 3, "r"), &input).unwrap();
    assert_eq!(out, naive::relu(&input));
    assert_eq!(input, original);
}

#[test]
fn lrn_matches_its_formula() {
    let mut values = Values::new(14);
    // AlexNet's and GoogLeNet's parameters, an even size (the window is
    // not centred), a window wider than the channels, and a size of 1.
    let cases = [
        (
            Lrn {
                size: 5,
                alpha: 1e-4,
                beta: 0.75,
                bias: 1.0,
            },
            7,
        ),
        (
            Lrn {
                size: 4,
                alpha: 0.5,
                beta: 0.6,
                bias: 2.0,
            },
            6,
        ),
        (
            Lrn {
                size: 9,
                alpha: 2.0,
                beta: 1.5,
                bias: 0.5,
            },
            3,
        ),
        (
            Lrn {
                size: 1,
                alpha: 3.0,
                beta: 0.75,
                bias: 1.0,
            },
            2,
        ),
    ];
    for (lrn, channels) in cases {
        let mut input = values.tensor([2, channels, 5, 5]);
        // Values up to 10 so that the normalisation matters.
        input.data.iter_mut().for_each(|v| *v *= 10.0);
        let m = model(
            vec![node("lrn", Op::Lrn(lrn), &["data"], "out")],
            vec![],
            5,
            "out",
        );
        let out = forward(&m, &input).unwrap();
        assert_close(&out, &naive::lrn(&input, &lrn), 1e-5);
        if lrn.alpha > 1.0 {
            assert_ne!(out, input, "{lrn:?} must change its input");
        }
    }
}

#[test]
fn clip_matches_direct_loops_in_place_or_not() {
    let mut input = Values::new(15).tensor([2, 3, 4, 4]);
    input.data.iter_mut().for_each(|v| *v *= 8.0);
    let relu6 = Clip { min: 0.0, max: 6.0 };
    let narrow = Clip {
        min: -0.5,
        max: 0.25,
    };
    // The first Clip's output is read twice, so it is copied, not moved.
    let nodes = vec![
        node("relu6", Op::Clip(relu6), &["data"], "a"),
        node("narrow", Op::Clip(narrow), &["a"], "b"),
        node("both", Op::Concat, &["a", "b"], "out"),
    ];
    let out = forward(&model(nodes, vec![], 4, "out"), &input).unwrap();
    let a = naive::clip(&input, &relu6);
    let expected = naive::concat(&[&a, &naive::clip(&a, &narrow)]);
    assert_eq!(out, expected);
}
