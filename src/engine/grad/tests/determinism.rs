//! Gradients are bit-identical whatever the number of threads.

use formats::{Op, PoolKind};

use crate::engine::grad::{forward_for_training, Gradients};
use crate::engine::tests::{conv_op, model, node, pool_op, Values};
use crate::engine::Tensor;

/// Forward and backward passes on a pool of `threads` threads.
pub fn gradients_on(threads: usize, m: &formats::Model, input: &Tensor, seed: u64) -> Gradients {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let tape = forward_for_training(m, input).unwrap();
        let shape = tape.output().shape;
        let d_output = Values::new(seed).tensor(shape);
        tape.backward(d_output).unwrap()
    })
}

#[test]
fn thread_count_does_not_change_any_gradient_bit() {
    let mut v = Values::new(41);
    let layers = vec![
        v.layer("c1", [80, 3, 3, 3]),
        v.layer("c2", [70, 80, 1, 1]),
        v.layer("c3", [10, 70, 3, 3]),
    ];
    let nodes = vec![
        node("c1", conv_op(0, (2, 2), (1, 1), true), &["data"], "c1"),
        node(
            "pool",
            Op::Pool(pool_op(PoolKind::Max, (3, 3), (2, 2), (0, 0), true)),
            &["c1"],
            "p",
        ),
        node("c2", conv_op(1, (1, 1), (0, 0), true), &["p"], "c2"),
        node("cat", Op::Concat, &["c2", "p"], "cat"),
        node(
            "avg",
            Op::Pool(pool_op(PoolKind::Avg, (3, 3), (1, 1), (1, 1), true)),
            &["c2"],
            "avg",
        ),
        node("c3", conv_op(2, (1, 1), (1, 1), false), &["avg"], "c3"),
        node("gap", Op::GlobalAvgPool, &["c3"], "gap"),
        node("prob", Op::Softmax, &["gap"], "prob"),
    ];
    let m = model(nodes, layers, 41, "prob");
    // Batch 9: three tasks of images per convolution.
    let input = v.tensor([9, 3, 41, 41]);
    let one = gradients_on(1, &m, &input, 42);
    for threads in [2, 3] {
        assert!(
            gradients_on(threads, &m, &input, 42) == one,
            "{threads} threads"
        );
    }
}

#[test]
fn tape_output_is_bit_identical_to_forward() {
    let mut v = Values::new(43);
    let layers = vec![v.layer("c1", [6, 3, 3, 3])];
    let nodes = vec![
        node("c1", conv_op(0, (2, 2), (1, 1), true), &["data"], "c1"),
        node(
            "pool",
            Op::Pool(pool_op(PoolKind::Max, (3, 3), (2, 2), (0, 0), true)),
            &["c1"],
            "p",
        ),
        node("gap", Op::GlobalAvgPool, &["p"], "gap"),
        node("prob", Op::Softmax, &["gap"], "prob"),
    ];
    let m = model(nodes, layers, 17, "prob");
    let input = v.tensor([3, 3, 17, 17]);
    let tape = forward_for_training(&m, &input).unwrap();
    assert_eq!(tape.output(), &crate::engine::forward(&m, &input).unwrap());
}
