//! Bit-identical results whatever the thread count or batch composition.

use formats::{Op, PoolKind};

use super::{conv_op, model, new_ops_model, node, pool_op, Values};
use crate::engine::{forward, Tensor};

/// A graph whose convolutions span several tiles per image.
fn wide_model() -> (formats::Model, Tensor) {
    let mut values = Values::new(31);
    let layers = vec![
        values.layer("c1", [80, 3, 3, 3]),
        values.layer("c2", [70, 80, 1, 1]),
        // Deeper than one depth chunk of the packed path.
        values.layer("c3", [20, 70, 3, 3]),
    ];
    let pool = pool_op(PoolKind::Max, (3, 3), (2, 2), (0, 0), true);
    let nodes = vec![
        node("c1", conv_op(0, (1, 1), (1, 1), true), &["data"], "c1"),
        node("c2", conv_op(1, (1, 1), (0, 0), true), &["c1"], "c2"),
        node("c3", conv_op(2, (1, 1), (1, 1), true), &["c2"], "c3"),
        node("pool", Op::Pool(pool), &["c3"], "pool"),
        node("gap", Op::GlobalAvgPool, &["pool"], "gap"),
        node("prob", Op::Softmax, &["gap"], "prob"),
    ];
    (
        model(nodes, layers, 41, "prob"),
        values.tensor([3, 3, 41, 41]),
    )
}

fn run_with_threads(threads: usize, m: &formats::Model, input: &Tensor) -> Tensor {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| forward(m, input)).unwrap()
}

#[test]
fn thread_count_does_not_change_any_bit() {
    for (m, input) in [wide_model(), new_ops_model()] {
        let one = run_with_threads(1, &m, &input);
        for threads in [2, 3, 5] {
            assert_eq!(
                run_with_threads(threads, &m, &input).data,
                one.data,
                "{threads} threads"
            );
        }
    }
}

#[test]
fn an_image_gives_the_same_bits_alone_or_in_a_batch() {
    let (m, batch) = wide_model();
    let all = forward(&m, &batch).unwrap();
    for n in 0..3 {
        let single = Tensor::new([1, 3, 41, 41], batch.image(n).unwrap().to_vec()).unwrap();
        assert_eq!(forward(&m, &single).unwrap().data, all.image(n).unwrap());
    }
}
