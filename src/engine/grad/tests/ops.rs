//! Every operation's gradients (weights, biases, input) against finite
//! differences on small graphs: odd sizes, stride 2, padding, ceil-rounded
//! pools whose last window is partial, concatenation of 2-3 inputs,
//! additions, grouped and depthwise convolutions, LRN, Clip, and batches
//! spanning several parallel tasks.

use formats::{Clip, Lrn, Op, Pool, PoolKind};

use super::GradientCheck;
use crate::engine::tests::{conv_op, grouped, model, node, pool_op, Values};

#[test]
fn convolution_stride_2_padding_and_fused_relu() {
    let mut v = Values::new(1);
    let layers = vec![v.layer("c", [4, 3, 3, 3])];
    let nodes = vec![node("c", conv_op(0, (2, 2), (1, 1), true), &["data"], "c")];
    // Batch 5: two parallel tasks of images, the second one partial.
    GradientCheck::new(&model(nodes, layers, 9, "c"), &v.tensor([5, 3, 9, 9]), 2)
        .compare_everything();
}

#[test]
fn convolution_uneven_kernel_stride_and_padding() {
    let mut v = Values::new(3);
    let layers = vec![v.layer("c", [3, 2, 3, 2])];
    let nodes = vec![node("c", conv_op(0, (2, 1), (1, 0), false), &["data"], "c")];
    GradientCheck::new(&model(nodes, layers, 7, "c"), &v.tensor([2, 2, 7, 7]), 4)
        .compare_everything();
}

#[test]
fn pointwise_convolution_then_relu_node() {
    let mut v = Values::new(5);
    let layers = vec![v.layer("c", [5, 4, 1, 1])];
    let nodes = vec![
        node("c", conv_op(0, (1, 1), (0, 0), false), &["data"], "c"),
        node("relu", Op::Relu, &["c"], "c"),
    ];
    GradientCheck::new(&model(nodes, layers, 5, "c"), &v.tensor([3, 4, 5, 5]), 6)
        .compare_everything();
}

/// A convolution (so the pool's input gradient reaches a weight), then
/// `pool`, on `side x side` images.
fn check_pool(pool: formats::Pool, side: usize, seed: u64) {
    let mut v = Values::new(seed);
    let layers = vec![v.layer("c", [3, 2, 1, 1])];
    let nodes = vec![
        node("c", conv_op(0, (1, 1), (0, 0), false), &["data"], "c"),
        node("pool", Op::Pool(pool), &["c"], "pool"),
    ];
    GradientCheck::new(
        &model(nodes, layers, side, "pool"),
        &v.tensor([2, 2, side, side]),
        seed + 1,
    )
    .compare_everything();
}

#[test]
fn max_pool_ceil_rounding_with_a_partial_last_window() {
    // 8 wide, 3x3 stride 2, ceil: 4 windows, the last one covers 2 columns.
    check_pool(pool_op(PoolKind::Max, (3, 3), (2, 2), (0, 0), true), 8, 7);
    // Padding, uneven kernel and strides.
    check_pool(pool_op(PoolKind::Max, (3, 2), (2, 1), (1, 1), true), 7, 9);
    // Floor rounding leaves the last column out: its gradient is zero.
    check_pool(pool_op(PoolKind::Max, (2, 2), (2, 2), (0, 0), false), 5, 11);
}

#[test]
fn average_pool_ceil_rounding_padding_divisor() {
    check_pool(pool_op(PoolKind::Avg, (3, 3), (2, 2), (0, 0), true), 8, 13);
    check_pool(pool_op(PoolKind::Avg, (3, 3), (2, 2), (1, 1), true), 6, 15);
    check_pool(pool_op(PoolKind::Avg, (2, 3), (1, 2), (0, 1), false), 7, 17);
}

#[test]
fn average_pool_without_counting_padding() {
    let real_cells = |p: Pool| Pool {
        count_include_pad: false,
        ..p
    };
    let pool = |kernel, stride, pad, ceil| pool_op(PoolKind::Avg, kernel, stride, pad, ceil);
    check_pool(real_cells(pool((3, 3), (2, 2), (1, 1), true)), 6, 61);
    check_pool(real_cells(pool((3, 3), (1, 1), (1, 1), false)), 5, 63);
    check_pool(real_cells(pool((2, 3), (1, 2), (0, 1), false)), 7, 65);
}

