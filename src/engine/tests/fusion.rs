//! Fused runs: which nodes fuse, and that fusing changes no bit.

use formats::Op;

use super::{conv_op, model, node, Values};
use crate::engine::fusion::{steps, Step};
use crate::engine::plan::Plan;
use crate::engine::{forward_hooked, Session};

/// A Caffe-style fire module with separate ReLU nodes, plus a
/// concatenation that cannot be fused (it also takes the squeeze output,
/// which the expand convolutions read too).
fn fire() -> formats::Model {
    let mut values = Values::new(41);
    let layers = vec![
        values.layer("squeeze", [5, 3, 1, 1]),
        values.layer("e1", [16, 5, 1, 1]),
        values.layer("e3", [7, 5, 3, 3]),
    ];
    let nodes = vec![
        node("squeeze", conv_op(0, (1, 1), (0, 0), false), &["data"], "s"),
        node("relu_s", Op::Relu, &["s"], "s"),
        node("e1", conv_op(1, (1, 1), (0, 0), false), &["s"], "e1"),
        node("relu_e1", Op::Relu, &["e1"], "e1"),
        node("e3", conv_op(2, (1, 1), (1, 1), true), &["s"], "e3"),
        node("fire", Op::Concat, &["e1", "e3"], "fire"),
        node("all", Op::Concat, &["fire", "s"], "all"),
    ];
    model(nodes, layers, 19, "all")
}

#[test]
fn relus_fold_into_convolutions_and_convolutions_into_concatenations() {
    let m = fire();
    let plan = Plan::new(&m.graph).unwrap();
    let into = |relu, offset| Step::ConvInto {
        relu,
        concat: 5,
        offset,
    };
    assert_eq!(
        steps(&m, &plan),
        vec![
            Step::ConvRelu,
            Step::Pass,
            into(true, 0),
            Step::Skip,
            into(false, 16),
            Step::Skip,
            Step::Run,
        ]
    );
}

/// Concatenations fuse only where every convolution starts at a whole
/// block of 16 channels.
#[test]
fn concatenations_fuse_only_at_whole_blocks() {
    let mut m = fire();
    m.layers[1] = Values::new(43).layer("e1", [6, 5, 1, 1]);
    let plan = Plan::new(&m.graph).unwrap();
    assert_eq!(
        steps(&m, &plan),
        vec![
            Step::ConvRelu,
            Step::Pass,
            Step::ConvRelu,
            Step::Pass,
            Step::Run,
            Step::Run,
            Step::Run,
        ]
    );
}

#[test]
fn fused_runs_give_the_same_bits_as_hooked_ones_for_any_thread_count() {
    let m = fire();
    let input = Values::new(42).tensor([3, 3, 19, 19]);
    let session = Session::new(&m).unwrap();
    let hooked = forward_hooked(&m, &input, &mut |_, _, _| None).unwrap();
    for threads in [1, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        // Twice: the second run reuses the first one's buffers.
        for _ in 0..2 {
            let fused = pool.install(|| session.run(&input)).unwrap();
            assert_eq!(fused, hooked, "{threads} threads");
        }
    }
    let (profiled, times) = session.run_profiled(&input).unwrap();
    assert_eq!((profiled, times.len()), (hooked, m.graph.nodes.len()));
}
