//! The blocked layout: conversions, and graphs that mix it with NCHW
//! operations, against the naive loops and against NCHW runs.

use formats::{Model, Op, PoolKind};

use super::{assert_close, conv_op, model, naive, node, pool_op, Values};
use crate::engine::blocked::Blocked;
use crate::engine::buffers::Buffers;
use crate::engine::{forward, forward_hooked, Tensor};

#[test]
fn conversions_keep_every_value_for_any_channel_count() {
    let mut buffers = Buffers::default();
    for channels in [1, 3, 15, 16, 17, 40] {
        let tensor = Values::new(channels as u64).tensor([2, channels, 3, 5]);
        let blocked = Blocked::from_plain(&tensor, &mut buffers);
        assert_eq!(blocked.lanes, if channels < 16 { 1 } else { 16 });
        assert_eq!(
            blocked.to_plain(&mut buffers),
            tensor,
            "{channels} channels"
        );
        let padded = blocked.padded([1, 2], &mut buffers);
        let back = padded.to_plain(&mut buffers);
        assert_eq!(back.shape, [2, channels, 5, 9]);
        for n in 0..2 {
            for c in 0..channels {
                for y in 0..5 {
                    for x in 0..9 {
                        let inside = (1..4).contains(&y) && (2..7).contains(&x);
                        let expected = if inside {
                            tensor.get(n, c, y - 1, x - 2).unwrap()
                        } else {
                            0.0
                        };
                        assert_eq!(back.get(n, c, y, x), Some(expected));
                    }
                }
            }
        }
    }
}

/// Convolutions feeding an addition (NCHW only), max pooling with
/// padding and ceil rounding, a concatenation of blocks (16 + 16 + 5
/// channels) and one that is not (5 + 16), then global pooling and
/// softmax: the run converts between layouts several times.
#[test]
fn graphs_mixing_layouts_match_direct_loops_and_nchw_runs() {
    let mut values = Values::new(77);
    let layers = vec![
        values.layer("a", [16, 3, 3, 3]),
        values.layer("b", [16, 3, 1, 1]),
        values.layer("c", [16, 16, 3, 3]),
        values.layer("d", [5, 16, 1, 1]),
    ];
    let pool = pool_op(PoolKind::Max, (3, 3), (2, 2), (1, 1), true);
    let nodes = vec![
        node("a", conv_op(0, (1, 1), (1, 1), true), &["data"], "a"),
        node("b", conv_op(1, (1, 1), (0, 0), false), &["data"], "b"),
        node("sum", Op::Add, &["a", "b"], "sum"),
        node("c", conv_op(2, (2, 2), (1, 1), true), &["sum"], "c"),
        node("pool", Op::Pool(pool), &["c"], "pool"),
        node("d", conv_op(3, (1, 1), (0, 0), true), &["pool"], "d"),
        node("blocks", Op::Concat, &["pool", "pool", "d"], "blocks"),
        node("mixed", Op::Concat, &["d", "pool"], "mixed"),
        node("both", Op::Concat, &["blocks", "mixed"], "both"),
        node("gap", Op::GlobalAvgPool, &["both"], "gap"),
        node("prob", Op::Softmax, &["gap"], "prob"),
    ];
    let m = model(nodes, layers, 17, "prob");
    let input = values.tensor([2, 3, 17, 17]);
    let conv = |x: &Tensor, l: usize| naive_conv(&m, [0, 1, 3, 5][l], x);
    let (a, b) = (conv(&input, 0), conv(&input, 1));
    let sum = Tensor::new(
        a.shape,
        a.data.iter().zip(&b.data).map(|(x, y)| x + y).collect(),
    )
    .unwrap();
    let pooled = naive::pool(&conv(&sum, 2), &pool);
    let d = conv(&pooled, 3);
    let blocks = naive::concat(&[&pooled, &pooled, &d]);
    let mixed = naive::concat(&[&d, &pooled]);
    let expected = naive::softmax(&naive::global_avg_pool(&naive::concat(&[&blocks, &mixed])));
    let output = forward(&m, &input).unwrap();
    assert_close(&output, &expected, 1e-5);
    let nchw = forward_hooked(&m, &input, &mut |_, _, _| None).unwrap();
    assert_eq!(output, nchw);
}

/// A convolution's blocked output is the graph's result: it is converted
/// back to NCHW, padding channels dropped.
#[test]
fn a_blocked_result_comes_back_in_nchw() {
    let mut values = Values::new(5);
    let layers = vec![values.layer("conv", [21, 4, 3, 3])];
    let pool = pool_op(PoolKind::Max, (2, 2), (2, 2), (0, 0), false);
    let nodes = vec![
        node("conv", conv_op(0, (1, 1), (1, 1), true), &["data"], "conv"),
        node("pool", Op::Pool(pool), &["conv"], "pool"),
    ];
    let m = model(nodes, layers, 10, "pool");
    let input = values.tensor([3, 4, 10, 10]);
    let expected = naive::pool(&naive_conv(&m, 0, &input), &pool);
    let output = forward(&m, &input).unwrap();
    assert_close(&output, &expected, 1e-5);
    assert_eq!(output.shape, [3, 21, 5, 5]);
}

/// Convolutions deep enough for the blocked kernel to sum their depth in
/// several parts (a 1x1 over 200 channels, a strided 3x3 over 40, both
/// ending in a part of fewer than 16 channels): the parts keep each
/// output's order of additions, so the result is the NCHW run's to the bit.
#[test]
fn depth_summed_in_parts_gives_the_nchw_bits() {
    let mut values = Values::new(31);
    let layers = vec![
        values.layer("wide", [200, 3, 1, 1]),
        values.layer("deep", [40, 200, 1, 1]),
        values.layer("strided", [70, 40, 3, 3]),
    ];
    let nodes = vec![
        node("wide", conv_op(0, (1, 1), (0, 0), true), &["data"], "wide"),
        node("deep", conv_op(1, (1, 1), (0, 0), true), &["wide"], "deep"),
        node(
            "strided",
            conv_op(2, (2, 2), (1, 1), true),
            &["deep"],
            "strided",
        ),
    ];
    let m = model(nodes, layers, 9, "strided");
    let input = values.tensor([2, 3, 9, 9]);
    let output = forward(&m, &input).unwrap();
    let nchw = forward_hooked(&m, &input, &mut |_, _, _| None).unwrap();
    assert_eq!(output, nchw);
    let conv = |x: &Tensor, l: usize| naive_conv(&m, l, x);
    let expected = conv(&conv(&conv(&input, 0), 1), 2);
    assert_close(&output, &expected, 1e-4);
}

/// The naive loops' result of node `index` of `m`, a convolution, on `x`.
fn naive_conv(m: &Model, index: usize, x: &Tensor) -> Tensor {
    let Op::Conv(c) = m.graph.nodes[index].op else {
        unreachable!("node {index} is a convolution")
    };
    naive::conv(x, &m.layers[c.layer], &c)
}