/// A single convolution of `layer_shape` in `groups` groups with `stride`,
/// `pad` and fused `relu` on a batch of `input` shape: every gradient.
fn check_grouped(
    layer_shape: [usize; 4],
    groups: usize,
    (stride, pad, relu): ((usize, usize), (usize, usize), bool),
    input: [usize; 4],
    seed: u64,
) {
    let mut v = Values::new(seed);
    let layers = vec![v.layer("c", layer_shape)];
    let op = grouped(conv_op(0, stride, pad, relu), groups);
    let nodes = vec![node("c", op, &["data"], "c")];
    GradientCheck::new(
        &model(nodes, layers, input[2], "c"),
        &v.tensor(input),
        seed + 1,
    )
    .compare_everything();
}

#[test]
fn grouped_convolution_stride_padding_and_fused_relu() {
    // AlexNet's conv2 in small (2 groups, 5x5, padding 2), stride 2;
    // batch 5 spans two parallel tasks.
    check_grouped([4, 2, 5, 5], 2, ((2, 2), (2, 2), true), [5, 4, 9, 9], 31);
    // 3 groups of a 1x1 convolution (pointwise: no im2col matrix).
    check_grouped([6, 2, 1, 1], 3, ((1, 1), (0, 0), false), [2, 6, 5, 5], 33);
}

#[test]
fn depthwise_convolution_stride_1_and_2_padding_multiplier() {
    // MobileNetV2's 3x3, stride 1 and 2, odd sizes, batch > 1.
    check_grouped([4, 1, 3, 3], 4, ((1, 1), (1, 1), false), [3, 4, 7, 7], 35);
    check_grouped([3, 1, 3, 3], 3, ((2, 2), (1, 1), true), [2, 3, 9, 9], 37);
    // Two outputs per input channel, uneven kernel, stride and padding.
    check_grouped([6, 1, 3, 2], 3, ((2, 1), (1, 0), false), [2, 3, 7, 7], 39);
}

#[test]
fn relu6_after_a_convolution_and_clip_after_a_fused_relu() {
    let mut v = Values::new(41);
    let mut layers = vec![v.layer("expand", [6, 3, 1, 1]), v.layer("dw", [6, 1, 3, 3])];
    // Large enough weights that both bounds clamp some values.
    layers[0].weights.iter_mut().for_each(|w| *w *= 8.0);
    let nodes = vec![
        node("expand", conv_op(0, (1, 1), (0, 0), false), &["data"], "e"),
        node("relu6", Op::Clip(Clip { min: 0.0, max: 6.0 }), &["e"], "e6"),
        node(
            "dw",
            grouped(conv_op(1, (2, 2), (1, 1), true), 6),
            &["e6"],
            "d",
        ),
        node(
            "clip",
            Op::Clip(Clip {
                min: -1.0,
                max: 0.5,
            }),
            &["d"],
            "out",
        ),
    ];
    GradientCheck::new(&model(nodes, layers, 7, "out"), &v.tensor([2, 3, 7, 7]), 42)
        .compare_everything();
}

#[test]
fn lrn_across_channels_after_a_convolution() {
    let lrns = [
        // AlexNet's window with a large alpha, so the cross terms matter.
        Lrn {
            size: 5,
            alpha: 0.5,
            beta: 0.75,
            bias: 1.0,
        },
        // An even window (not centred) wider than half the channels.
        Lrn {
            size: 4,
            alpha: 2.0,
            beta: 1.5,
            bias: 2.0,
        },
    ];
    for (seed, lrn) in (43..).step_by(2).zip(lrns) {
        let mut v = Values::new(seed);
        let layers = vec![v.layer("c", [7, 2, 3, 3])];
        let nodes = vec![
            node("c", conv_op(0, (1, 1), (1, 1), false), &["data"], "c"),
            node("lrn", Op::Lrn(lrn), &["c"], "out"),
        ];
        GradientCheck::new(
            &model(nodes, layers, 5, "out"),
            &v.tensor([2, 2, 5, 5]),
            seed + 1,
        )
        .compare_everything();
    }
}

