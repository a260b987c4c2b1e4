//! Output sizes of windows and whole graphs.

use formats::{Op, PoolKind};

use super::naive;
use super::{conv_op, model, node, pool_op, Values};
use crate::engine::infer_shapes;
use crate::engine::shapes::pool_len;

#[test]
fn pool_length_agrees_with_caffes_floating_point_formula() {
    for len in 1..40 {
        for kernel in 1..6 {
            for stride in 1..5 {
                for pad in 0..kernel {
                    if len + 2 * pad < kernel {
                        continue;
                    }
                    for ceil_mode in [false, true] {
                        assert_eq!(
                            pool_len(len, kernel, stride, pad, ceil_mode),
                            Some(naive::pool_len(len, kernel, stride, pad, ceil_mode)),
                            "len {len} kernel {kernel} stride {stride} pad {pad} ceil {ceil_mode}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn pool_length_known_values() {
    // SqueezeNet's 3x3 stride-2 ceil pools: 111 -> 55 -> 27 -> 13.
    assert_eq!(pool_len(111, 3, 2, 0, true), Some(55));
    assert_eq!(pool_len(55, 3, 2, 0, true), Some(27));
    assert_eq!(pool_len(27, 3, 2, 0, true), Some(13));
    // Floor vs ceil: windows at 0, 2 fit in 6; ceil adds a partial one at 4.
    assert_eq!(pool_len(6, 3, 2, 0, false), Some(2));
    assert_eq!(pool_len(6, 3, 2, 0, true), Some(3));
    // PyTorch MaxPool2d(2, 2, padding=1, ceil_mode=True) on 5: ceil gives 4
    // windows, but the 4th would start in the right padding and is dropped.
    assert_eq!(pool_len(5, 2, 2, 1, true), Some(3));
    assert_eq!(pool_len(2, 3, 1, 0, true), None);
}

#[test]
fn squeezenet_v1_0_stem_shapes() {
    let mut values = Values::new(1);
    let pool = pool_op(PoolKind::Max, (3, 3), (2, 2), (0, 0), true);
    let nodes = vec![
        node(
            "conv1",
            conv_op(0, (2, 2), (0, 0), true),
            &["data"],
            "conv1",
        ),
        node("pool1", Op::Pool(pool), &["conv1"], "pool1"),
        node(
            "conv_final",
            conv_op(1, (1, 1), (1, 1), true),
            &["pool1"],
            "final",
        ),
        node("gap", Op::GlobalAvgPool, &["final"], "gap"),
        node("flat", Op::Flatten, &["gap"], "flat"),
    ];
    let layers = vec![
        values.layer("conv1", [96, 3, 7, 7]),
        values.layer("conv_final", [10, 96, 1, 1]),
    ];
    let shapes = infer_shapes(&model(nodes, layers, 227, "flat"), [4, 3, 227, 227]).unwrap();
    assert_eq!(
        shapes.nodes,
        vec![
            [4, 96, 111, 111],
            [4, 96, 55, 55],
            [4, 10, 57, 57],
            [4, 10, 1, 1],
            [4, 10, 1, 1]
        ]
    );
    assert_eq!(shapes.output, [4, 10, 1, 1]);
}