#[test]
fn fire_module_concat_of_three_add_gap_dropout_flatten_softmax() {
    let mut v = Values::new(19);
    let layers = vec![
        v.layer("squeeze", [3, 4, 1, 1]),
        v.layer("e1", [2, 3, 1, 1]),
        v.layer("e3", [3, 3, 3, 3]),
        v.layer("e5", [2, 3, 3, 3]),
        v.layer("skip", [7, 4, 1, 1]),
        v.layer("final", [5, 7, 1, 1]),
    ];
    let nodes = vec![
        node("squeeze", conv_op(0, (1, 1), (0, 0), true), &["data"], "s"),
        node("e1", conv_op(1, (1, 1), (0, 0), true), &["s"], "e1"),
        node("e3", conv_op(2, (1, 1), (1, 1), true), &["s"], "e3"),
        node("e5", conv_op(3, (1, 1), (1, 1), false), &["s"], "e5"),
        node("concat", Op::Concat, &["e1", "e3", "e5"], "cat"),
        node("skip", conv_op(4, (1, 1), (0, 0), false), &["data"], "skip"),
        node("add", Op::Add, &["cat", "skip"], "sum"),
        node("drop", Op::Dropout, &["sum"], "sum"),
        node(
            "final",
            conv_op(5, (1, 1), (0, 0), false),
            &["sum"],
            "logits",
        ),
        node("gap", Op::GlobalAvgPool, &["logits"], "gap"),
        node("flat", Op::Flatten, &["gap"], "flat"),
        node("prob", Op::Softmax, &["flat"], "prob"),
    ];
    GradientCheck::new(
        &model(nodes, layers, 6, "prob"),
        &v.tensor([2, 4, 6, 6]),
        20,
    )
    .compare_everything();
}

#[test]
fn concat_of_two_and_a_blob_added_to_itself() {
    let mut v = Values::new(21);
    let layers = vec![v.layer("a", [2, 2, 3, 3]), v.layer("b", [3, 2, 1, 1])];
    let nodes = vec![
        node("a", conv_op(0, (1, 1), (1, 1), false), &["data"], "a"),
        node("b", conv_op(1, (1, 1), (0, 0), false), &["data"], "b"),
        node("concat", Op::Concat, &["a", "b"], "cat"),
        node("double", Op::Add, &["cat", "cat"], "twice"),
    ];
    GradientCheck::new(
        &model(nodes, layers, 5, "twice"),
        &v.tensor([1, 2, 5, 5]),
        22,
    )
    .compare_everything();
}

#[test]
fn a_layer_used_by_two_convolutions_gets_both_gradients() {
    let mut v = Values::new(23);
    let layers = vec![v.layer("shared", [3, 3, 3, 3])];
    let nodes = vec![
        node("first", conv_op(0, (1, 1), (1, 1), true), &["data"], "x"),
        node("second", conv_op(0, (2, 2), (1, 1), false), &["x"], "y"),
    ];
    GradientCheck::new(&model(nodes, layers, 7, "y"), &v.tensor([2, 3, 7, 7]), 24)
        .compare_everything();
}

#[test]
fn max_pool_ties_go_to_the_first_cell_of_each_window() {
    // Constant 6x6 planes, 3x3 windows with stride 2 (ceil): every cell of
    // a window ties; windows start at rows and columns 0, 2 and 4 (the last
    // ones partial), and the gradient of each goes to its top-left cell.
    let pool = pool_op(PoolKind::Max, (3, 3), (2, 2), (0, 0), true);
    let m = model(
        vec![node("pool", Op::Pool(pool), &["data"], "pool")],
        vec![],
        6,
        "pool",
    );
    let input = crate::engine::Tensor::new([1, 2, 6, 6], vec![0.5; 72]).unwrap();
    let mut memory = crate::engine::StepMemory::default();
    let tape = super::forward_for_training(&m, &input, &mut memory).unwrap();
    assert_eq!(tape.output().shape, [1, 2, 3, 3]);
    let d_output =
        crate::engine::Tensor::new([1, 2, 3, 3], (1..=18).map(|v| v as f32).collect()).unwrap();
    let d_input = tape.backward(d_output, &mut memory).unwrap().input;
    for c in 0..2 {
        for y in 0..6 {
            for x in 0..6 {
                let expected = if y % 2 == 0 && x % 2 == 0 {
                    (c * 9 + y / 2 * 3 + x / 2 + 1) as f32
                } else {
                    0.0
                };
                assert_eq!(d_input.get(0, c, y, x), Some(expected), "({c}, {y}, {x})");
            }
        }
    }
}

#[test]
fn max_pool_ties_go_to_the_earlier_row_before_the_earlier_column() {
    // One 3x3 window holding its maximum at (0, 2) and (1, 0): the first in
    // row-major order is (0, 2).
    let pool = pool_op(PoolKind::Max, (3, 3), (3, 3), (0, 0), false);
    let m = model(
        vec![node("pool", Op::Pool(pool), &["data"], "pool")],
        vec![],
        3,
        "pool",
    );
    let mut plane = vec![0.0; 9];
    (plane[2], plane[3]) = (5.0, 5.0);
    let input = crate::engine::Tensor::new([1, 1, 3, 3], plane).unwrap();
    let mut memory = crate::engine::StepMemory::default();
    let tape = super::forward_for_training(&m, &input, &mut memory).unwrap();
    assert_eq!(tape.output().data, [5.0]);
    let d_output = crate::engine::Tensor::new([1, 1, 1, 1], vec![2.0]).unwrap();
    let d_input = tape.backward(d_output, &mut memory).unwrap().input;
    let mut expected = vec![0.0; 9];
    expected[2] = 2.0;
    assert_eq!(d_input.data, expected);
}

/// Max pooling's training forward pass with AVX-512 gives the portable
/// pass's maxima and argmax, bit for bit: planes narrower and wider than
/// a vector (full vectors and a partial one), values drawn from a few levels so windows
/// tie, with NaN, infinities and both zeros, and windows with padding or a
/// partial last one.
#[test]
fn max_pool_with_argmax_vectorised_matches_portable() {
    let Some(kernel) = crate::engine::kernel::Kernel::detect() else {
        eprintln!("no AVX-512 here: only the portable max pooling runs on this CPU");
        return;
    };
    let levels = [
        f32::NAN,
        f32::NEG_INFINITY,
        f32::INFINITY,
        0.0,
        -0.0,
        0.5,
        -0.5,
        1.0,
    ];
    let pools = [
        pool_op(PoolKind::Max, (3, 3), (2, 2), (0, 0), true),
        pool_op(PoolKind::Max, (3, 2), (2, 1), (1, 1), true),
        pool_op(PoolKind::Max, (2, 2), (2, 2), (0, 0), false),
        pool_op(PoolKind::Max, (5, 3), (1, 3), (2, 1), false),
    ];
    let mut v = Values::new(77);
    for pool in &pools {
        for side in [37, 48, 17, 6] {
            let data = (0..3 * side * side)
                .map(|_| levels[((v.next() + 1.0) * 4.0) as usize % levels.len()])
                .collect();
            let input = crate::engine::Tensor::new([1, 3, side, side], data).unwrap();
            let graph = model(
                vec![node("pool", Op::Pool(*pool), &["data"], "pool")],
                vec![],
                side,
                "pool",
            );
            let shape = crate::engine::infer_shapes(&graph, input.shape)
                .unwrap()
                .output;
            let run = |kernel| {
                let mut output = crate::engine::Tensor::zeros(shape).unwrap();
                let mut argmax = vec![0; output.data.len()];
                crate::engine::grad::pool::max_pool_with_argmax(
                    kernel,
                    &input,
                    pool,
                    &mut output,
                    &mut argmax,
                );
                let bits: Vec<u32> = output.data.iter().map(|x| x.to_bits()).collect();
                (bits, argmax)
            };
            assert_eq!(run(Some(kernel)), run(None), "{pool:?} on {side}x{side}");
        }
    }
}
